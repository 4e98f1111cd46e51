"""Use cases reading the decision audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from routing_service.app.ports import UnitOfWorkFactory
from routing_service.domain.errors import InvalidRequest, NotFound
from routing_service.domain.models import Decision, DecisionKind
from routing_service.domain.uncertainty import UncertainCount, count_uncertain

__all__ = [
    "UNCERTAINTY_SCAN",
    "UNCERTAINTY_WINDOW",
    "UncertaintyReport",
    "get_decision",
    "get_handoff_packet",
    "latest_decisions",
    "list_decisions",
    "uncertainty_report",
]

UNCERTAINTY_WINDOW = timedelta(hours=1)
UNCERTAINTY_SCAN = 500
"""At most this many of the newest decisions are read for the uncertainty counts (one query)."""

# Page tokens are decision ids this service issued (`new_decision_id`: lower-case hex); anything else was
# not handed out by it and would silently page from an arbitrary place.
_PAGE_TOKEN = re.compile(r"[0-9a-z]{1,64}")


async def get_decision(call_id: str, *, uow: UnitOfWorkFactory) -> Decision:
    """The latest decision taken for the call; NotFound when there is none."""
    if not call_id:
        raise InvalidRequest("invalid request", [("call_id", "required")])
    async with uow() as u:
        decision = await u.decisions.latest_for_call(call_id)
    if decision is None:
        raise NotFound(f"no decision for call {call_id!r}")
    return decision


async def get_handoff_packet(call_id: str, decision_id: str, *, uow: UnitOfWorkFactory) -> Decision:
    """The decision whose handoff packet an agent desktop asks for: one decision by id, or a call's latest.
    Exactly one of the two; NotFound when there is no such decision or it has no packet (stored before
    packets existed)."""
    if bool(call_id) == bool(decision_id):
        raise InvalidRequest(
            "invalid request",
            [("call_id", "give exactly one of call_id or decision_id"), ("decision_id", "or this")],
        )
    async with uow() as u:
        if decision_id:
            decision = await u.decisions.by_id(decision_id)
        else:
            decision = await u.decisions.latest_for_call(call_id)
    what = f"decision {decision_id!r}" if decision_id else f"call {call_id!r}"
    if decision is None:
        raise NotFound(f"no decision for {what}")
    if decision.handoff is None:
        raise NotFound(f"the decision for {what} has no handoff packet (stored before packets existed)")
    return decision


async def list_decisions(
    *, team_id: str | None, kind: DecisionKind | None, page_size: int, page_token: str, uow: UnitOfWorkFactory
) -> tuple[list[Decision], str]:
    """Newest first; the next page token is the last decision id of the page ("" at the end)."""
    if not 0 <= page_size <= 500:
        raise InvalidRequest("invalid page size", [("page_size", "must be between 1 and 500 (0: 50)")])
    if page_token and not _PAGE_TOKEN.fullmatch(page_token):
        raise InvalidRequest("invalid page token", [("page_token", "not a token this service issued")])
    limit = page_size or 50
    async with uow() as u:
        decisions = await u.decisions.page(
            team_id=team_id or None, kind=kind, limit=limit + 1, before=page_token or None
        )
    more = len(decisions) > limit
    decisions = decisions[:limit]
    return decisions, (decisions[-1].decision_id if more and decisions else "")


async def latest_decisions(limit: int, *, uow: UnitOfWorkFactory) -> list[Decision]:
    """The latest `limit` recorded decisions, newest first (what a policy reload replays)."""
    async with uow() as u:
        return await u.decisions.page(team_id=None, kind=None, limit=limit, before=None)


@dataclass(frozen=True, slots=True)
class UncertaintyReport:
    """Uncertain decisions of the last `UNCERTAINTY_WINDOW` per team, and the second transfers after them."""

    by_team: dict[str, UncertainCount]
    capped: bool
    """The window held more than `UNCERTAINTY_SCAN` decisions: the counts cover the newest of them only."""


async def uncertainty_report(*, uow: UnitOfWorkFactory, now: datetime) -> UncertaintyReport:
    """Count the uncertain decisions of the last hour among the newest `UNCERTAINTY_SCAN` (one read)."""
    since = now - UNCERTAINTY_WINDOW
    async with uow() as u:
        newest = await u.decisions.page(team_id=None, kind=None, limit=UNCERTAINTY_SCAN, before=None)
    capped = len(newest) >= UNCERTAINTY_SCAN and newest[-1].decided_at >= since
    return UncertaintyReport(by_team=count_uncertain(newest, since=since), capped=capped)
