"""Periodic housekeeping: assignments whose stage timed out, and callbacks that waited too long.

* reserved / offered past the hold -> released ("hold expired": a lost webhook, a callback never dialled);
* connected past the team's `max_talk` (nobody completed the conversation) -> wrap-up, logged as
  `talk_limit_reached` (numbers masked) and counted by team;
* wrap-up past its end -> completed: the slot is freed and announced, so waiting callbacks are woken;
* callbacks waiting longer than the policy's callback_ttl -> expired;
* waiting callbacks whose promise deadline passed -> the breach recorded once (`app.promises.record_breach`:
  stored on the ticket, logged as `callback_promise_breached`, counted by team), so a breach is seen when
  it happens, not only when the callback next claims.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from escalade_platform.masking import mask_number
from routing_service.app.availability import AvailabilityBroadcaster, announce_release
from routing_service.app.failures import looks_unavailable
from routing_service.app.lifecycle import notify_talk_limit, team_limits, team_of
from routing_service.app.policy_source import PolicySource
from routing_service.app.ports import StageChange, UnitOfWork, UnitOfWorkFactory
from routing_service.app.promises import record_breach
from routing_service.domain.lifecycle import AssignmentRecord, AssignmentStage
from routing_service.domain.models import CallbackState, Policy

__all__ = ["SweepResult", "run_sweeper", "sweep_once"]

log = structlog.get_logger(__name__)
BATCH = 200


@dataclass(frozen=True, slots=True)
class SweepResult:
    """How many assignments one sweep freed (hold expired, wrap-up over), how many conversations it ended at
    the safety limit, how many callbacks it expired, and how many broken promises it recorded."""

    released: int
    expired_callbacks: int
    talk_limits: int = 0
    breaches: int = 0


async def _move_due(
    u: UnitOfWork, due: AssignmentRecord, policy: Policy | None, now: datetime
) -> StageChange | None:
    """The move a timed-out stage calls for (None: nothing, e.g. it moved meanwhile)."""
    if due.stage is AssignmentStage.CONNECTED:
        team_id = await team_of(u, due)
        wrap_up = team_limits(policy, team_id).wrap_up if policy is not None else timedelta(0)
        if wrap_up > timedelta(0):
            return await u.assignments.transition(
                due.call_id,
                due.purpose,
                AssignmentStage.WRAP_UP,
                now,
                "talk limit reached",
                expires_at=now + wrap_up,
            )
        return await u.assignments.transition(
            due.call_id, due.purpose, AssignmentStage.COMPLETED, now, "talk limit reached"
        )
    if due.stage is AssignmentStage.WRAP_UP:
        return await u.assignments.transition(
            due.call_id, due.purpose, AssignmentStage.COMPLETED, now, "wrap-up over"
        )
    return await u.assignments.transition(
        due.call_id, due.purpose, AssignmentStage.RELEASED, now, "hold expired"
    )


async def _log_talk_limit(u: UnitOfWork, record: AssignmentRecord, now: datetime) -> str | None:
    """Log a conversation ended at the safety limit (numbers masked); its team."""
    decision = await u.decisions.latest_for_call(record.call_id)
    agent = await u.agents.get(record.agent_id)
    team_id = record.team_id or (decision.team_id if decision is not None else None)
    log.warning(
        "talk_limit_reached",
        call_id=record.call_id,
        agent_id=record.agent_id,
        team_id=team_id,
        connected_at=record.connected_at.isoformat() if record.connected_at else None,
        caller=mask_number(decision.caller_number) if decision and decision.caller_number else "",
        specialist_number=mask_number(agent.destination.number or "") if agent else "",
        talked_minutes=round((now - record.connected_at).total_seconds() / 60, 1)
        if record.connected_at
        else None,
    )
    return team_id or None


async def sweep_once(
    *,
    uow: UnitOfWorkFactory,
    now: datetime,
    callback_ttl: timedelta,
    events: AvailabilityBroadcaster | None = None,
    policy: Policy | None = None,
) -> SweepResult:
    """One pass; each assignment is its own transaction so one failure does not block the rest. Without
    `policy` a conversation at its safety limit gets no wrap-up (the teams' limits are unknown)."""
    released = 0
    talk_limits = 0
    async with uow() as u:
        due = await u.assignments.expired(now, BATCH)
    for record in due:
        freed = None
        team_id = record.team_id
        async with uow() as u:
            done = await _move_due(u, record, policy, now)
            if done is not None and record.stage is AssignmentStage.CONNECTED:
                team_id = await _log_talk_limit(u, record, now)
            freed = await announce_release(u, done.released if done else None, now)
            await u.commit()
        if done is None:
            continue
        if record.stage is AssignmentStage.CONNECTED:
            talk_limits += 1
            notify_talk_limit(team_id, completed=True)
        if done.released is not None:
            released += 1
        if events is not None and freed is not None:
            events.publish_freed(freed)
    expired = 0
    cutoff = now - callback_ttl
    async with uow() as u:
        waiting = await u.callbacks.find(team_id=None, states={CallbackState.WAITING}, limit=10 * BATCH)
    for ticket in waiting:
        if ticket.enqueued_at >= cutoff:
            continue
        async with uow() as u:
            await u.callbacks.finish(
                ticket.call_id, CallbackState.EXPIRED, now, "waited longer than callback_ttl"
            )
            await u.commit()
        expired += 1
    breaches = await _record_breaches(uow, policy, now)
    if released or expired or talk_limits or breaches:
        log.info(
            "sweep",
            released=released,
            expired_callbacks=expired,
            talk_limits=talk_limits,
            promise_breaches=breaches,
        )
    return SweepResult(released, expired, talk_limits, breaches)


async def _record_breaches(uow: UnitOfWorkFactory, policy: Policy | None, now: datetime) -> int:
    """Record the breach of each waiting callback whose promise deadline passed (the policy's teams, at most
    BATCH each per sweep; the rest next time). Each is its own transaction, and `record_breach` stores it
    only if no claim or other sweeper did first: one log line and one count per breach."""
    if policy is None:
        return 0
    recorded = 0
    for team_id in policy.teams:
        async with uow() as u:
            overdue = await u.callbacks.overdue_waiting(team_id, now, BATCH)
        for ticket in overdue:
            async with uow() as u:
                after = await record_breach(u, ticket, now, [])
                await u.commit()
            recorded += after is not ticket
    return recorded


async def run_sweeper(
    *,
    uow: UnitOfWorkFactory,
    policies: PolicySource,
    clock: Callable[[], datetime],
    interval: float,
    callback_ttl: timedelta | None = None,
    events: AvailabilityBroadcaster | None = None,
) -> None:
    """Sweep every `interval` seconds until cancelled; errors are logged, never fatal."""
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep_once(
                uow=uow,
                now=clock(),
                callback_ttl=callback_ttl or policies.current.queue.callback_ttl,
                events=events,
                policy=policies.current,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if looks_unavailable(exc):
                log.warning("sweep_skipped_store_unavailable", error=str(exc))
            else:
                log.exception("sweep_failed")
