"""Review outcomes: one row per reviewed call, for the verdicts per team and rule
(`ports.ReviewOutcomeRepository`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, literal_column, select, union_all, update

from routing_service.app.ports import OutcomeCount, ReviewOutcomeRow
from routing_service.store.base import SqlRepository
from routing_service.store.statements import shared
from routing_service.store.tables import review_outcomes

__all__ = ["SqlReviewOutcomeRepository"]

_t = review_outcomes
_MARK_WRONG = shared(
    update(_t).where(and_(_t.c.call_id == bindparam("id"), _t.c.category_wrong == 0)).values(category_wrong=1)
)
_SET_VERDICT = shared(
    update(_t)
    .where(and_(_t.c.call_id == bindparam("id"), _t.c.verdict == ""))
    .values(verdict=bindparam("verdict"), outcome=bindparam("outcome"), verdict_at=bindparam("at"))
)
_verdicts = (
    select(
        _t.c.team_id,
        _t.c.rule_id,
        _t.c.outcome.label("kind"),
        func.count().label("n"),
    )
    .where(_t.c.verdict_at >= bindparam("since", type_=_t.c.verdict_at.type))
    .group_by(_t.c.team_id, _t.c.rule_id, _t.c.outcome)
)
_wrong = (
    select(
        _t.c.team_id,
        _t.c.rule_id,
        literal_column("'uncertain-category-wrong'").label("kind"),
        func.count().label("n"),
    )
    .where(
        and_(
            _t.c.uncertain == 1,
            _t.c.category_wrong == 1,
            _t.c.judged_at >= bindparam("since2", type_=_t.c.judged_at.type),
        )
    )
    .group_by(_t.c.team_id, _t.c.rule_id)
)
_COUNTS = shared(union_all(_verdicts, _wrong))
"""One statement: verdicts by (team, rule, outcome), and uncertain calls a review found mis-categorised."""


class SqlReviewOutcomeRepository(SqlRepository):
    """`ports.ReviewOutcomeRepository` on SQL."""

    async def open(self, row: ReviewOutcomeRow) -> bool:
        values: dict[str, Any] = {
            "call_id": row.call_id,
            "team_id": row.team_id,
            "rule_id": row.rule_id,
            "uncertain": int(row.uncertain),
            "category_wrong": 0,
            "verdict": "",
            "outcome": "",
            "judged_at": row.judged_at,
            "verdict_at": None,
        }
        return await self._insert_ignore(_t, values)

    async def mark_category_wrong(self, call_id: str) -> bool:
        return (await self._execute(_MARK_WRONG, {"id": call_id})).rowcount == 1

    async def set_verdict(self, call_id: str, verdict: str, outcome: str, at: datetime) -> bool:
        params = {"id": call_id, "verdict": verdict, "outcome": outcome, "at": at}
        return (await self._execute(_SET_VERDICT, params)).rowcount == 1

    async def counts(self, since: datetime) -> list[OutcomeCount]:
        rows = (await self._execute(_COUNTS, {"since": since, "since2": since})).all()
        by_pair: dict[tuple[str, str], dict[str, int]] = {}
        for row in rows:
            by_pair.setdefault((row.team_id, row.rule_id), {})[row.kind] = int(row.n)
        return [
            OutcomeCount(
                team_id=team_id,
                rule_id=rule_id,
                confirmed=kinds.get("confirmed", 0),
                overturned=kinds.get("overturned", 0),
                uncertain_category_wrong=kinds.get("uncertain-category-wrong", 0),
            )
            for (team_id, rule_id), kinds in sorted(by_pair.items())
        ]
