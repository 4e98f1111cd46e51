"""Releasing a live call's specialist (the edge calls it when Vapi reports the call ended)."""

from __future__ import annotations

from datetime import datetime

from routing_service.app.availability import AvailabilityBroadcaster, announce_release
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.errors import InvalidRequest

__all__ = ["LIVE", "release_assignment"]

LIVE = "live"
CALLBACK = "callback"


async def release_assignment(
    call_id: str,
    reason: str,
    *,
    uow: UnitOfWorkFactory,
    now: datetime,
    events: AvailabilityBroadcaster | None = None,
) -> tuple[bool, str]:
    """(released, agent_id). Idempotent: a call holding no reservation gives (False, "")."""
    violations = []
    if not call_id:
        violations.append(("call_id", "required"))
    elif len(call_id) > 128:
        violations.append(("call_id", "at most 128 characters"))
    if len(reason) > 1024:
        violations.append(("reason", "at most 1024 characters"))
    if violations:
        raise InvalidRequest("invalid release", violations)
    freed = None
    async with uow() as u:
        released = await u.assignments.release(call_id, LIVE, now, reason)
        freed = await announce_release(u, released, now)
        await u.commit()
    if released is None:
        return False, ""
    if events is not None and freed is not None:
        events.publish_freed(freed)
    return True, released.agent_id
