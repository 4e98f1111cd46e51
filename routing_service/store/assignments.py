"""Reservations of specialist slots: atomic take, idempotent release, expiry and handle-time statistics.

Atomicity comes from the database, never from a Python lock: `reserve` is one conditional UPDATE
(`... WHERE status = 'available' AND active_assignments < capacity`) whose row count says whether this
transaction won the slot. PostgreSQL row-locks the agent and re-checks the condition after a concurrent
winner commits; SQLite serialises writers (BEGIN IMMEDIATE). The partial unique index
`uq_assignments_active_call` allows one ACTIVE assignment per (call, purpose).

On PostgreSQL the UPDATE and the assignment's insert travel as one statement (data-modifying CTEs), and so
do a release and its freed slot: 12 round trips per decision and release instead of 14, which matters most
when the database is across a network.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    bindparam,
    case,
    exists,
    extract,
    func,
    literal,
    literal_column,
    null,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ColumnElement

from routing_service.app.ports import HANDLE_TIME_SAMPLE, Released
from routing_service.domain.errors import Conflict
from routing_service.store.base import SqlRepository
from routing_service.store.hot import hot
from routing_service.store.tables import UtcDateTime, agent_teams, agents, assignments

__all__ = ["ACTIVE", "RELEASED", "SqlAssignmentRepository"]

ACTIVE = "active"
RELEASED = "released"
_ACTIVE_LITERAL: ColumnElement[str] = literal_column(
    "'active'", String
)  # literal so the partial indexes on state = 'active' apply


# Built once (see base.SqlRepository). UPDATE statements may not use bind names equal to column names.
_TAKE_SLOT = hot(
    update(agents)
    .where(
        agents.c.agent_id == bindparam("slot_agent"),
        agents.c.status == "available",
        agents.c.active_assignments < agents.c.capacity,
    )
    .values(
        active_assignments=agents.c.active_assignments + 1,
        updated_at=bindparam("slot_at", type_=UtcDateTime()),
    )
)
_GIVE_BACK = hot(
    update(agents)
    .where(agents.c.agent_id == bindparam("slot_agent"))
    .values(active_assignments=agents.c.active_assignments - 1)
)
_ACTIVE_FOR_CALL = hot(
    select(assignments.c.agent_id).where(
        assignments.c.call_id == bindparam("call_id"),
        assignments.c.purpose == bindparam("purpose"),
        assignments.c.state == _ACTIVE_LITERAL,
    )
)

_RELEASE = hot(
    update(assignments)
    .where(
        assignments.c.call_id == bindparam("rel_call"),
        assignments.c.purpose == bindparam("rel_purpose"),
        assignments.c.state == _ACTIVE_LITERAL,
    )
    .values(
        state=RELEASED,
        released_at=bindparam("rel_at", type_=UtcDateTime()),
        release_reason=bindparam("rel_reason", type_=String()),
    )
    .returning(assignments.c.agent_id)
)
# Give the slot back (never below zero); an agent left with no active assignment is idle since now.
_SLOT_FREED: dict[str, Any] = {
    "active_assignments": case((agents.c.active_assignments > 0, agents.c.active_assignments - 1), else_=0),
    "idle_since": case(
        (agents.c.active_assignments <= 1, bindparam("rel_idle", type_=UtcDateTime())),
        else_=agents.c.idle_since,
    ),
    "updated_at": bindparam("rel_updated", type_=UtcDateTime()),
}
_FREE_SLOT = hot(
    update(agents)
    .where(agents.c.agent_id == bindparam("rel_agent"))
    .values(_SLOT_FREED)
    .returning(agents.c.capacity, agents.c.active_assignments, agents.c.team_ids)
)


def _release_and_free_pg() -> Select[Any]:
    """PostgreSQL: `_RELEASE` then `_FREE_SLOT` in one statement (data-modifying CTEs), one round trip
    instead of two. A row per released assignment; the agent's columns are NULL when its row is gone."""
    released = _RELEASE.cte("released")
    freed = (
        update(agents)
        .where(agents.c.agent_id == released.c.agent_id)
        .values(_SLOT_FREED)
        .returning(agents.c.agent_id, agents.c.capacity, agents.c.active_assignments, agents.c.team_ids)
        .cte("freed")
    )
    return select(
        released.c.agent_id, freed.c.capacity, freed.c.active_assignments, freed.c.team_ids
    ).select_from(released.outerjoin(freed, freed.c.agent_id == released.c.agent_id))


