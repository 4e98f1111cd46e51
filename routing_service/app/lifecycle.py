"""Use cases of the assignment lifecycle: what Vapi reported about a call (`record_call_event`), the
specialist's side saying the conversation is over (`complete_assignment`), and a missed offer
(`record_missed_offer`, also used by a repeated escalation of the same call).

The meaning of each Vapi event is the domain's (`domain.lifecycle.classify_call_event`); these functions
apply it in one unit of work each, count misses against the specialist (away after the team's
`missed_offers_before_away` in a row), and announce every freed slot (availability watchers, such as
waiting callbacks, then try to claim it). `observe_lifecycle` lets the metrics count what happened by team.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from routing_service.app.assignments import LIVE
from routing_service.app.availability import AvailabilityBroadcaster, announce_release
from routing_service.app.ports import AgentFreed, StageChange, UnitOfWork, UnitOfWorkFactory
from routing_service.domain.errors import Conflict, InvalidRequest, NotFound
from routing_service.domain.lifecycle import (
    AssignmentRecord,
    AssignmentStage,
    CallEventKind,
    classify_call_event,
)
from routing_service.domain.models import (
    DEFAULT_MAX_TALK,
    DEFAULT_MISSED_OFFERS_BEFORE_AWAY,
    DEFAULT_WRAP_UP,
    Policy,
    Team,
)

__all__ = [
    "CallEvent",
    "CallEventResult",
    "Completion",
    "LifecycleObserver",
    "complete_assignment",
    "notify_talk_limit",
    "observe_lifecycle",
    "record_call_event",
    "record_missed_offer",
    "team_limits",
    "team_of",
]

log = structlog.get_logger(__name__)

ID_LIMIT = 128
REASON_LIMIT = 256
STATUS_LIMIT = 64
NOTE_LIMIT = 1024


class LifecycleObserver(Protocol):
    """What the metrics hear (team "" when the assignment carries no team)."""

    def missed_offer(self, team_id: str) -> None: ...
    def talk_limit_reached(self, team_id: str) -> None: ...
    def conversation_completed(self, team_id: str) -> None: ...


_observers: list[LifecycleObserver] = []


def observe_lifecycle(observer: LifecycleObserver) -> Callable[[], None]:
    """Register `observer` (the routing metrics); returns the function that unregisters it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


def _notify(event: str, team_id: str | None) -> None:
    for observer in tuple(_observers):
        getattr(observer, event)(team_id or "")


@dataclass(frozen=True, slots=True)
class TeamLimits:
    max_talk: timedelta
    wrap_up: timedelta
    missed_offers_before_away: int


def notify_talk_limit(team_id: str | None, *, completed: bool) -> None:
    """Count a conversation ended by the team's safety limit (and, with `completed`, as completed)."""
    _notify("talk_limit_reached", team_id)
    if completed:
        _notify("conversation_completed", team_id)


def team_limits(policy: Policy, team_id: str | None) -> TeamLimits:
    """The team's lifecycle limits, the defaults for a team the policy no longer has (or none recorded)."""
    team: Team | None = policy.teams.get(team_id) if team_id else None
    if team is None:
        return TeamLimits(DEFAULT_MAX_TALK, DEFAULT_WRAP_UP, DEFAULT_MISSED_OFFERS_BEFORE_AWAY)
    return TeamLimits(team.max_talk, team.wrap_up, team.missed_offers_before_away)


async def team_of(u: UnitOfWork, record: AssignmentRecord) -> str | None:
    """The team the call was routed to: recorded on the assignment, else (an assignment reserved before
    teams were recorded) the team of the call's latest decision."""
    if record.team_id:
        return record.team_id
    decision = await u.decisions.latest_for_call(record.call_id)
    return decision.team_id if decision is not None and decision.team_id else None


@dataclass(frozen=True, slots=True)
class CallEvent:
    """What the edge forwards from Vapi (see RecordCallEventRequest)."""

    call_id: str
    kind: CallEventKind | None
    ended_reason: str = ""
    transfer_status: str = ""


@dataclass(frozen=True, slots=True)
class CallEventResult:
    assignment: AssignmentRecord | None
    """The call's live assignment after the event (the moved record when the event freed it)."""
    changed: bool
    agent_set_away: bool = False


