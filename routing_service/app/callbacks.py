"""Use cases of the callback queue: claim a specialist for the head of the queue, finish a callback, list
the queue, and the per-team queue status (waiting callbacks, free specialists, estimated wait)."""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing_service.app.assignments import CALLBACK
from routing_service.app.availability import AvailabilityBroadcaster, announce_release
from routing_service.app.ports import TeamStats, UnitOfWorkFactory
from routing_service.app.promises import (
    PromiseStats,
    claim_order,
    note_started,
    promise_stats,
    record_breach,
    team_wait,
)
from routing_service.app.widening import claim_candidates, notify_claimed
from routing_service.domain.errors import Conflict, InvalidRequest, NotFound
from routing_service.domain.models import (
    Agent,
    CallbackState,
    CallbackTicket,
    Complexity,
    Policy,
    TraceOutcome,
    TraceStep,
)
from routing_service.domain.queueing import closed_until
from routing_service.domain.selection import STAGE as CANDIDATE_STAGE
from routing_service.domain.widening import WideningScope, widening_scope

__all__ = [
    "ClaimOutcome",
    "ClaimResult",
    "QueueStatus",
    "claim_callback",
    "finish_callback",
    "list_callbacks",
    "queue_status",
    "team_wait",
]

MAX_HOLD = timedelta(hours=24)
TERMINAL = frozenset(
    {CallbackState.CONNECTED, CallbackState.CANCELLED, CallbackState.UNREACHABLE, CallbackState.EXPIRED}
)


class ClaimOutcome(enum.StrEnum):
    """What ClaimCallback did (the proto's ClaimOutcome). The callback workflow reads the same outcome from
    the proto as `workflows.payloads.ClaimOutcome`, spelled the same (a unit test checks both)."""

    RESERVED = "reserved"
    NOT_AT_HEAD = "not-at-head"
    NO_SPECIALIST_FREE = "no-specialist-free"
    ALREADY_FINISHED = "already-finished"


@dataclass(frozen=True, slots=True)
class ClaimResult:
    """The outcome, the callback as it now stands, the reserved specialist when there is one, and the
    claim's trace (its promise: moved ahead, waiting behind an at-risk one, broken)."""

    outcome: ClaimOutcome
    callback: CallbackTicket
    agent: Agent | None = None
    widening: WideningScope | None = None
    """The widening step in force when the claim looked for a specialist (None when it did not look)."""
    trace: tuple[TraceStep, ...] = ()
    """How the claim went: a promise at risk moving ahead or broken, the widening step, every specialist
    seen, the one reserved."""
    served_team: str = ""
    """The team whose specialist was reserved: the callback's own, or an overflow team."""


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One team's queue: its load figures and the wait a new callback would face."""

    team_id: str
    display_name: str
    stats: TeamStats
    estimated_wait: timedelta
    closed_until: datetime | None = None
    """When the team next opens, while it is outside its business hours."""
    promises: PromiseStats | None = None
    """Kept rates and the estimate's accuracy (`app.promises.promise_stats`)."""