def _reserve_pg() -> Select[Any]:
    """PostgreSQL: `_TAKE_SLOT` and the assignment's insert-or-ignore in one statement (data-modifying
    CTEs), one round trip instead of two. One row: slots taken (0 or 1) and assignments inserted (0 or 1;
    0 with a slot taken means the call already held an active assignment of this purpose)."""
    taken = _TAKE_SLOT.returning(agents.c.agent_id).cte("taken")
    row = select(
        bindparam("res_call", type_=String()),
        bindparam("res_purpose", type_=String()),
        taken.c.agent_id,
        literal(ACTIVE, String()),
        bindparam("res_at", type_=UtcDateTime()),
        bindparam("res_expires", type_=UtcDateTime()),
        null(),
        literal("", String()),
    )
    columns = [
        "call_id",
        "purpose",
        "agent_id",
        "state",
        "reserved_at",
        "expires_at",
        "released_at",
        "release_reason",
    ]
    inserted = (
        postgresql.insert(assignments)
        .from_select(columns, row)
        .on_conflict_do_nothing()
        .returning(assignments.c.assignment_id)
        .cte("inserted")
    )
    return select(
        select(func.count()).select_from(taken).scalar_subquery().label("taken"),
        select(func.count()).select_from(inserted).scalar_subquery().label("inserted"),
    )


_RELEASE_AND_FREE_PG = hot(_release_and_free_pg())
_RESERVE_PG = hot(_reserve_pg())


def _handle_time_statement(*, postgres: bool) -> Select[Any]:
    """The mean handle time of a team's latest releases: newest first down the `released_at` index, stopping
    after `sample` of the team's, so the cost does not grow with the traffic of the window (an hour of a busy
    centre is 100,000 releases: averaging all of them cost 80 ms per callback decision), and the latest calls
    are the better estimate anyway."""
    seconds: ColumnElement[Any]
    if postgres:
        seconds = extract("epoch", assignments.c.released_at - assignments.c.reserved_at)
    else:
        seconds = (
            func.julianday(assignments.c.released_at) - func.julianday(assignments.c.reserved_at)
        ) * 86400.0
    latest = (
        select(seconds.label("seconds"))
        .where(
            assignments.c.purpose == "live",
            assignments.c.state == RELEASED,
            assignments.c.released_at >= bindparam("since", type_=UtcDateTime),
            exists().where(
                agent_teams.c.agent_id == assignments.c.agent_id,
                agent_teams.c.team_id == bindparam("team_id"),
            ),
        )
        .order_by(assignments.c.released_at.desc())
        .limit(bindparam("sample", type_=Integer))
        .subquery()
    )
    return select(func.avg(latest.c.seconds))


_HANDLE_TIME_SQLITE = hot(_handle_time_statement(postgres=False))
_HANDLE_TIME_PG = hot(_handle_time_statement(postgres=True))