def validate_call_event(event: CallEvent) -> None:
    violations = []
    if not event.call_id:
        violations.append(("call_id", "required"))
    elif len(event.call_id) > ID_LIMIT:
        violations.append(("call_id", f"at most {ID_LIMIT} characters"))
    if event.kind is None:
        violations.append(("kind", "required (forwarding, ended or transfer_update)"))
    if len(event.ended_reason) > REASON_LIMIT:
        violations.append(("ended_reason", f"at most {REASON_LIMIT} characters"))
    if len(event.transfer_status) > STATUS_LIMIT:
        violations.append(("transfer_status", f"at most {STATUS_LIMIT} characters"))
    if violations:
        raise InvalidRequest("invalid call event", violations)


@dataclass(frozen=True, slots=True)
class _Missed:
    freed: AgentFreed | None
    set_away: bool


async def _count_miss(u: UnitOfWork, policy: Policy, change: StageChange, now: datetime) -> _Missed:
    """A transition to missed happened in `u`: count it against the specialist (maybe away) and announce
    the slot unless the specialist was just set away (nobody can use it then)."""
    record = change.assignment
    team_id = await team_of(u, record)
    limits = team_limits(policy, team_id)
    missed = await u.agents.note_missed_offer(record.agent_id, now, limits.missed_offers_before_away)
    set_away = missed is not None and missed.set_away
    _notify("missed_offer", team_id)
    if set_away:
        log.info(
            "agent_set_away",
            agent_id=record.agent_id,
            team_id=team_id,
            missed_in_row=missed.agent.missed_in_row if missed else 0,
        )
    freed = None if set_away else await announce_release(u, change.released, now)
    return _Missed(freed, set_away)


async def record_missed_offer(
    u: UnitOfWork, policy: Policy, assignment: AssignmentRecord, *, now: datetime, reason: str
) -> AgentFreed | None:
    """In `u`: the specialist did not take `assignment` (reserved or offered): it ends missed, their misses
    in a row go up (away at the team's limit) and the slot is freed. The notice to publish after the
    commit; None when nothing changed (no longer held, or already past the offer) or the specialist went
    away."""
    change = await u.assignments.transition(
        assignment.call_id, assignment.purpose, AssignmentStage.MISSED, now, reason
    )
    if change is None:
        return None
    return (await _count_miss(u, policy, change, now)).freed


async def record_call_event(
    event: CallEvent,
    *,
    uow: UnitOfWorkFactory,
    policy: Policy,
    now: datetime,
    events: AvailabilityBroadcaster | None = None,
) -> CallEventResult:
    """Apply what Vapi reported about a live call (see `domain.lifecycle.classify_call_event`).
    Idempotent: a repeated event (or one that no longer applies) changes nothing."""
    validate_call_event(event)
    assert event.kind is not None
    freed: AgentFreed | None = None
    set_away = False
    async with uow() as u:
        live = await u.assignments.live_for_call(event.call_id, LIVE)
        if live is None:
            return CallEventResult(None, changed=False)
        effect = classify_call_event(
            live.stage, event.kind, ended_reason=event.ended_reason, transfer_status=event.transfer_status
        )
        if effect is None:
            return CallEventResult(live, changed=False)
        expires: datetime | None = None
        if effect.to_stage is AssignmentStage.OFFERED:
            expires = now + policy.assignment_ttl
        elif effect.to_stage is AssignmentStage.CONNECTED:
            expires = now + team_limits(policy, await team_of(u, live)).max_talk
        change = await u.assignments.transition(
            event.call_id, LIVE, effect.to_stage, now, effect.reason, expires_at=expires
        )
        if change is None:  # a concurrent event moved it first
            return CallEventResult(await u.assignments.live_for_call(event.call_id, LIVE), changed=False)
        if effect.to_stage is AssignmentStage.CONNECTED:
            await u.agents.reset_misses(live.agent_id, now)
        elif effect.counts_as_miss:
            missed = await _count_miss(u, policy, change, now)
            freed, set_away = missed.freed, missed.set_away
        else:
            freed = await announce_release(u, change.released, now)
        await u.commit()
    log.info(
        "call_event",
        call_id=event.call_id,
        kind=str(event.kind),
        agent_id=live.agent_id,
        stage=str(change.assignment.stage),
        reason=effect.reason,
    )
    if events is not None and freed is not None:
        events.publish_freed(freed)
    return CallEventResult(change.assignment, changed=True, agent_set_away=set_away)


@dataclass(frozen=True, slots=True)
class Completion:
    assignment: AssignmentRecord
    completed: bool
    """False when the conversation had already been completed (a repeat)."""


