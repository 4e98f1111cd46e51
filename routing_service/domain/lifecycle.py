"""The life of a specialist's assignment to a call, and what Vapi's call events mean for it.

    reserved --forwarding--> offered --hand-over--> connected
    connected --complete / safety limit--> wrap_up --end of wrap-up--> completed   (free, handle time)
    reserved/offered --the specialist did not take it--> missed      (free, counted against them)
    reserved/offered --the call ended, the customer left--> released  (free, unused, not counted)

Vapi's own call ends when it hands the caller over (`assistant-forwarded-call`) and it never reports the
specialist's conversation (docs/lifecycle.md): a connected assignment is never freed by a Vapi event, only by
the specialist's side (CompleteAssignment) or the team's safety limit. Pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from routing_service.domain.models import AgentStatus

__all__ = [
    "ALLOWED_FROM",
    "HOLDS_SLOT",
    "TRANSFER_CONNECTED",
    "TRANSFER_NOT_TAKEN",
    "AgentActivity",
    "AgentActivityView",
    "AssignmentRecord",
    "AssignmentStage",
    "CallEventEffect",
    "CallEventKind",
    "TransferStatus",
    "agent_activity",
    "classify_call_event",
]


class AssignmentStage(enum.StrEnum):
    RESERVED = "reserved"
    """Held for the call; Vapi has not started the transfer yet."""
    OFFERED = "offered"
    """Vapi is dialling / handing over to the specialist."""
    CONNECTED = "connected"
    """Hand-over done: the specialist is talking to the caller."""
    WRAP_UP = "wrap-up"
    """The conversation is over; the specialist finishes the call's notes."""
    COMPLETED = "completed"
    """Free again after a conversation (connected -> completed is the handle time)."""
    MISSED = "missed"
    """The specialist did not take the call: free, no handle time, counted in their misses in a row."""
    RELEASED = "released"
    """Free, unused: the call ended before any transfer, the customer left, the hold expired or an
    administrator released it."""

    @property
    def holds_slot(self) -> bool:
        return self in HOLDS_SLOT


HOLDS_SLOT = frozenset(
    {AssignmentStage.RESERVED, AssignmentStage.OFFERED, AssignmentStage.CONNECTED, AssignmentStage.WRAP_UP}
)
"""Stages in which the assignment holds one of the specialist's slots."""

_BEFORE_HAND_OVER = frozenset({AssignmentStage.RESERVED, AssignmentStage.OFFERED})
ALLOWED_FROM: dict[AssignmentStage, frozenset[AssignmentStage]] = {
    AssignmentStage.RESERVED: frozenset(),
    AssignmentStage.OFFERED: frozenset({AssignmentStage.RESERVED}),
    AssignmentStage.CONNECTED: _BEFORE_HAND_OVER,
    AssignmentStage.WRAP_UP: frozenset({AssignmentStage.CONNECTED}),
    AssignmentStage.COMPLETED: frozenset({AssignmentStage.CONNECTED, AssignmentStage.WRAP_UP}),
    AssignmentStage.MISSED: _BEFORE_HAND_OVER,
    AssignmentStage.RELEASED: _BEFORE_HAND_OVER,
}
"""The stages a move to each stage starts from (anything else: the move does not apply). An administrative
release (`ReleaseAssignment`) is the one way out of every stage and does not go through this table."""


class CallEventKind(enum.StrEnum):
    FORWARDING = "forwarding"
    """status-update `forwarding`."""
    ENDED = "ended"
    """status-update `ended`, with its endedReason."""
    TRANSFER_UPDATE = "transfer_update"
    """transfer-update: the status of the latest transfer attempt."""


class TransferStatus(enum.StrEnum):
    """Vapi's status of one transfer attempt (`transfer-update`'s status, `artifact.transfers[].status`),
    as routing's lifecycle and the workflows' review rules read it."""

    CONNECTED = "connected"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    VOICEMAIL = "voicemail"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """The caller left during the transfer (Vapi also spells it `canceled`)."""


TRANSFER_CONNECTED = frozenset({TransferStatus.CONNECTED, TransferStatus.COMPLETED})
"""The specialist took the call."""
TRANSFER_NOT_TAKEN = frozenset(
    {TransferStatus.BUSY, TransferStatus.NO_ANSWER, TransferStatus.VOICEMAIL, TransferStatus.FAILED}
)
"""The specialist's side did not take the transfer (`cancelled` is the caller leaving: not theirs)."""


@dataclass(frozen=True, slots=True)
class CallEventEffect:
    """What one Vapi event does to an assignment: move it to `to_stage`; `counts_as_miss` when the
    specialist did not take the call (their misses in a row go up)."""

    to_stage: AssignmentStage
    reason: str
    counts_as_miss: bool = False


HANDED_OVER = "assistant-forwarded-call"
_MISSED_REASONS = frozenset(
    {
        "call.forwarding.operator-busy",
        "call.forwarding.no-answer",
        "call.in-progress.error-transfer-failed",
    }
)
_MISSED_PREFIXES = ("call.in-progress.error-warm-transfer-",)
_CUSTOMER_LEFT_REASONS = frozenset(
    {
        "customer-ended-call-before-warm-transfer",
        "customer-ended-call-after-warm-transfer-attempt",
        "customer-ended-call-during-transfer",
    }
)
_TRANSFER_CANCELLED = frozenset({TransferStatus.CANCELLED, "canceled"})


