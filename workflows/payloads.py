"""Activity parameters and results: one dataclass in, one dataclass out, so fields can grow later.

Workflows never see protobuf messages or HTTP responses; the activities translate them into these.
States and outcomes are the lower-case strings of `routing_service.domain.models` (`waiting`, `reserved`,
`unreachable`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workflows.inputs import Finding

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
    "OutcomeParams",
    "OutcomeResult",
    "ReviewRecord",
]


class ClaimOutcome:
    """`ClaimCallbackResponse.outcome` as strings."""

    RESERVED = "reserved"
    NOT_AT_HEAD = "not-at-head"
    NO_SPECIALIST_FREE = "no-specialist-free"
    ALREADY_FINISHED = "already-finished"


class DialOutcome:
    """What became of one outbound callback call."""

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
    outcome: str
    state: str = ""
    position: int = 0
    agent_id: str = ""
    agent_name: str = ""
    agent_number: str = ""
    agent_sip_uri: str = ""
    reserved_until: datetime | None = None


@dataclass
class FinishParams:
    call_id: str
    state: str
    note: str = ""


@dataclass
class FinishResult:
    state: str
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
    outcome: str
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
    state: str
    enqueued_at: datetime | None = None
    finished_at: datetime | None = None
    agent_id: str = ""


@dataclass
class DecisionView:
    decision_id: str
    kind: str
    """transfer_team, transfer_agent, callback, fallback."""
    team_id: str = ""
    agent_id: str = ""
    agent_name: str = ""
    tier: str = ""
    issue_category: str = ""
    complexity: str = ""
    estimated_wait_seconds: float | None = None
    decided_at: datetime | None = None
    callback: CallbackView | None = None


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
    state: str
    findings: list[Finding] = field(default_factory=list)
    team_id: str = ""
    agent_id: str = ""
    verdict: str = ""
    note: str = ""