class SqlAssignmentRepository(SqlRepository):
    """`ports.AssignmentRepository` on SQL."""

    async def reserve(
        self, *, agent_id: str, call_id: str, purpose: str, now: datetime, expires_at: datetime
    ) -> bool:
        """Take one slot of the agent in the current transaction; False when none was free (or the agent is
        not available / unknown).

        A call holds at most one active assignment per purpose: when it already holds one with this agent,
        that one stands and the result is True (no second slot is taken); with another agent, `Conflict`.
        """
        if self._postgres:
            params = {
                "slot_agent": agent_id,
                "slot_at": now,
                "res_call": call_id,
                "res_purpose": purpose,
                "res_at": now,
                "res_expires": expires_at,
            }
            counts = (await self._execute(_RESERVE_PG, params)).first()  # one row: two counts
            taken, inserted = (counts.taken, counts.inserted) if counts is not None else (0, 0)
            if taken != 1:
                return await self.active_for_call(call_id, purpose) == agent_id
            if inserted == 1:
                return True
            return await self._give_back(agent_id, call_id, purpose)
        won = await self._execute(_TAKE_SLOT, {"slot_agent": agent_id, "slot_at": now})
        if won.rowcount != 1:
            return await self.active_for_call(call_id, purpose) == agent_id
        inserted = await self._insert_ignore(
            assignments,
            {
                "call_id": call_id,
                "purpose": purpose,
                "agent_id": agent_id,
                "state": ACTIVE,
                "reserved_at": now,
                "expires_at": expires_at,
                "released_at": None,
                "release_reason": "",
            },
        )
        if not inserted:
            return await self._give_back(agent_id, call_id, purpose)
        return True

    async def _give_back(self, agent_id: str, call_id: str, purpose: str) -> bool:
        """The slot just taken is not needed: the call already holds an active assignment of `purpose`.
        True when it is with this agent (that one stands); `Conflict` when with another."""
        await self._execute(_GIVE_BACK, {"slot_agent": agent_id})
        holder = await self.active_for_call(call_id, purpose)
        if holder != agent_id:
            raise Conflict(f"call {call_id} already holds an active {purpose} assignment with {holder}")
        return True

    async def release(self, call_id: str, purpose: str, now: datetime, reason: str) -> Released | None:
        """Release the call's active assignment for `purpose` and give the slot back (never below zero);
        an agent left with no active assignment becomes idle since `now`. None when nothing was active."""
        params = {
            "rel_call": call_id,
            "rel_purpose": purpose,
            "rel_at": now,
            "rel_reason": reason[:256],
        }
        if self._postgres:
            params |= {"rel_idle": now, "rel_updated": now}
            row = (await self._execute(_RELEASE_AND_FREE_PG, params)).first()
            if row is None:
                return None
            if row.capacity is None:  # the agent row is gone (cascade deletes its assignments: mid-race)
                return Released(call_id=call_id, agent_id=row.agent_id, team_ids=(), free_slots=0)
            return Released(
                call_id=call_id,
                agent_id=row.agent_id,
                team_ids=tuple(row.team_ids or ()),
                free_slots=max(0, row.capacity - row.active_assignments),
            )
        released = (await self._execute(_RELEASE, params)).first()
        if released is None:
            return None
        agent_id: str = released.agent_id
        freed = {"rel_agent": agent_id, "rel_idle": now, "rel_updated": now}
        after = (await self._execute(_FREE_SLOT, freed)).first()
        if after is None:  # the agent row is gone (cascade deletes its assignments, so only mid-race)
            return Released(call_id=call_id, agent_id=agent_id, team_ids=(), free_slots=0)
        return Released(
            call_id=call_id,
            agent_id=agent_id,
            team_ids=tuple(after.team_ids or ()),
            free_slots=max(0, after.capacity - after.active_assignments),
        )

    async def active_for_call(self, call_id: str, purpose: str) -> str | None:
        """The agent holding the call's active assignment for `purpose`, if any."""
        params = {"call_id": call_id, "purpose": purpose}
        found: str | None = (await self._execute(_ACTIVE_FOR_CALL, params)).scalar_one_or_none()
        return found

    async def expired(self, now: datetime, limit: int) -> list[tuple[str, str]]:
        """(call_id, purpose) of active assignments whose `expires_at` is at or before `now`, oldest first."""
        query = (
            select(assignments.c.call_id, assignments.c.purpose)
            .where(assignments.c.state == _ACTIVE_LITERAL, assignments.c.expires_at <= now)
            .order_by(assignments.c.expires_at, assignments.c.assignment_id)
            .limit(max(0, limit))
        )
        return [(row.call_id, row.purpose) for row in await self._execute(query)]

    async def recent_handle_time(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> timedelta | None:
        """Mean (released_at - reserved_at) of the team's last `limit` live assignments released at or after
        `since`; None when there were none (see `_handle_time_statement`)."""
        statement = _HANDLE_TIME_PG if self._postgres else _HANDLE_TIME_SQLITE
        params = {"team_id": team_id, "since": since, "sample": max(1, limit)}
        mean = (await self._execute(statement, params)).scalar_one_or_none()
        if mean is None:
            return None
        return timedelta(seconds=max(0.0, float(mean)))