def _is_missed_reason(reason: str) -> bool:
    return reason in _MISSED_REASONS or reason.startswith(_MISSED_PREFIXES)


def classify_call_event(
    stage: AssignmentStage, kind: CallEventKind, *, ended_reason: str = "", transfer_status: str = ""
) -> CallEventEffect | None:
    """What a Vapi event means for an assignment in `stage`; None when it changes nothing.

    * forwarding: reserved -> offered.
    * ended `assistant-forwarded-call`, or a transfer status connected/completed: -> connected.
    * ended with a failed-transfer reason (operator busy, no answer, transfer failed, warm-transfer errors),
      or a transfer status busy/no-answer/voicemail/failed: -> missed, counted against the specialist.
    * the customer left (customer-ended-call-* around a transfer, transfer status cancelled): -> released,
      not counted.
    * any other ending: while reserved the reservation was never used, while offered the outcome is unknown
      (not counted): -> released.
    * once connected (or later) nothing Vapi reports changes the assignment; an unknown transfer status
      changes nothing either.
    """
    if stage not in _BEFORE_HAND_OVER:
        return None
    if kind is CallEventKind.FORWARDING:
        if stage is AssignmentStage.RESERVED:
            return CallEventEffect(AssignmentStage.OFFERED, "forwarding")
        return None
    if kind is CallEventKind.TRANSFER_UPDATE:
        status = transfer_status.strip().lower()
        reason = f"transfer {status}"
        if status in TRANSFER_CONNECTED:
            return CallEventEffect(AssignmentStage.CONNECTED, reason)
        if status in TRANSFER_NOT_TAKEN:
            return CallEventEffect(AssignmentStage.MISSED, reason, counts_as_miss=True)
        if status in _TRANSFER_CANCELLED:
            return CallEventEffect(AssignmentStage.RELEASED, reason)
        return None
    reason = ended_reason.strip()
    if reason == HANDED_OVER:
        return CallEventEffect(AssignmentStage.CONNECTED, reason)
    if _is_missed_reason(reason):
        return CallEventEffect(AssignmentStage.MISSED, reason, counts_as_miss=True)
    if reason in _CUSTOMER_LEFT_REASONS:
        return CallEventEffect(AssignmentStage.RELEASED, reason)
    if stage is AssignmentStage.RESERVED:
        return CallEventEffect(AssignmentStage.RELEASED, f"unused: {reason or 'ended'}")
    return CallEventEffect(AssignmentStage.RELEASED, f"ended while offered: {reason or 'no reason'}")


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """One assignment of a specialist to a call, as the store keeps it."""

    call_id: str
    purpose: str
    """"live" (an escalated call) or "callback" (held while the customer is dialled back)."""
    agent_id: str
    stage: AssignmentStage
    reserved_at: datetime
    expires_at: datetime
    """While the slot is held: when the current stage times out."""
    team_id: str | None = None
    offered_at: datetime | None = None
    connected_at: datetime | None = None
    completed_at: datetime | None = None
    """When the conversation ended (wrap-up started)."""
    released_at: datetime | None = None
    """When the slot was freed."""
    reason: str = ""

    @property
    def holds_slot(self) -> bool:
        return self.stage.holds_slot


class AgentActivity(enum.StrEnum):
    """What a specialist is doing now (derived, never stored); `wrap-up` is spelled as `AgentStatus`'s."""

    AVAILABLE = "available"
    RESERVED = "reserved"
    TALKING = "talking"
    WRAP_UP = "wrap-up"
    AWAY = "away"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class AgentActivityView:
    """What a specialist is doing now and since when (None when unknown)."""

    activity: AgentActivity
    since: datetime | None


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    known = [value for value in values if value is not None]
    return min(known) if known else None


def agent_activity(
    status: AgentStatus,
    assignments: Iterable[AssignmentRecord],
    *,
    idle_since: datetime | None = None,
    status_since: datetime | None = None,
) -> AgentActivityView:
    """The busiest thing the specialist is doing: talking > wrap-up > reserved/offered > away/unavailable >
    available. `assignments` are theirs (only those holding a slot count); `idle_since` dates "available",
    `status_since` (the agent's last update) dates "away" and "unavailable"."""
    held = [a for a in assignments if a.holds_slot]
    talking = [a for a in held if a.stage is AssignmentStage.CONNECTED]
    if talking:
        return AgentActivityView(AgentActivity.TALKING, _earliest(a.connected_at for a in talking))
    wrapping = [a for a in held if a.stage is AssignmentStage.WRAP_UP]
    if wrapping:
        return AgentActivityView(AgentActivity.WRAP_UP, _earliest(a.completed_at for a in wrapping))
    if held:
        return AgentActivityView(
            AgentActivity.RESERVED, _earliest(a.offered_at or a.reserved_at for a in held)
        )
    if status is AgentStatus.AWAY:
        return AgentActivityView(AgentActivity.AWAY, status_since)
    if status is not AgentStatus.AVAILABLE:
        return AgentActivityView(AgentActivity.UNAVAILABLE, status_since)
    return AgentActivityView(AgentActivity.AVAILABLE, idle_since)