async def claim_callback(
    call_id: str, hold_for: timedelta | None, *, uow: UnitOfWorkFactory, policy: Policy, now: datetime
) -> ClaimResult:
    """Reserve a qualified free specialist for the callback, only when it is the head of its team's queue."""
    violations = []
    if not call_id:
        violations.append(("call_id", "required"))
    if hold_for is not None and not timedelta(0) <= hold_for <= MAX_HOLD:
        violations.append(("hold_for", "must be between 0 and 24 hours"))
    if violations:
        raise InvalidRequest("invalid claim", violations)
    hold = hold_for or policy.queue.reservation_hold
    trace: list[TraceStep] = []
    async with uow() as u:
        ticket = await u.callbacks.get(call_id)
        if ticket is None:
            raise NotFound(f"no callback for call {call_id!r}")
        if not ticket.state.is_open:
            return ClaimResult(ClaimOutcome.ALREADY_FINISHED, ticket)
        if ticket.state is CallbackState.RESERVED:
            holder = await u.assignments.active_for_call(call_id, CALLBACK)
            if holder is not None:
                agent = await u.agents.get(holder)
                return ClaimResult(ClaimOutcome.RESERVED, ticket, agent)
            # The hold lapsed (the sweeper freed it): the callback competes again from its place.
        breached = await record_breach(u, ticket, now, trace)
        if breached is not ticket:
            await u.commit()
            ticket = breached
        if not await claim_order(u, ticket, policy, now, trace):
            # Not its turn yet; the step it is at still shows (and says when to claim again).
            scope = widening_scope(policy, ticket, now)
            return ClaimResult(ClaimOutcome.NOT_AT_HEAD, ticket, widening=scope, trace=tuple(trace))
        if ticket.team_id not in policy.teams:
            return ClaimResult(ClaimOutcome.NO_SPECIALIST_FREE, ticket, trace=tuple(trace))
        customer = await u.customers.get(ticket.caller_number) if ticket.caller_number else None
        found = await claim_candidates(
            u, policy, ticket, preferred_agent_id=customer.last_agent_id if customer else None, now=now
        )
        critical = ticket.effective_complexity is Complexity.CRITICAL
        for agent, team_id in found.ranked:
            judged = policy.fair_load is not None and policy.fair_load.caps_for(team_id, agent.agent_id).any
            won = await u.assignments.reserve(
                agent_id=agent.agent_id,
                call_id=call_id,
                purpose=CALLBACK,
                now=now,
                expires_at=now + hold,
                critical=critical,
                load_version=agent.load_version if judged else None,
            )
            if won:
                reserved = await u.callbacks.mark_reserved(call_id, agent.agent_id, now + hold, now=now)
                await u.commit()
                note_started(ticket, now)
                fresh = await u.agents.get(agent.agent_id)
                notify_claimed(ticket, found.scope, agent_id=agent.agent_id, served_team=team_id)
                chosen = TraceStep(
                    CANDIDATE_STAGE, agent.agent_id, TraceOutcome.CHOSEN, f"reserved for team {team_id}"
                )
                return ClaimResult(
                    ClaimOutcome.RESERVED,
                    reserved,
                    fresh or agent,
                    widening=found.scope,
                    trace=(*trace, *found.steps, chosen),
                    served_team=team_id,
                )
        return ClaimResult(
            ClaimOutcome.NO_SPECIALIST_FREE, ticket, widening=found.scope, trace=(*trace, *found.steps)
        )


async def finish_callback(
    call_id: str,
    state: CallbackState | None,
    note: str,
    *,
    uow: UnitOfWorkFactory,
    now: datetime,
    events: AvailabilityBroadcaster | None = None,
) -> CallbackTicket:
    """End a callback and free its reservation. Finishing again with the same state returns it unchanged."""
    violations = []
    if not call_id:
        violations.append(("call_id", "required"))
    if state not in TERMINAL:
        violations.append(("state", "must be CONNECTED, CANCELLED, UNREACHABLE or EXPIRED"))
    if len(note) > 1024:
        violations.append(("note", "at most 1024 characters"))
    if violations or state is None:
        raise InvalidRequest("invalid finish", violations)
    async with uow() as u:
        ticket = await u.callbacks.get(call_id)
        if ticket is None:
            raise NotFound(f"no callback for call {call_id!r}")
        if not ticket.state.is_open:
            if ticket.state is state:
                return ticket
            raise Conflict(f"callback {call_id!r} already ended as {ticket.state.value}")
        released = await u.assignments.release(call_id, CALLBACK, now, note or state.value)
        finished = await u.callbacks.finish(call_id, state, now, note)
        freed = await announce_release(u, released, now)
        await u.commit()
    if events is not None and freed is not None:
        events.publish_freed(freed)
    return finished


