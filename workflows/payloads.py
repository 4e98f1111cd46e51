"""Activity parameters and results: one dataclass in, one dataclass out, so fields can grow later.

Workflows never see protobuf messages or HTTP responses; the activities translate them into these.
A callback's state is a `workflows.inputs.CallbackPhase` (routing's ticket states keep their spelling);
outcomes are the `StrEnum`s below, whose values are what recorded histories hold.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from workflows.inputs import CallbackPhase, Finding, ReviewState

__all__ = [
    "CallbackView",
    "ClaimOutcome",
    "ClaimParams",
    "ClaimResult",
    "DecisionParams",
    "DecisionView",
    "DialOutcome",
    "DialParams",
    "DialResult",
    "FinishParams",
    "FinishResult",
    "NotifyParams",
    "NotifyResult",
    "OutcomeParams",
    "OutcomeResult",
    "ReviewOutcomeParams",
    "ReviewOutcomeReport",
    "ReviewRecord",
]


class ClaimOutcome(enum.StrEnum):
    """`ClaimCallbackResponse.outcome` (`routing_pb2.ClaimOutcome`), spelled as routing's own
    `routing_service.app.callbacks.ClaimOutcome`."""

    RESERVED = "reserved"
    NOT_AT_HEAD = "not-at-head"
    NO_SPECIALIST_FREE = "no-specialist-free"
    ALREADY_FINISHED = "already-finished"


class DialOutcome(enum.StrEnum):
    """What became of one outbound callback call (the dial ledger stores the same values once the call
    ended: `workflows.ledger.DialState`)."""

    CONNECTED = "connected"
    """The customer was on the line: an allow-listed endedReason and a customer turn (see
    `workflows.evidence`)."""
    NOT_REACHED = "not-reached"
    """Anything else: no answer, busy, voicemail, silence, a failed call, an unknown reason."""
    UNCERTAIN = "uncertain"
    """An earlier try of this attempt may have dialled and Vapi does not list the call: not dialled again."""


@dataclass
class ClaimParams:
    call_id: str
    hold_seconds: int = 0


@dataclass
class ClaimResult:
    outcome: ClaimOutcome
    state: CallbackPhase = CallbackPhase.UNSPECIFIED
    position: int = 0
    agent_id: str = ""
    agent_name: str = ""
    agent_number: str = ""
    agent_sip_uri: str = ""
    reserved_until: datetime | None = None
    widening_step: int = 0
    """The team's widening step in force at the claim (0: not widened); see routing's policy `widening`."""
    widening: str = ""
    """What that step did, e.g. `step 2: overflow to team general after 10 min`."""
    next_widening_at: datetime | None = None
    """When the next step starts: the workflow claims again then (None: no further step)."""
    served_team: str = ""
    """The team whose specialist was reserved (the callback's own or an overflow team)."""
    promise_state: str = ""
    """The callback's promise as routing judged it at the claim (`PromiseState`'s value; "" without one)."""
    promised_by: datetime | None = None
    promise_at_risk_at: datetime | None = None


@dataclass
class FinishParams:
    call_id: str
    state: CallbackPhase
    """A final phase (connected, cancelled, unreachable, expired)."""
    note: str = ""


@dataclass
class FinishResult:
    state: CallbackPhase
    already_finished: bool = False


@dataclass
class DialParams:
    call_id: str
    attempt: int
    attempt_key: str
    """`callback-<call id>-attempt-<n>`: the dial ledger's key, and (shortened if needed) Vapi's `name`."""
    customer_number: str
    masked_number: str
    variable_values: dict[str, str] = field(default_factory=dict)
    first_message: str = ""
    """`assistantOverrides.firstMessage` of the call; empty: the assistant's own first message."""


@dataclass
class DialResult:
    outcome: DialOutcome
    vapi_call_id: str = ""
    ended_reason: str = ""
    dialled_now: bool = False
    """True when this execution sent the POST (False: the ledger or Vapi's list already had the call)."""
    detail: str = ""
    """Why the outcome is what it is, in a few words (`workflows.evidence.CallEvidence.detail`)."""


@dataclass
class DecisionParams:
    call_id: str


@dataclass
class CallbackView:
    state: CallbackPhase
    enqueued_at: datetime | None = None
    finished_at: datetime | None = None
    agent_id: str = ""
    promise_state: str = ""
    """`PromiseState`'s value as routing judges it now ("" for a callback without a promise)."""
    promised_by: datetime | None = None


@dataclass
class DecisionView:
    decision_id: str
    kind: str
    """`routing_service.domain.models.DecisionKind`'s value (transfer_team, transfer_agent, callback,
    fallback); a string, so that a kind added to routing later still reads."""
    team_id: str = ""
    agent_id: str = ""
    agent_name: str = ""
    tier: str = ""
    issue_category: str = ""
    complexity: str = ""
    estimated_wait_seconds: float | None = None
    decided_at: datetime | None = None
    callback: CallbackView | None = None
    rule_id: str = ""
    """The policy rule that chose the team (empty for a fallback without a match)."""
    reason: str = ""
    """Routing's one-line explanation of the decision (numbers in it masked)."""
    trace: list[str] = field(default_factory=list)
    """The decision's trace, one `stage subject: outcome (detail)` line a step (numbers masked)."""
    masked_caller: str = ""
    """The caller's number, masked (`escalade_platform.masking.mask_number`)."""


@dataclass
class OutcomeParams:
    call_id: str
    agent_id: str = ""


@dataclass
class OutcomeResult:
    counted: bool
    previous_escalations: int = 0


@dataclass
class ReviewRecord:
    call_id: str
    state: ReviewState
    findings: list[Finding] = field(default_factory=list)
    team_id: str = ""
    agent_id: str = ""
    verdict: str = ""
    note: str = ""


@dataclass
class ReviewOutcomeParams:
    """A review's findings (judged) or its verdict, reported to routing (`RecordReviewOutcome`)."""

    call_id: str
    finding_rules: list[str] = field(default_factory=list)
    verdict: str = ""
    """Empty when the review was judged without a verdict yet."""
    actual_category: str = ""
    """The category the call turned out to be about (`workflows.review_rules.final_category`), if known."""
    decided_at: datetime | None = None


@dataclass
class ReviewOutcomeReport:
    outcome: str = ""
    """`confirmed` / `overturned` once routing recorded a verdict, else empty."""
    verdict_recorded: bool = False
    category_wrong: bool = False
    uncertain: bool = False
    learned: list[str] = field(default_factory=list)


@dataclass
class NotifyParams:
    """A notification of a review that needs a person, for one contact of the team's escalation list."""

    call_id: str
    team_id: str
    contact: str
    step: int
    """0: the review started waiting for a verdict; 1, 2, ...: escalations."""
    state: str = ""
    """The review's state when the notification was sent (`ReviewState` value)."""
    findings: list[Finding] = field(default_factory=list)
    waited_seconds: int = 0
    """How long the review had been waiting for a verdict."""
    deadline: datetime | None = None
    decision: DecisionView | None = None


@dataclass
class NotifyResult:
    delivered: bool
    detail: str = ""
    """The receiver's HTTP status, or why nothing was sent."""
