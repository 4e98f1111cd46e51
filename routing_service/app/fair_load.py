"""How evenly each team's escalations of the last hour are spread over its specialists (for
`GetQueueStatus`, `escalade status` and the metrics); the caps themselves are applied by selection
(`routing_service.domain.fair_load`, `routing_service.domain.selection`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.fair_load import LoadSpread, escalations_in_window, load_spread

__all__ = ["team_load_spread"]


async def team_load_spread(
    team_ids: Sequence[str], *, uow: UnitOfWorkFactory, now: datetime
) -> dict[str, LoadSpread]:
    """Per team, the spread of its specialists' escalations in the hour before `now` (one read)."""
    async with uow() as u:
        recent = await u.agents.recent_escalations(list(team_ids))
    return {
        team: load_spread(escalations_in_window(times, now) for times in members.values())
        for team, members in recent.items()
    }