async def list_callbacks(
    *,
    team_id: str | None,
    state: CallbackState | None,
    uow: UnitOfWorkFactory,
    page_size: int = 0,
    page_token: str = "",
) -> tuple[list[CallbackTicket], str]:
    """One page of the queue in (team, service order): at most `page_size` (1-1000; 0: 1000) tickets from
    its head, or after the ticket `page_token` names; without a state, the open (WAITING and RESERVED)
    callbacks. Returns the page and, when it is full, the token of its last ticket."""
    violations = []
    if not 0 <= page_size <= 1000:
        violations.append(("page_size", "must be between 1 and 1000 (0: 1000)"))
    after = None
    if page_token:
        try:
            after = _ticket_from_token(page_token)
        except ValueError:
            violations.append(("page_token", "not a token this service gave (pass next_page_token back)"))
    if violations:
        raise InvalidRequest("invalid callback listing", violations)
    limit = page_size or 1000
    async with uow() as u:
        if team_id and state is None and after is None:
            page = await u.callbacks.open_in_team(team_id, limit)
        else:
            states = {state} if state is not None else {CallbackState.WAITING, CallbackState.RESERVED}
            page = await u.callbacks.find(team_id=team_id or None, states=states, limit=limit, after=after)
    return page, (_token_for(page[-1]) if len(page) >= limit else "")


def _token_for(ticket: CallbackTicket) -> str:
    """An opaque page token: the keys that place `ticket` in (team, service order)."""
    keys = [
        ticket.team_id,
        str(ticket.state),
        ticket.service_key,
        ticket.enqueued_at.isoformat(),
        ticket.call_id,
    ]
    return base64.urlsafe_b64encode(json.dumps(keys, separators=(",", ":")).encode()).decode()


def _ticket_from_token(token: str) -> CallbackTicket:
    """The ordering keys a token carries, as a ticket (ValueError when it is not one of ours)."""
    try:
        team_id, state, service_key, enqueued_at, call_id = json.loads(base64.urlsafe_b64decode(token))
        at = datetime.fromisoformat(enqueued_at)
        valid = (
            isinstance(team_id, str)
            and isinstance(call_id, str)
            and isinstance(service_key, int | float)
            and at.tzinfo is not None
        )
        if not valid:
            raise ValueError("bad page token")
        return CallbackTicket(
            call_id=call_id,
            team_id=team_id,
            state=CallbackState(state),
            caller_number="",
            tier="",
            issue_category="",
            effective_complexity=Complexity.BASIC,
            priority=0,
            service_key=float(service_key),
            enqueued_at=at,
            decision_id="",
        )
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as error:
        raise ValueError("bad page token") from error


async def queue_status(
    team_id: str | None, *, uow: UnitOfWorkFactory, policy: Policy, now: datetime
) -> list[QueueStatus]:
    """Per team of the policy (or the one asked for): waiting callbacks, free specialists, estimated wait."""
    if team_id:
        if team_id not in policy.teams:
            raise NotFound(f"no team {team_id!r} in policy {policy.name!r}")
        team_ids = [team_id]
    else:
        team_ids = list(policy.teams)
    async with uow() as u:
        stats = await u.agents.team_stats(team_ids, now)
        result = []
        for tid in team_ids:
            s = stats.get(tid) or TeamStats(tid, 0, 0, 0, 0, None)
            wait = (
                await team_wait(
                    u, policy, tid, position=s.waiting_callbacks + 1, serving_agents=s.total_agents, now=now
                )
                if s.total_agents and (s.waiting_callbacks or not s.available_agents)
                else timedelta(0)
            )
            team = policy.teams[tid]
            result.append(
                QueueStatus(
                    tid,
                    team.display_name,
                    s,
                    wait,
                    closed_until(team.business_hours, now),
                    await promise_stats(u, tid, now),
                )
            )
    return result
