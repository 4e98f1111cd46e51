"""Periodic housekeeping: free reservations whose time ran out (a lost `ended` webhook, a callback that
never connected) and expire callbacks that waited longer than the policy's callback_ttl."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from routing_service.app.availability import AvailabilityBroadcaster, announce_release
from routing_service.app.failures import looks_unavailable
from routing_service.app.policy_source import PolicySource
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.models import CallbackState

__all__ = ["SweepResult", "run_sweeper", "sweep_once"]

log = structlog.get_logger(__name__)
BATCH = 200


@dataclass(frozen=True, slots=True)
class SweepResult:
    """How many reservations one sweep freed and how many callbacks it expired."""

    released: int
    expired_callbacks: int


async def sweep_once(
    *,
    uow: UnitOfWorkFactory,
    now: datetime,
    callback_ttl: timedelta,
    events: AvailabilityBroadcaster | None = None,
) -> SweepResult:
    """One pass; each release is its own transaction so one failure does not block the rest."""
    released = 0
    async with uow() as u:
        due = await u.assignments.expired(now, BATCH)
    for call_id, purpose in due:
        freed = None
        async with uow() as u:
            done = await u.assignments.release(call_id, purpose, now, "expired")
            freed = await announce_release(u, done, now)
            await u.commit()
        if done is not None:
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
    if released or expired:
        log.info("sweep", released=released, expired_callbacks=expired)
    return SweepResult(released, expired)


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
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if looks_unavailable(exc):
                log.warning("sweep_skipped_store_unavailable", error=str(exc))
            else:
                log.exception("sweep_failed")
