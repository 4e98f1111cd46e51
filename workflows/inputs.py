"""Workflow inputs and query results: plain dataclasses that Temporal's JSON converter round-trips.

Durations are whole seconds (the converter has no `timedelta`), instants are timezone-aware `datetime`s.
Every field has a default except the identifying ones, so fields can be added later without breaking
recorded histories or the edge's outbox payloads.

Privacy: `QueueCallbackInput.customer_number` (the raw E.164 number the callback dials) lives only in the
input payload. Workflow ids, memos, search attributes, queries and logs use `masked_number`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "DEFAULT_CRITICAL_KEYWORDS",
    "BusinessHoursInput",
    "CallbackStatus",
    "EscalationReviewInput",
    "Finding",
    "QueueCallbackInput",
    "RescheduleRequest",
    "ReviewStatus",
    "callback_workflow_id",
    "review_workflow_id",
]

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
    state: str
    """waiting, closed (outside business hours), reserved, dialling, retry-wait, connected, cancelled,
    unreachable, expired."""
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


@dataclass
class Finding:
    """One rule that fired in a review."""

    rule: str
    detail: str
    needs_human: bool = True


@dataclass
class ReviewStatus:
    """The `findings` query of `EscalationReviewWorkflow`."""

    call_id: str
    state: str
    """gathering, waiting-callback, recorded (no human needed), awaiting-review, overdue, completed,
    abandoned."""
    findings: list[Finding] = field(default_factory=list)
    team_id: str = ""
    agent_id: str = ""
    verdict: str = ""
    note: str = ""
    deadline: datetime | None = None
    overdue: bool = False
