"""The per-team callback queue. Order: RESERVED tickets first (they are being served), then WAITING ones by
`service_key` (priority head start with aging baked in), `enqueued_at`, `call_id`. Positions are computed
when read, never stored, so they can't go stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    extract,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
    update,
)

from routing_service.domain.errors import Conflict, InvalidRequest, NotFound
from routing_service.domain.models import CallbackState, CallbackTicket, Complexity
from routing_service.domain.promises import AtRisk, PromiseOutcome
from routing_service.store.base import SqlRepository
from routing_service.store.statements import shared
from routing_service.store.tables import UtcDateTime, callbacks

__all__ = [
    "WAIT_RATIO_TTL",
    "SqlCallbackRepository",
    "WaitRatioCache",
    "ahead_of_statement",
    "ticket_from_row",
]

_OPEN = (str(CallbackState.WAITING), str(CallbackState.RESERVED))
_RESERVED_FIRST = case((callbacks.c.state == str(CallbackState.RESERVED), 0), else_=1)
_SERVICE_ORDER = (_RESERVED_FIRST, callbacks.c.service_key, callbacks.c.enqueued_at, callbacks.c.call_id)
# On every decision's path: built once.


def ahead_of_statement() -> Select[Any]:
    """The count of `SqlCallbackRepository.ahead_of` (bind parameters `ahead_team`, `ahead_key`), labelled
    `ahead`."""
    return (
        select(func.count().label("ahead"))
        .select_from(callbacks)
        .where(
            callbacks.c.team_id == bindparam("ahead_team"),
            callbacks.c.state == str(CallbackState.WAITING),
            callbacks.c.service_key <= bindparam("ahead_key"),
        )
    )


_AHEAD_OF = shared(ahead_of_statement())

# A new ticket's place, before it is inserted (so its promise goes into the INSERT): the WAITING tickets
# served before it (keys at or below its own: enqueued earlier) and every RESERVED one (served first), one
# statement of two index counts.
_PLACE = shared(
    select(
        select(func.count())
        .select_from(callbacks)
        .where(
            callbacks.c.team_id == bindparam("place_team"),
            callbacks.c.state == str(CallbackState.WAITING),
            callbacks.c.service_key <= bindparam("place_key"),
        )
        .scalar_subquery()
        .label("waiting"),
        select(func.count())
        .select_from(callbacks)
        .where(
            callbacks.c.team_id == bindparam("place_team"),
            callbacks.c.state == str(CallbackState.RESERVED),
        )
        .scalar_subquery()
        .label("reserved"),
    )
)

# `escalade status` by widening step: the team's waiting callbacks queued at or before a step's start.
_WAITING_SINCE = shared(
    select(func.count())
    .select_from(callbacks)
    .where(
        callbacks.c.team_id == bindparam("since_team"),
        callbacks.c.state == str(CallbackState.WAITING),
        callbacks.c.enqueued_at <= bindparam("since_at"),
    )
)

# The relay's question on every free slot: the head of one team's WAITING queue, and how many RESERVED
# tickets of that team are served before it.
_WAITING_HEAD = shared(
    select(callbacks)
    .where(callbacks.c.team_id == bindparam("head_team"), callbacks.c.state == str(CallbackState.WAITING))
    .order_by(callbacks.c.service_key, callbacks.c.enqueued_at, callbacks.c.call_id)
    .limit(bindparam("head_limit"))
)
_RESERVED_IN_TEAM = shared(
    select(func.count())
    .select_from(callbacks)
    .where(
        callbacks.c.team_id == bindparam("reserved_team"), callbacks.c.state == str(CallbackState.RESERVED)
    )
)


def ticket_from_row(row: Any, position: int = 0) -> CallbackTicket:
    """Map a `callbacks` row to the domain ticket."""
    return CallbackTicket(
        call_id=row.call_id,
        team_id=row.team_id,
        state=CallbackState(row.state),
        caller_number=row.caller_number,
        tier=row.tier,
        issue_category=row.issue_category,
        effective_complexity=Complexity(row.effective_complexity),
        priority=row.priority,
        service_key=row.service_key,
        enqueued_at=row.enqueued_at,
        decision_id=row.decision_id,
        customer_context=row.customer_context,
        escalation_reason=row.escalation_reason,
        agent_id=row.agent_id,
        reserved_until=row.reserved_until,
        finished_at=row.finished_at,
        note=row.note,
        first_message=row.first_message,
        position=position,
        promise_from=row.promise_from,
        promised_by=row.promised_by,
        at_risk_at=row.at_risk_at,
        started_at=row.started_at,
        breached_at=row.breached_at,
    )


_BY_CALL = shared(select(callbacks).where(callbacks.c.call_id == bindparam("by_call")))


def _placed_by_call() -> Any:
    """One ticket with its queue position in one statement (what `get` and a claim's reservation read).

    The tickets of its team and state served before it are two correlated index range reads on
    ix_callbacks_team_id_state_service_key (an OR across the whole order key would make the planner scan
    the team's queue): strictly smaller keys, then equal keys broken by enqueue time and call id; a WAITING
    ticket also counts every RESERVED one (served first). A ticket no longer open has position 0 and
    counts nothing (CASE evaluates only the branch it takes)."""
    ahead = callbacks.alias("ahead")
    same_state = (ahead.c.team_id == callbacks.c.team_id, ahead.c.state == callbacks.c.state)

    def count(*where: Any) -> Any:
        return select(func.count()).select_from(ahead).where(*where).correlate(callbacks).scalar_subquery()

    before = count(*same_state, ahead.c.service_key < callbacks.c.service_key) + count(
        *same_state,
        ahead.c.service_key == callbacks.c.service_key,
        or_(
            ahead.c.enqueued_at < callbacks.c.enqueued_at,
            and_(ahead.c.enqueued_at == callbacks.c.enqueued_at, ahead.c.call_id < callbacks.c.call_id),
        ),
    )
    reserved = count(ahead.c.team_id == callbacks.c.team_id, ahead.c.state == str(CallbackState.RESERVED))
    position = case(
        (callbacks.c.state == str(CallbackState.WAITING), before + reserved + 1),
        (callbacks.c.state == str(CallbackState.RESERVED), before + 1),
        else_=0,
    )
    return select(callbacks, position.label("queue_position")).where(
        callbacks.c.call_id == bindparam("placed_call")
    )


def _waiting_before(prefix: str, call_type: String | None = None) -> tuple[ColumnElement[bool], ...]:
    """The WAITING tickets of team `<prefix>_team` served before the ticket (`<prefix>_key`,
    `<prefix>_at`, `<prefix>_call`): a lower service key, or the same key and earlier, or the same instant
    and a lower call id (the service order `ix_callbacks_team_id_state_service_key` keeps)."""
    call = (
        bindparam(f"{prefix}_call", type_=call_type) if call_type is not None else bindparam(f"{prefix}_call")
    )
    key: BindParameter[Any] = bindparam(f"{prefix}_key")
    at = bindparam(f"{prefix}_at", type_=UtcDateTime())
    return (
        callbacks.c.team_id == bindparam(f"{prefix}_team"),
        callbacks.c.state == str(CallbackState.WAITING),
        callbacks.c.service_key <= key,
        callbacks.c.call_id != call,
        or_(
            callbacks.c.service_key < key,
            callbacks.c.enqueued_at < at,
            and_(callbacks.c.enqueued_at == at, callbacks.c.call_id < call),
        ),
    )


_PLACED_BY_CALL = shared(_placed_by_call())

# Is some WAITING ticket of the team served before this one? (One index probe.)
_WAITING_BEFORE = shared(
    select(callbacks.c.call_id)
    .where(
        *_waiting_before("wb"),
    )
    .limit(1)
)


_MARK_BREACHED = shared(
    update(callbacks)
    .where(callbacks.c.call_id == bindparam("mb_call"), callbacks.c.breached_at.is_(None))
    .values(breached_at=bindparam("mb_now", type_=UtcDateTime()))
)
_AT_RISK_COLUMNS = (
    callbacks.c.call_id,
    callbacks.c.tier,
    callbacks.c.service_key,
    callbacks.c.enqueued_at,
    callbacks.c.at_risk_at,
    callbacks.c.promised_by,
)


def _at_risk(prefix: str) -> Select[Any]:
    """The at-risk WAITING tickets of team `<prefix>_team` at `<prefix>_now` (past their at-risk moment,
    not yet past their deadline), in service order, at most `<prefix>_limit`; read along
    ix_callbacks_team_id_state_at_risk_at."""
    now = bindparam(f"{prefix}_now", type_=UtcDateTime())
    return (
        select(*_AT_RISK_COLUMNS)
        .where(
            callbacks.c.team_id == bindparam(f"{prefix}_team"),
            callbacks.c.state == str(CallbackState.WAITING),
            callbacks.c.at_risk_at <= now,
            callbacks.c.promised_by >= now,
        )
        .order_by(callbacks.c.service_key, callbacks.c.enqueued_at, callbacks.c.call_id)
        .limit(bindparam(f"{prefix}_limit"))
    )


_AT_RISK = shared(_at_risk("ar"))
_TIERS_BEFORE = shared(select(callbacks.c.tier).where(*_waiting_before("tb")).distinct())

# A claim's view of its queue in one round trip: whether some WAITING ticket comes before this one (at most
# one row, kind 0: the `_WAITING_BEFORE` probe) and the team's at-risk WAITING tickets (kind 1: `_AT_RISK`).
_before_probe = (
    select(*_AT_RISK_COLUMNS, literal(0, Integer()).label("kind"))
    .where(*_waiting_before("cv", call_type=String()))
    .limit(1)
    .subquery("before_probe")
)
_at_risk_rows = _at_risk("cv").add_columns(literal(1, Integer()).label("kind")).subquery("at_risk_rows")
_CLAIM_VIEW = shared(union_all(select(_before_probe), select(_at_risk_rows)))

# The sweeper's question: a team's WAITING tickets whose promise deadline passed without a breach stored,
# along ix_callbacks_team_id_state_at_risk_at (at_risk_at <= promised_by: the range holds only the team's
# at-risk and overdue WAITING tickets, never its history).
_OVERDUE = shared(
    select(callbacks)
    .where(
        callbacks.c.team_id == bindparam("od_team"),
        callbacks.c.state == str(CallbackState.WAITING),
        callbacks.c.at_risk_at < bindparam("od_now", type_=UtcDateTime()),
        callbacks.c.promised_by < bindparam("od_now", type_=UtcDateTime()),
        callbacks.c.breached_at.is_(None),
    )
    .order_by(callbacks.c.at_risk_at)
    .limit(bindparam("od_limit"))
)


WAIT_RATIO_TTL = 30.0
"""Seconds a team's learned wait correction is reused in a process without reading it again.

The correction (`domain.promises.learned_ratio`) is the median of the actual-over-quoted wait ratios of the
team's latest 20 started callbacks, clamped to 0.5-3. A start in this process invalidates the team's entry
at once; a start through another replica is seen at most this late. One new sample out of twenty moves the
median at most one rank, and an estimate quoted in minutes is not made materially worse by a correction
half a minute old, while reading it on every callback decision cost a statement each."""


class WaitRatioCache:
    """Each team's recent wait ratios, shared by the units of work of one store (one process)."""

    def __init__(self, ttl: float = WAIT_RATIO_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[tuple[str, int], tuple[float, list[float]]] = {}

    def get(self, team_id: str, limit: int) -> list[float] | None:
        entry = self._entries.get((team_id, limit))
        if entry is None or self._clock() - entry[0] >= self.ttl:
            return None
        return entry[1]

    def put(self, team_id: str, limit: int, ratios: list[float]) -> None:
        self._entries[(team_id, limit)] = (self._clock(), ratios)

    def invalidate(self, team_id: str) -> None:
        for key in [key for key in self._entries if key[0] == team_id]:
            del self._entries[key]


def _wait_ratios_statement(*, postgres: bool) -> Any:
    """Actual over quoted wait of a team's latest started callbacks, newest first along
    ix_callbacks_team_id_started_at; quotes of a second or less are left out."""

    def seconds(later: Any, earlier: Any) -> Any:
        if postgres:
            return extract("epoch", later - earlier)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0

    quoted = seconds(callbacks.c.promised_by, callbacks.c.promise_from)
    actual = seconds(callbacks.c.started_at, callbacks.c.promise_from)
    return (
        select((actual / quoted).label("ratio"))
        .where(
            callbacks.c.team_id == bindparam("wr_team"),
            callbacks.c.started_at >= bindparam("wr_since", type_=UtcDateTime()),
            callbacks.c.promise_from.is_not(None),
            quoted >= 1,
        )
        .order_by(callbacks.c.started_at.desc())
        .limit(bindparam("wr_limit"))
    )


_WAIT_RATIOS_SQLITE = shared(_wait_ratios_statement(postgres=False))
_WAIT_RATIOS_PG = shared(_wait_ratios_statement(postgres=True))

_PROMISE_OUTCOMES = shared(
    select(callbacks.c.promise_from, callbacks.c.promised_by, callbacks.c.started_at, callbacks.c.finished_at)
    .where(
        callbacks.c.team_id == bindparam("po_team"),
        callbacks.c.promised_by >= bindparam("po_since", type_=UtcDateTime()),
        callbacks.c.promise_from.is_not(None),
    )
    .order_by(callbacks.c.promised_by.desc())
    .limit(bindparam("po_limit"))
)


class SqlCallbackRepository(SqlRepository):
    """`ports.CallbackRepository` on SQL. `wait_ratios`: the store's cache of each team's learned wait
    ratios (`WaitRatioCache`); without it every `recent_wait_ratios` reads."""

    def __init__(self, session: Any, *, wait_ratios: WaitRatioCache | None = None) -> None:
        super().__init__(session)
        self._wait_ratios = wait_ratios

    async def waiting_before(self, ticket: CallbackTicket) -> bool:
        """True when a WAITING ticket of the team is served before `ticket` (an index probe). Never for a
        RESERVED ticket: those are all served before any WAITING one."""
        if ticket.state is CallbackState.RESERVED:
            return False
        params = {
            "wb_team": ticket.team_id,
            "wb_key": ticket.service_key,
            "wb_at": ticket.enqueued_at,
            "wb_call": ticket.call_id,
        }
        return (await self._execute(_WAITING_BEFORE, params)).first() is not None

    async def _row(self, call_id: str) -> Any:
        return (await self._execute(_BY_CALL, {"by_call": call_id})).first()

    async def place(self, team_id: str, service_key: float) -> int:
        """The position a new WAITING ticket with this key would have: every RESERVED ticket of the team
        and every WAITING one with a key at or below it come first (one statement)."""
        row = (await self._execute(_PLACE, {"place_team": team_id, "place_key": service_key})).first()
        return int(row.waiting) + int(row.reserved) + 1

    async def enqueue(self, ticket: CallbackTicket) -> CallbackTicket:
        """Insert the ticket as WAITING, promise included, and return it as given (its `position` is the
        caller's, from `place`); when the call already has one, return that one unchanged, read back."""
        inserted = await self._insert_ignore(
            callbacks,
            {
                "call_id": ticket.call_id,
                "team_id": ticket.team_id,
                "state": str(CallbackState.WAITING),
                "caller_number": ticket.caller_number,
                "tier": ticket.tier,
                "issue_category": ticket.issue_category,
                "effective_complexity": int(ticket.effective_complexity),
                "priority": ticket.priority,
                "service_key": ticket.service_key,
                "enqueued_at": ticket.enqueued_at,
                "decision_id": ticket.decision_id,
                "customer_context": ticket.customer_context,
                "escalation_reason": ticket.escalation_reason,
                "agent_id": None,
                "reserved_until": None,
                "finished_at": None,
                "note": ticket.note,
                "first_message": ticket.first_message,
                "promise_from": ticket.promise_from,
                "promised_by": ticket.promised_by,
                "at_risk_at": ticket.at_risk_at,
                "started_at": None,
                "breached_at": None,
            },
        )
        if inserted:
            return replace(
                ticket,
                state=CallbackState.WAITING,
                agent_id=None,
                reserved_until=None,
                finished_at=None,
                started_at=None,
                breached_at=None,
            )
        existing = await self._placed(ticket.call_id)
        if existing is None:  # deleted between the two statements: only mid-race
            raise NotFound(f"no callback for call {ticket.call_id}")
        return existing

    async def get(self, call_id: str) -> CallbackTicket | None:
        """The call's ticket with its position when open, or None (one statement)."""
        return await self._placed(call_id)

    async def _placed(self, call_id: str) -> CallbackTicket | None:
        row = (await self._execute(_PLACED_BY_CALL, {"placed_call": call_id})).first()
        return None if row is None else ticket_from_row(row, position=int(row.queue_position or 0))

    async def open_in_team(self, team_id: str, limit: int) -> list[CallbackTicket]:
        """The team's open tickets in service order, positions 1, 2, ..."""
        query = (
            select(callbacks)
            .where(callbacks.c.team_id == team_id, callbacks.c.state.in_(_OPEN))
            .order_by(*_SERVICE_ORDER)
            .limit(max(0, limit))
        )
        rows = (await self._execute(query)).all()
        return [ticket_from_row(row, position=index) for index, row in enumerate(rows, start=1)]

    async def ahead_of(self, team_id: str, service_key: float) -> int:
        """How many WAITING tickets of the team would be served before a new ticket with this key (those
        with a key at or below it: they were enqueued earlier). RESERVED tickets are being served and are
        not counted here, although `get`/`open_in_team` positions list them first."""
        params = {"ahead_team": team_id, "ahead_key": service_key}
        return int((await self._execute(_AHEAD_OF, params)).scalar_one())

    async def find(
        self,
        *,
        team_id: str | None,
        states: set[CallbackState],
        limit: int,
        after: CallbackTicket | None = None,
    ) -> list[CallbackTicket]:
        """Tickets in the given states (all states when empty), optionally of one team, in (team, service
        order); open ones carry their position (one query: ROW_NUMBER over each team's open tickets).
        `after` (a page's last ticket) keeps only the tickets that come after it in that order: a keyset,
        so a page costs the same wherever it starts.

        One team's WAITING tickets from the head (the availability relay's question on every free slot)
        take a fast path that reads only the head of the queue instead of ranking all of it."""
        if team_id is not None and states == {CallbackState.WAITING} and after is None:
            return await self._waiting_head(team_id, limit)
        ranked = select(
            callbacks.c.call_id,
            func.row_number()
            .over(partition_by=callbacks.c.team_id, order_by=_SERVICE_ORDER)
            .label("queue_position"),
        ).where(callbacks.c.state.in_(_OPEN))
        if team_id is not None:
            ranked = ranked.where(callbacks.c.team_id == team_id)
        positions = ranked.subquery("positions")
        query = (
            select(callbacks, positions.c.queue_position)
            .outerjoin(positions, positions.c.call_id == callbacks.c.call_id)
            .order_by(callbacks.c.team_id, *_SERVICE_ORDER)
            .limit(max(0, limit))
        )
        if team_id is not None:
            query = query.where(callbacks.c.team_id == team_id)
        if states:
            query = query.where(callbacks.c.state.in_(sorted(str(state) for state in states)))
        if after is not None:
            rank = 0 if after.state is CallbackState.RESERVED else 1
            query = query.where(
                tuple_(callbacks.c.team_id, *_SERVICE_ORDER)
                > tuple_(
                    literal(after.team_id, callbacks.c.team_id.type),
                    literal(rank, Integer()),
                    literal(after.service_key, callbacks.c.service_key.type),
                    literal(after.enqueued_at, callbacks.c.enqueued_at.type),
                    literal(after.call_id, callbacks.c.call_id.type),
                )
            )
        return [ticket_from_row(row, position=row.queue_position or 0) for row in await self._execute(query)]

    async def _waiting_head(self, team_id: str, limit: int) -> list[CallbackTicket]:
        """The first `limit` WAITING tickets of the team, read in service order along
        ix_callbacks_team_id_state_service_key. Every RESERVED ticket of the team is served before any
        WAITING one (`_SERVICE_ORDER`), so a WAITING ticket's position is their count plus its rank."""
        if limit <= 0:
            return []
        rows = (await self._execute(_WAITING_HEAD, {"head_team": team_id, "head_limit": limit})).all()
        if not rows:
            return []
        reserved = int((await self._execute(_RESERVED_IN_TEAM, {"reserved_team": team_id})).scalar_one())
        return [ticket_from_row(row, position=reserved + rank) for rank, row in enumerate(rows, start=1)]

    async def mark_reserved(
        self, call_id: str, agent_id: str, until: datetime, *, now: datetime | None = None
    ) -> CallbackTicket:
        """Mark an open ticket RESERVED for `agent_id` until `until` (the first time, `now` is when its
        promise's callback started). NotFound / Conflict (finished)."""
        values: dict[str, Any] = {
            "state": str(CallbackState.RESERVED),
            "agent_id": agent_id,
            "reserved_until": until,
        }
        if now is not None:
            values["started_at"] = func.coalesce(callbacks.c.started_at, literal(now, UtcDateTime()))
        result = await self._execute(
            update(callbacks)
            .where(callbacks.c.call_id == call_id, callbacks.c.state.in_(_OPEN))
            .values(**values)
        )
        ticket = await self._placed(call_id)
        if ticket is None:
            raise NotFound(f"no callback for call {call_id}")
        if result.rowcount != 1:
            raise Conflict(f"callback for call {call_id} is already {ticket.state}")
        if now is not None and self._wait_ratios is not None and ticket.started_at == now:
            self._wait_ratios.invalidate(ticket.team_id)  # a new sample for the team's learned correction
        return ticket

    async def mark_breached(self, call_id: str, now: datetime) -> bool:
        """Record that the call's promise is broken; True only the first time (the breach counts once)."""
        result = await self._execute(_MARK_BREACHED, {"mb_call": call_id, "mb_now": now})
        return bool(result.rowcount == 1)

    async def claim_view(
        self, ticket: CallbackTicket, now: datetime, limit: int
    ) -> tuple[bool, list[AtRisk]]:
        """`waiting_before(ticket)` and `at_risk_waiting(ticket.team_id, now, limit)` in one statement."""
        if ticket.state is CallbackState.RESERVED:
            return False, await self.at_risk_waiting(ticket.team_id, now, limit)
        params = {
            "cv_team": ticket.team_id,
            "cv_key": ticket.service_key,
            "cv_at": ticket.enqueued_at,
            "cv_call": ticket.call_id,
            "cv_now": now,
            "cv_limit": max(1, limit),
        }
        before = False
        at_risk = []
        for row in await self._execute(_CLAIM_VIEW, params):
            if row.kind == 0:
                before = True
                continue
            at_risk.append(
                AtRisk(
                    call_id=row.call_id,
                    tier=row.tier,
                    service_key=row.service_key,
                    enqueued_at=row.enqueued_at,
                    at_risk_at=row.at_risk_at,
                    promised_by=row.promised_by,
                )
            )
        return before, at_risk

    async def overdue_waiting(self, team_id: str, now: datetime, limit: int) -> list[CallbackTicket]:
        """The team's WAITING tickets whose promise deadline passed before `now` with no breach stored yet,
        at most `limit` (positions not filled in)."""
        params = {"od_team": team_id, "od_now": now, "od_limit": max(1, limit)}
        return [ticket_from_row(row) for row in await self._execute(_OVERDUE, params)]

    async def at_risk_waiting(self, team_id: str, now: datetime, limit: int) -> list[AtRisk]:
        """The team's WAITING tickets whose promise is at risk at `now` (at_risk_at <= now <= promised_by),
        in service order, at most `limit`."""
        params = {"ar_team": team_id, "ar_now": now, "ar_limit": max(1, limit)}
        return [
            AtRisk(
                call_id=row.call_id,
                tier=row.tier,
                service_key=row.service_key,
                enqueued_at=row.enqueued_at,
                at_risk_at=row.at_risk_at,
                promised_by=row.promised_by,
            )
            for row in await self._execute(_AT_RISK, params)
        ]

    async def recent_wait_ratios(self, team_id: str, since: datetime, limit: int) -> list[float]:
        """Actual over quoted wait of the team's latest `limit` callbacks started at or after `since`
        (`domain.promises.wait_ratios`, computed in SQL: no row is turned into datetimes on a decision's
        path), newest first. With the store's `WaitRatioCache`, read once per `WAIT_RATIO_TTL`."""
        cache = self._wait_ratios
        cached = cache.get(team_id, limit) if cache is not None else None
        if cached is not None:
            return cached
        statement = _WAIT_RATIOS_PG if self._postgres else _WAIT_RATIOS_SQLITE
        params = {"wr_team": team_id, "wr_since": since, "wr_limit": max(1, limit)}
        ratios = [float(row.ratio) for row in await self._execute(statement, params)]
        if cache is not None:
            cache.put(team_id, limit, ratios)
        return ratios

    async def tiers_waiting_before(self, ticket: CallbackTicket) -> set[str]:
        """The tiers of the team's WAITING tickets served before `ticket`."""
        params = {
            "tb_team": ticket.team_id,
            "tb_key": ticket.service_key,
            "tb_at": ticket.enqueued_at,
            "tb_call": ticket.call_id,
        }
        return {row.tier for row in await self._execute(_TIERS_BEFORE, params)}

    async def promise_outcomes(self, team_id: str, since: datetime, limit: int) -> list[PromiseOutcome]:
        """The team's promises due at or after `since`, newest deadline first, at most `limit`."""
        params = {"po_team": team_id, "po_since": since, "po_limit": max(1, limit)}
        return [
            PromiseOutcome(
                starts_at=row.promise_from,
                due_by=row.promised_by,
                started_at=row.started_at,
                ended_at=row.finished_at,
            )
            for row in await self._execute(_PROMISE_OUTCOMES, params)
        ]

    async def finish(self, call_id: str, state: CallbackState, now: datetime, note: str) -> CallbackTicket:
        """Move an open ticket to the terminal `state` with `finished_at = now` and `note`.

        Finishing again with the same state returns the ticket unchanged (retries are safe); a different
        terminal state on a finished ticket is a Conflict, an unknown call NotFound.
        """
        if state.is_open:
            raise InvalidRequest(
                f"{state} is not a terminal callback state", [("state", "must be a terminal state")]
            )
        result = await self._execute(
            update(callbacks)
            .where(callbacks.c.call_id == call_id, callbacks.c.state.in_(_OPEN))
            .values(state=str(state), finished_at=now, note=note)
        )
        row = await self._row(call_id)
        if row is None:
            raise NotFound(f"no callback for call {call_id}")
        if result.rowcount != 1 and row.state != str(state):
            raise Conflict(f"callback for call {call_id} is already {row.state}")
        return ticket_from_row(row)

    async def waiting_since(self, team_id: str, before: datetime) -> int:
        """How many WAITING tickets of the team were enqueued at or before `before`."""
        params = {"since_team": team_id, "since_at": before}
        return int((await self._execute(_WAITING_SINCE, params)).scalar_one())
