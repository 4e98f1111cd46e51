"""Specialists: profile, team membership, status and load (the counters `assignments` maintains)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.sql import ColumnElement, Select

from routing_service.app.ports import MissedOffer, TeamStats
from routing_service.domain.models import (
    Agent,
    AgentStatus,
    CallbackState,
    Complexity,
    Destination,
    EscalationTimes,
)
from routing_service.store.base import SqlRepository
from routing_service.store.callbacks import SqlCallbackRepository, ahead_of_statement
from routing_service.store.statements import shared
from routing_service.store.tables import agent_teams, agents, callbacks

__all__ = ["SqlAgentRepository", "agent_from_row", "candidates_statement"]

# Literal (not a bound parameter) so that both planners can match the partial dispatch index's WHERE clause.
_AVAILABLE: ColumnElement[str] = literal_column("'available'", String)


_COMPLEXITY_OF = {int(level): level for level in Complexity}
_STATUS_OF = {str(status): status for status in AgentStatus}


def agent_from_row(row: Any) -> Agent:
    """Map an `agents` row to the domain `Agent`. Its enums come from tables (calling an enum class is a
    noticeable part of mapping a candidate); a value not in them goes through the enum, which rejects it."""
    return Agent(
        agent_id=row.agent_id,
        display_name=row.display_name,
        destination=Destination(
            number=row.dest_number, sip_uri=row.dest_sip_uri, extension=row.dest_extension
        ),
        team_ids=tuple(row.team_ids or ()),
        skills=frozenset(row.skills or ()),
        max_complexity=_COMPLEXITY_OF.get(row.max_complexity) or Complexity(row.max_complexity),
        capacity=row.capacity,
        status=_STATUS_OF.get(row.status) or AgentStatus(row.status),
        active_assignments=row.active_assignments,
        idle_since=row.idle_since,
        updated_at=row.updated_at,
        missed_in_row=row.missed_in_row,
        recent_escalations=EscalationTimes(row.recent_escalations or ""),
        last_critical_at=row.last_critical_at,
        critical_in_row=row.critical_in_row,
        load_version=row.load_version,
    )


def _profile(agent: Agent, now: datetime) -> dict[str, Any]:
    return {
        "display_name": agent.display_name,
        "team_ids": list(dict.fromkeys(agent.team_ids)),
        "dest_number": agent.destination.number,
        "dest_sip_uri": agent.destination.sip_uri,
        "dest_extension": agent.destination.extension,
        "skills": sorted(agent.skills),
        "max_complexity": int(agent.max_complexity),
        "capacity": agent.capacity,
        "status": str(agent.status),
        "updated_at": now,
    }


def _member_of(team_id: Any, *, correlated: bool = False) -> Any:
    """EXISTS (team membership of the outer agent row).

    `correlated=True` (used on PostgreSQL) adds `OFFSET 0`, which keeps the planner from flattening the
    EXISTS into a semi-join: without fresh statistics (right after a bulk import) its generic plan would
    rescan the whole team for every agent. As a correlated subplan it is one (agent_id, team_id) primary-key
    probe per dispatch-index row, which is what SQLite does anyway (there OFFSET would only slow it down).
    """
    query = select(agent_teams.c.agent_id).where(
        agent_teams.c.agent_id == agents.c.agent_id, agent_teams.c.team_id == team_id
    )
    return (query.offset(0) if correlated else query).exists()


def _dispatchable(*, correlated: bool = False) -> tuple[ColumnElement[bool], ...]:
    """Available with a free slot (the dispatch index's WHERE, verbatim) and a member of team `team_id`."""
    return (
        agents.c.status == _AVAILABLE,
        agents.c.active_assignments < agents.c.capacity,
        _member_of(bindparam("team_id"), correlated=correlated),
    )


def candidates_statement(*, postgres: bool, min_complexity: int = Complexity.BASIC) -> Select[Any]:
    """The dispatch query of `SqlAgentRepository.candidates`, with bind parameters `team_id`, `limit` and
    (PostgreSQL) `min_complexity` (public so tests can EXPLAIN exactly what runs).

    On SQLite it walks the dispatch index once per qualifying complexity level (`max_complexity = level`
    leads the index, so each walk is already in dispatch order and stops at LIMIT) and merges the few rows
    found. A single walk over all free agents filtered by `max_complexity >= ?` had to step over every
    idle agent not qualified for the call, and those gather at the front of the order precisely because
    they are never picked: in a large team, after many advanced decisions, every decision stepped over most
    of them. PostgreSQL keeps one walk; its planner keeps the cost flat there."""
    if postgres:
        return (
            select(agents)
            .where(agents.c.max_complexity >= bindparam("min_complexity"), *_dispatchable(correlated=True))
            .order_by(agents.c.active_assignments, agents.c.idle_since.nulls_first(), agents.c.agent_id)
            .limit(bindparam("limit", type_=Integer))
        )
    levels = range(max(int(min_complexity), int(Complexity.BASIC)), int(Complexity.CRITICAL) + 1)
    walks = [
        select(
            select(agents)
            .where(agents.c.max_complexity == literal_column(str(level), Integer), *_dispatchable())
            .order_by(agents.c.active_assignments, agents.c.idle_since, agents.c.agent_id)
            .limit(bindparam("limit", type_=Integer))
            .subquery(f"level_{level}")
        )
        for level in levels
    ]
    merged = union_all(*walks).subquery("qualified") if len(walks) > 1 else walks[0].subquery("qualified")
    return (
        select(merged)
        .order_by(merged.c.active_assignments, merged.c.idle_since, merged.c.agent_id)
        .limit(bindparam("limit", type_=Integer))
    )


_CANDIDATES_PG = shared(candidates_statement(postgres=True))
_CANDIDATES_SQLITE = {
    level: shared(candidates_statement(postgres=False, min_complexity=level)) for level in Complexity
}
_CANDIDATES_SKIP_LOCKED = shared(
    candidates_statement(postgres=True).with_for_update(of=agents, skip_locked=True)
)
_GET = shared(select(agents).where(agents.c.agent_id == bindparam("agent_id")))


def _queue_and_candidates_pg(*, skip_locked: bool) -> Select[Any]:
    """PostgreSQL: `ahead_of_statement` and, in a LATERAL sub-select run only while that count is 0 (a
    one-time filter: otherwise no agent row is read or locked), the dispatch query. A row per candidate (at
    least one): `ahead`, then the agent's columns (NULL when there is none)."""
    ahead = ahead_of_statement().subquery("queue")
    found = candidates_statement(postgres=True).where(ahead.c.ahead == 0)
    if skip_locked:
        found = found.with_for_update(of=agents, skip_locked=True)
    lateral = found.lateral("found")
    return select(ahead.c.ahead, *lateral.c).select_from(ahead.outerjoin(lateral, true()))


_QUEUE_AND_CANDIDATES_PG = {
    skip: shared(_queue_and_candidates_pg(skip_locked=skip)) for skip in (False, True)
}
_COUNT_IN_TEAM = shared(
    select(func.count()).select_from(agent_teams).where(agent_teams.c.team_id == bindparam("team_id"))
)


def _others_statement(*, excluding: bool) -> Select[Any]:
    query = select(agents).join(agent_teams, agent_teams.c.agent_id == agents.c.agent_id)
    query = query.where(agent_teams.c.team_id == bindparam("team_id"))
    if excluding:
        query = query.where(agent_teams.c.agent_id.not_in(bindparam("exclude", expanding=True)))
    return query.order_by(agent_teams.c.agent_id).limit(bindparam("limit", type_=Integer))


_RESET_MISSES = shared(
    update(agents)
    .where(agents.c.agent_id == bindparam("agent"), agents.c.missed_in_row != 0)
    .values(missed_in_row=0)
)


def _set_status_statement(*, available: bool) -> Any:
    """Set an agent's status (`:status`, `:now`); becoming available also sets `idle_since` when it was
    unset and starts the misses in a row over (back from away, or simply available)."""
    now = bindparam("now", type_=agents.c.updated_at.type)
    values: dict[str, Any] = {"status": bindparam("status"), "updated_at": now}
    if available:
        values["idle_since"] = func.coalesce(agents.c.idle_since, now)
        values["missed_in_row"] = 0
    return update(agents).where(agents.c.agent_id == bindparam("agent")).values(values).returning(*agents.c)


_SET_STATUS = shared(_set_status_statement(available=False))
_SET_AVAILABLE = shared(_set_status_statement(available=True))
"""`set_status`, compiled once per database (presence systems set statuses all day)."""

_NOTE_MISS = shared(
    update(agents)
    .where(agents.c.agent_id == bindparam("agent"))
    .values(missed_in_row=agents.c.missed_in_row + 1)
    .returning(*agents.c)
)
_SET_AWAY = shared(
    update(agents)
    .where(agents.c.agent_id == bindparam("agent"), agents.c.status == str(AgentStatus.AVAILABLE))
    .values(status=str(AgentStatus.AWAY), updated_at=bindparam("now", type_=agents.c.updated_at.type))
    .returning(*agents.c)
)
"""`note_missed_offer`: one more miss in a row, and setting an available specialist away."""


_OTHERS = _others_statement(excluding=True)
_OTHERS_ALL = shared(_others_statement(excluding=False))
"""The decision trace's sample of a team that had no free specialist (nobody to exclude): compiled once,
unlike `_OTHERS`, whose expanding parameter is rendered for each list of excluded ids."""


class SqlAgentRepository(SqlRepository):
    """`ports.AgentRepository` on SQL."""

    async def get(self, agent_id: str) -> Agent | None:
        """The agent, or None."""
        row = (await self._execute(_GET, {"agent_id": agent_id})).first()
        return None if row is None else agent_from_row(row)

    async def upsert(self, agent: Agent, now: datetime) -> tuple[Agent, bool]:
        """Create or replace the profile and team membership; an existing agent keeps its load counters
        (`active_assignments`, `idle_since`). Returns (stored, created)."""
        profile = _profile(agent, now)
        current = (
            await self._execute(
                select(agents.c.active_assignments, agents.c.idle_since)
                .where(agents.c.agent_id == agent.agent_id)
                .with_for_update()
            )
        ).first()
        if current is None:
            created = True
            active, idle_since = 0, agent.idle_since
            await self._execute(
                insert(agents).values(
                    agent_id=agent.agent_id, active_assignments=0, idle_since=idle_since, **profile
                )
            )
        else:
            created = False
            active, idle_since = current.active_assignments, current.idle_since
            await self._execute(update(agents).where(agents.c.agent_id == agent.agent_id).values(profile))
            await self._execute(delete(agent_teams).where(agent_teams.c.agent_id == agent.agent_id))
        team_ids = tuple(dict.fromkeys(agent.team_ids))
        if team_ids:
            await self._execute(
                insert(agent_teams),
                [
                    {"agent_id": agent.agent_id, "team_id": team_id, "position": position}
                    for position, team_id in enumerate(team_ids)
                ],
            )
        stored = replace(
            agent, team_ids=team_ids, active_assignments=active, idle_since=idle_since, updated_at=now
        )
        return stored, created

    async def set_status(self, agent_id: str, status: AgentStatus, now: datetime) -> Agent | None:
        """Set the status; becoming AVAILABLE sets `idle_since` when it was unset. None when unknown."""
        statement = _SET_AVAILABLE if status is AgentStatus.AVAILABLE else _SET_STATUS
        params = {"agent": agent_id, "status": str(status), "now": now}
        row = (await self._execute(statement, params)).first()
        return None if row is None else agent_from_row(row)

    async def note_missed_offer(self, agent_id: str, now: datetime, away_after: int) -> MissedOffer | None:
        """+1 missed_in_row; when it reaches `away_after` (> 0) an AVAILABLE specialist is set AWAY (a
        specialist set offline or busy meanwhile keeps that status). None when the agent does not exist."""
        row = (await self._execute(_NOTE_MISS, {"agent": agent_id})).first()
        if row is None:
            return None
        if away_after <= 0 or row.missed_in_row < away_after or row.status != str(AgentStatus.AVAILABLE):
            return MissedOffer(agent_from_row(row), set_away=False)
        away = (await self._execute(_SET_AWAY, {"agent": agent_id, "now": now})).first()
        return MissedOffer(agent_from_row(away if away is not None else row), set_away=away is not None)

    async def reset_misses(self, agent_id: str, now: datetime) -> None:
        """missed_in_row back to 0 (no write when it already is)."""
        await self._execute(_RESET_MISSES, {"agent": agent_id})

    async def page(
        self, *, team_id: str | None, status: AgentStatus | None, limit: int, after_id: str | None
    ) -> list[Agent]:
        """Agents ordered by agent_id, optionally of one team and status, after the `after_id` cursor."""
        query = select(agents).order_by(agents.c.agent_id).limit(max(0, limit))
        if team_id is not None:
            query = query.where(_member_of(team_id))
        if status is not None:
            query = query.where(agents.c.status == str(status))
        if after_id is not None:
            query = query.where(agents.c.agent_id > after_id)
        return [agent_from_row(row) for row in await self._execute(query)]

    async def count_in_team(self, team_id: str) -> int:
        """How many agents are members of the team (whatever their status)."""
        return int((await self._execute(_COUNT_IN_TEAM, {"team_id": team_id})).scalar_one())

    async def candidates(
        self, team_id: str, min_complexity: Complexity, limit: int, *, skip_locked: bool = False
    ) -> list[Agent]:
        """Available team members with a free slot and max_complexity >= min_complexity, least busy first,
        then longest idle (never idle first), then agent_id; at most `limit`.

        Walks the partial dispatch index (see tables.py) in order and stops at LIMIT: cost depends on how
        many free agents precede the hits, not on the number of agents on record. `skip_locked` (see the
        port) is `FOR UPDATE OF agents SKIP LOCKED` on PostgreSQL; SQLite has no row locks (and its writers
        are serialised anyway), so it ignores it.
        """
        params = {"team_id": team_id, "min_complexity": int(min_complexity), "limit": max(0, limit)}
        if self._postgres:
            statement = _CANDIDATES_SKIP_LOCKED if skip_locked else _CANDIDATES_PG
        else:
            statement = _CANDIDATES_SQLITE[min_complexity]
        return [agent_from_row(row) for row in await self._execute(statement, params)]

    async def queue_and_candidates(
        self,
        team_id: str,
        min_complexity: Complexity,
        limit: int,
        *,
        service_key: float,
        skip_locked: bool = False,
    ) -> tuple[int, list[Agent]]:
        """The WAITING callbacks ahead of `service_key` in the team and, when there are none, `candidates`:
        one statement on PostgreSQL (`_queue_and_candidates_pg`), two on SQLite."""
        if not self._postgres:
            ahead = await SqlCallbackRepository(self._session).ahead_of(team_id, service_key)
            return ahead, [] if ahead else await self.candidates(team_id, min_complexity, limit)
        params = {
            "ahead_team": team_id,
            "ahead_key": service_key,
            "team_id": team_id,
            "min_complexity": int(min_complexity),
            "limit": max(0, limit),
        }
        rows = (await self._execute(_QUEUE_AND_CANDIDATES_PG[skip_locked], params)).all()
        ahead = int(rows[0].ahead) if rows else 0
        return ahead, [agent_from_row(row) for row in rows if row.agent_id is not None]

    async def others(self, team_id: str, exclude: set[str], limit: int) -> list[Agent]:
        """Up to `limit` team members not in `exclude`, by agent_id (for the decision trace)."""
        if not exclude:
            params: dict[str, Any] = {"team_id": team_id, "limit": max(0, limit)}
            return [agent_from_row(row) for row in await self._execute(_OTHERS_ALL, params)]
        params = {"team_id": team_id, "exclude": sorted(exclude), "limit": max(0, limit)}
        return [agent_from_row(row) for row in await self._execute(_OTHERS, params)]

    async def recent_escalations(self, team_ids: list[str]) -> dict[str, dict[str, EscalationTimes]]:
        """Per team (every one asked, members or not), each member's latest reservation times."""
        wanted = list(dict.fromkeys(team_ids))
        found: dict[str, dict[str, EscalationTimes]] = {team: {} for team in wanted}
        if not wanted:
            return found
        rows = await self._execute(
            select(agent_teams.c.team_id, agents.c.agent_id, agents.c.recent_escalations)
            .join(agents, agents.c.agent_id == agent_teams.c.agent_id)
            .where(agent_teams.c.team_id.in_(wanted))
        )
        for row in rows:
            found[row.team_id][row.agent_id] = EscalationTimes(row.recent_escalations or "")
        return found

    async def team_stats(self, team_ids: list[str], now: datetime) -> dict[str, TeamStats]:
        """Load per team in two grouped queries: agents (total, available with a free slot, active
        assignments) and WAITING callbacks (count, oldest enqueued_at). Unknown teams get zeros."""
        wanted = list(dict.fromkeys(team_ids))
        if not wanted:
            return {}
        free = case(
            (
                (agents.c.status == str(AgentStatus.AVAILABLE))
                & (agents.c.active_assignments < agents.c.capacity),
                1,
            ),
            else_=0,
        )
        agent_rows = await self._execute(
            select(
                agent_teams.c.team_id,
                func.count().label("total"),
                func.coalesce(func.sum(free), 0).label("free"),
                func.coalesce(func.sum(agents.c.active_assignments), 0).label("active"),
            )
            .join(agents, agents.c.agent_id == agent_teams.c.agent_id)
            .where(agent_teams.c.team_id.in_(wanted))
            .group_by(agent_teams.c.team_id)
        )
        load = {row.team_id: (int(row.total), int(row.free), int(row.active)) for row in agent_rows}
        callback_rows = await self._execute(
            select(
                callbacks.c.team_id,
                func.count().label("waiting"),
                func.min(callbacks.c.enqueued_at).label("oldest"),
            )
            .where(callbacks.c.team_id.in_(wanted), callbacks.c.state == str(CallbackState.WAITING))
            .group_by(callbacks.c.team_id)
        )
        waiting: dict[str, tuple[int, datetime | None]] = {
            row.team_id: (int(row.waiting), row.oldest) for row in callback_rows
        }
        stats: dict[str, TeamStats] = {}
        for team in wanted:
            total, available, active = load.get(team, (0, 0, 0))
            count, oldest = waiting.get(team, (0, None))
            stats[team] = TeamStats(
                team_id=team,
                total_agents=total,
                available_agents=available,
                active_assignments=active,
                waiting_callbacks=count,
                oldest_waiting_since=oldest,
            )
        return stats
