"""The workflows' public contract: their inputs, query results and the states those report.

Plain dataclasses that Temporal's JSON converter round-trips, built by whoever starts a workflow (the edge
builds `QueueCallbackInput` and `EscalationReviewInput` from a decision and an end-of-call report, the
reconciler from a routing ticket) and read by the workflow itself: one definition each, one spelling of each
field. The edge's outbox keeps them in the same JSON form Temporal sends (`webhook_edge.outbox_payload`).

Durations are whole seconds (the converter has no `timedelta`), instants are timezone-aware `datetime`s.
Every field has a default except the identifying ones, so fields can be added later without breaking
recorded histories or pending outbox rows.

States are `StrEnum`s whose values are the strings recorded in histories, search attributes and the review
table: `CallbackPhase` (the `CallbackState` search attribute), `ReviewState`, `Verdict`.

Privacy: `QueueCallbackInput.customer_number` (the raw E.164 number the callback dials) lives only in the
input payload, which Escalade's Temporal clients encrypt when payload keys are configured
(`escalade_platform.payload_encryption`). Workflow ids, memos, search attributes, queries and logs use
`masked_number`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

__all__ = [
    "DEFAULT_CRITICAL_KEYWORDS",
    "BusinessHoursInput",
    "CallbackPhase",
    "CallbackStatus",
    "EscalationReviewInput",
    "Finding",
    "NoticeSent",
    "NotifyPlanInput",
    "QueueCallbackInput",
    "RescheduleRequest",
    "ReviewState",
    "ReviewStatus",
    "Verdict",
    "WorkflowInput",
    "callback_workflow_id",
    "review_workflow_id",
    "workflow_id_for",
]


class CallbackPhase(enum.StrEnum):
    """Where a callback stands: the `CallbackState` search attribute, `CallbackStatus.state`, and the
    callback's state in the activities' results.

    Routing's ticket states (`routing_service.domain.models.CallbackState`, `routing_pb2.CallbackState` on
    the wire) are members with the same spelling; `closed`, `dialling` and `retry-wait` are the workflow's
    own. `UNSPECIFIED` ("") is a callback that has not started yet or a ticket state routing did not give.
    """

    UNSPECIFIED = ""
    WAITING = "waiting"
    """Queued for a specialist (routing's ticket is waiting)."""
    CLOSED = "closed"
    """Outside the team's business hours: sleeping until the next opening."""
    RESERVED = "reserved"
    """Routing holds a specialist for the callback (a ticket state; the workflow reports `dialling`)."""
    DIALLING = "dialling"
    """A dial attempt with the reserved specialist is under way."""
    RETRY_WAIT = "retry-wait"
    """The last attempt did not reach the customer: waiting the retry spacing."""
    CONNECTED = "connected"
    CANCELLED = "cancelled"
    UNREACHABLE = "unreachable"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_PHASES

    @property
    def is_open_ticket(self) -> bool:
        """Routing's ticket is still in its queue (waiting or reserved)."""
        return self in (CallbackPhase.WAITING, CallbackPhase.RESERVED)


_FINAL_PHASES = frozenset(
    {CallbackPhase.CONNECTED, CallbackPhase.CANCELLED, CallbackPhase.UNREACHABLE, CallbackPhase.EXPIRED}
)


class ReviewState(enum.StrEnum):
    """Where a review stands (`ReviewStatus.state`, the review table's `state`)."""

    GATHERING = "gathering"
    WAITING_CALLBACK = "waiting-callback"
    """The call's callback is still open: waiting for it to end before judging."""
    RECORDED = "recorded"
    """Judged; no finding needs a human."""
    AWAITING_REVIEW = "awaiting-review"
    OVERDUE = "overdue"
    COMPLETED = "completed"
    ABANDONED = "abandoned"

    @property
    def awaits_verdict(self) -> bool:
        return self in (ReviewState.AWAITING_REVIEW, ReviewState.OVERDUE)


class Verdict(enum.StrEnum):
    """A supervisor's verdict on a review's findings."""

    CONFIRMED = "confirmed"
    """The findings are real problems."""
    DISMISSED = "dismissed"
    """A false alarm."""
    RESOLVED = "resolved"
    """Fixed (for example, the policy changed)."""
    WRONG_CATEGORY = "wrong-category"
    """The call was routed under the wrong category (overturns the decision; with the policy's
    `review_learning.wrong_category`, the customer's calls stated as it go to the right team)."""
    SHOULD_NOT_HAVE_ESCALATED = "should-not-have-escalated"
    """The call did not need a specialist (overturns the decision; with the policy's
    `review_learning.should_not_have_escalated`, a complexity ceiling for the customer)."""


DEFAULT_CRITICAL_KEYWORDS: tuple[str, ...] = ("down", "outage", "critical", "urgent", "emergency")
"""The seed's critical keywords; the starter passes the policy's own list when it has one."""


def callback_workflow_id(call_id: str) -> str:
    """`callback-<vapi call id>`: one callback per escalated call, whoever starts it and how often."""
    return f"callback-{call_id}"


def review_workflow_id(call_id: str) -> str:
    """`review-<vapi call id>`: one review per escalated call."""
    return f"review-{call_id}"


@dataclass
class BusinessHoursInput:
    """A team's opening hours: `days` Monday = 0, `opens`/`closes` as "HH:MM" local time in `timezone`."""

    timezone: str
    days: list[int]
    opens: str
    closes: str


@dataclass
class QueueCallbackInput:
    """Everything `QueueCallbackWorkflow` needs; built by the edge from a CALLBACK decision."""

    call_id: str
    customer_number: str
    """Raw E.164 number to dial. Never copied into ids, memo, search attributes, queries or logs."""
    masked_number: str
    team_id: str
    customer_number_problem: str = ""
    """Why `customer_number` cannot be dialled ("" = it can), as the starter judged it with `phonenumbers`
    (masked): the callback then ends `unreachable` without a dial."""
    tier: str = ""
    category: str = ""
    complexity: str = ""
    """Effective complexity label: basic, intermediate, advanced, critical."""
    priority: int = 0
    context: str = ""
    reason: str = ""
    decision_id: str = ""
    business_hours: BusinessHoursInput | None = None
    max_attempts: int = 3
    retry_spacing_seconds: int = 600
    reservation_hold_seconds: int = 300
    safety_recheck_seconds: int = 900
    """Longest wait between claims when no `specialist_available` signal arrives (lost events, replicas)."""
    head_recheck_seconds: int = 5
    """After a signal finds this callback not at the head, one more claim this much later (several free
    slots woke several callbacks at once; the head reserves first)."""
    expires_after_seconds: int = 86_400
    """A callback still waiting this long after it started ends as EXPIRED."""
    dial_heartbeat_timeout_seconds: int = 60
    """How long the dial activity may go without a heartbeat (it heartbeats each time it polls the call)
    before Temporal deems its worker dead and retries it on another, which watches the same Vapi call."""
    not_before: datetime | None = None
    """Do not dial before this instant (a promised time)."""
    first_message: str = ""
    """What the customer hears first on the callback call (`assistantOverrides.firstMessage`), rendered by
    routing from the policy's `callback_first_message`; empty (older payloads and histories): a generic
    sentence naming the category (`workflows.callback.default_first_message`)."""


@dataclass
class RescheduleRequest:
    """The `reschedule` update's argument: do not dial before `at` (timezone-aware)."""

    at: datetime


@dataclass
class CallbackStatus:
    """The `status` query of `QueueCallbackWorkflow`."""

    call_id: str
    state: CallbackPhase
    team_id: str
    masked_number: str
    position: int = 0
    attempts: int = 0
    max_attempts: int = 0
    next_attempt_at: datetime | None = None
    agent_id: str = ""
    agent_name: str = ""
    last_outcome: str = ""
    """The last dial's outcome, Vapi's endedReason and why: `not-reached (voicemail): voicemail answered`,
    `connected (customer-ended-call): the customer spoke`, `dial failed: ...`, `not dialled (...)`."""
    note: str = ""
    widening: str = ""
    """The widening step routing last reported (policy `widening`), e.g. `step 2: overflow to team general
    after 10 min`; "" while not widened."""
    promise_state: str = ""
    """on-track, at-risk, breached or kept (the `CallbackPromiseState` search attribute); "" before routing
    answered a claim or for a callback without a promise."""
    promised_by: datetime | None = None
    """The latest time the callback should start, as routing promised it."""


@dataclass
class NotifyPlanInput:
    """Who is told about a review that needs a person, by contact name in escalation order (the webhook
    URLs stay in the worker's policy file); `escalate_after_seconds` 0 means the review's deadline."""

    contacts: list[str] = field(default_factory=list)
    escalate_after_seconds: int = 0


@dataclass
class EscalationReviewInput:
    """An escalated call's end-of-call report plus the review policy's knobs."""

    call_id: str
    ended_reason: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    summary: str = ""
    transcript: str = ""
    transfer_statuses: list[str] = field(default_factory=list)
    """`artifact.transfers[].status`: connected, no-answer, busy, voicemail, failed, completed, cancelled."""
    destination: str = ""
    """Where Vapi forwarded the call (number or SIP URI), when it did."""
    final_category: str = ""
    """The category the call turned out to be about, as the edge read it (a structured output first,
    analysis.structuredData as a fallback), if known. The rules prefer `structured_outputs`."""
    structured_outputs: dict[str, Any] = field(default_factory=dict)
    """`artifact.structuredOutputs`: output id -> `{"name": ..., "result": ...}`."""
    team_target_wait_seconds: int = 300
    """The target wait of a team missing from `team_target_waits`."""
    team_target_waits: dict[str, int] = field(default_factory=dict)
    """Per team id, the policy's target wait in seconds."""
    review_deadline_seconds: int = 172_800
    """A review that needs a human and is not completed by then is recorded `overdue`."""
    close_after_seconds: int = 2_592_000
    """An overdue review still open this long after the deadline closes as `abandoned`."""
    callback_wait_seconds: int = 90_000
    """How long to wait for a callback that is still open to finish before judging it."""
    critical_keywords: list[str] = field(default_factory=lambda: list(DEFAULT_CRITICAL_KEYWORDS))
    human_review_rules: list[str] = field(
        default_factory=lambda: [
            "transfer_failed",
            "hung_up_before_specialist",
            "category_mismatch",
            "callback_unreachable",
            "callback_expired",
            "callback_not_kept",
            "critical_not_routed_critical",
            "decision_missing",
        ]
    )
    """Findings of these rules need a supervisor's `complete_review`; others are informational."""
    notify_plans: dict[str, NotifyPlanInput] = field(default_factory=dict)
    """Per team id, the policy's `review_notifications` contacts; teams missing use `default_notify_plan`."""
    default_notify_plan: NotifyPlanInput | None = None


@dataclass
class Finding:
    """One rule that fired in a review."""

    rule: str
    detail: str
    needs_human: bool = True


@dataclass
class NoticeSent:
    """One notification the review sent (or gave up sending) to a contact."""

    step: int
    """0: the review started waiting for a verdict; 1, 2, ...: each escalation after that."""
    contact: str
    delivered: bool
    detail: str = ""
    """The receiver's HTTP status, or why it was not delivered."""
    at: datetime | None = None


@dataclass
class ReviewStatus:
    """The `findings` query of `EscalationReviewWorkflow`."""

    call_id: str
    state: ReviewState
    findings: list[Finding] = field(default_factory=list)
    team_id: str = ""
    agent_id: str = ""
    verdict: str = ""
    """A `Verdict` value once a supervisor gave one, else empty."""
    note: str = ""
    deadline: datetime | None = None
    overdue: bool = False
    notices: list[NoticeSent] = field(default_factory=list)
    """The notifications sent so far, in order."""
    outcome: str = ""
    """What routing made of the verdict: `confirmed` or `overturned` the decision ("" before a verdict)."""
    learned: list[str] = field(default_factory=list)
    """What the verdict taught routing about the customer, or why nothing (policy `review_learning`)."""


WorkflowInput: TypeAlias = QueueCallbackInput | EscalationReviewInput
"""What starts a follow-up workflow: a callback or a review."""


def workflow_id_for(data: WorkflowInput) -> str:
    """The workflow id the input starts under (`callback-<call id>` / `review-<call id>`)."""
    if isinstance(data, QueueCallbackInput):
        return callback_workflow_id(data.call_id)
    return review_workflow_id(data.call_id)