def _validate_completion(call_id: str, agent_id: str, note: str) -> None:
    violations = []
    if not call_id and not agent_id:
        violations.append(("call_id", "give the call id, or the agent id of its specialist"))
    if call_id and agent_id:
        violations.append(("agent_id", "give the call id or the agent id, not both"))
    for name, value in (("call_id", call_id), ("agent_id", agent_id)):
        if len(value) > ID_LIMIT:
            violations.append((name, f"at most {ID_LIMIT} characters"))
    if len(note) > NOTE_LIMIT:
        violations.append(("note", f"at most {NOTE_LIMIT} characters"))
    if violations:
        raise InvalidRequest("invalid completion", violations)


async def _conversation_of_agent(u: UnitOfWork, agent_id: str) -> AssignmentRecord:
    """The specialist's one live conversation (connected, or in wrap-up for a repeat)."""
    if await u.agents.get(agent_id) is None:
        raise NotFound(f"no agent {agent_id!r}")
    held = [a for a in await u.assignments.live_for_agents([agent_id]) if a.purpose == LIVE]
    connected = [a for a in held if a.stage is AssignmentStage.CONNECTED]
    if len(connected) > 1:
        calls = ", ".join(a.call_id for a in connected)
        raise Conflict(
            f"agent {agent_id} has {len(connected)} conversations in progress ({calls}):"
            " complete one by call id"
        )
    if connected:
        return connected[0]
    wrapping = [a for a in held if a.stage is AssignmentStage.WRAP_UP]
    if len(wrapping) == 1:
        return wrapping[0]
    raise Conflict(f"agent {agent_id} has no conversation in progress")


async def complete_assignment(
    *,
    call_id: str = "",
    agent_id: str = "",
    note: str = "",
    skip_wrap_up: bool = False,
    uow: UnitOfWorkFactory,
    policy: Policy,
    now: datetime,
    events: AvailabilityBroadcaster | None = None,
) -> Completion:
    """The specialist's side says the conversation is over: connected -> wrap-up for the team's
    `wrap_up` (or straight to completed with `skip_wrap_up`, or a zero wrap-up). By `call_id`, or by
    `agent_id` when that specialist has exactly one conversation in progress. A repeat gives
    `completed=False` (with `skip_wrap_up` during wrap-up it still frees the specialist at once).
    NotFound: no specialist was ever assigned to the call / unknown agent. Conflict (FAILED_PRECONDITION):
    the call is not connected yet, or its assignment already ended otherwise (missed, released)."""
    _validate_completion(call_id, agent_id, note)
    reason = f"completed: {note}" if note else "completed"
    freed: AgentFreed | None = None
    async with uow() as u:
        if agent_id:
            live: AssignmentRecord | None = await _conversation_of_agent(u, agent_id)
        else:
            live = await u.assignments.live_for_call(call_id, LIVE)
        if live is None:
            latest = await u.assignments.latest_for_call(call_id, LIVE)
            if latest is None:
                raise NotFound(f"no specialist was assigned to call {call_id!r}")
            if latest.stage is AssignmentStage.COMPLETED:
                return Completion(latest, completed=False)
            raise Conflict(
                f"call {call_id}'s assignment ended {latest.stage} ({latest.reason}):"
                " there is no conversation to complete"
            )
        if live.stage in (AssignmentStage.RESERVED, AssignmentStage.OFFERED):
            raise Conflict(
                f"call {live.call_id} is not connected to its specialist yet (stage {live.stage}); to free"
                " the hold use ReleaseAssignment"
            )
        team_id = await team_of(u, live)
        limits = team_limits(policy, team_id)
        repeat = live.stage is AssignmentStage.WRAP_UP
        if repeat and not skip_wrap_up:
            return Completion(live, completed=False)
        straight = skip_wrap_up or limits.wrap_up <= timedelta(0)
        to_stage = AssignmentStage.COMPLETED if straight else AssignmentStage.WRAP_UP
        expires = None if straight else now + limits.wrap_up
        change = await u.assignments.transition(
            live.call_id, LIVE, to_stage, now, reason[:REASON_LIMIT], expires_at=expires
        )
        if change is None:  # a concurrent completion or the sweeper moved it first
            current = await u.assignments.live_for_call(live.call_id, LIVE)
            latest = current or await u.assignments.latest_for_call(live.call_id, LIVE)
            return Completion(latest or live, completed=False)
        freed = await announce_release(u, change.released, now)
        await u.commit()
    if not repeat:
        _notify("conversation_completed", team_id)
    log.info(
        "conversation_completed",
        call_id=live.call_id,
        agent_id=live.agent_id,
        stage=str(change.assignment.stage),
        skip_wrap_up=skip_wrap_up,
    )
    if events is not None and freed is not None:
        events.publish_freed(freed)
    return Completion(change.assignment, completed=not repeat)
