"""Reservations of specialist slots: atomic take, idempotent release, expiry and handle-time statistics.

Atomicity comes from the database, never from a Python lock: `reserve` is one conditional UPDATE
(`... WHERE status = 'available' AND active_assignments < capacity`) whose row count says whether this
transaction won the slot. PostgreSQL row-locks the agent and re-checks the condition after a concurrent
winner commits; SQLite serialises writers (BEGIN IMMEDIATE). The partial unique index
`uq_assignments_active_call` allows one ACTIVE assignment per (call, purpose).

On PostgreSQL the UPDATE, the assignment's insert and (for a decision's reservation) the decision row travel
as one statement (data-modifying CTEs), and so do a release and its freed slot: a round trip saved for each,
which matters most when the database is across a network.
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
    extract,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ColumnElement, Update

from routing_service.app.ports import HANDLE_TIME_SAMPLE, CallOffers, Released, StageChange
from routing_service.domain.errors import Conflict
from routing_service.domain.lifecycle import ALLOWED_FROM, AssignmentRecord, AssignmentStage
from routing_service.domain.models import Customer, Decision
from routing_service.store.base import SqlRepository
from routing_service.store.customers import SqlCustomerRepository, customer_from_row
from routing_service.store.decisions import (
    SqlDecisionRepository,
    decision_params,
    duplicate,
    insert_for_each,
)
from routing_service.store.statements import shared
from routing_service.store.tables import (
    RECENT_ESCALATIONS_WIDTH,
    UtcDateTime,
    agents,
    assignments,
    customers,
)

__all__ = ["ACTIVE", "RELEASED", "SqlAssignmentRepository", "record_from_row"]

ACTIVE = "active"
RELEASED = "released"
_ACTIVE_LITERAL: ColumnElement[str] = literal_column(
    "'active'", String
)  # literal so the partial indexes on state = 'active' apply


def _recent_with(entry: ColumnElement[str]) -> ColumnElement[str]:
    """`agents.recent_escalations` with `entry` appended, keeping the last RECENT_ESCALATIONS_KEPT entries
    (fixed width, so the oldest are cut from the front; portable CASE/substr/length on both databases)."""
    appended = agents.c.recent_escalations + entry
    return case(
        (
            func.length(appended) > RECENT_ESCALATIONS_WIDTH,
            func.substr(appended, func.length(appended) - (RECENT_ESCALATIONS_WIDTH - 1)),
        ),
        else_=appended,
    )


_CRITICAL = bindparam("slot_critical", type_=Integer())
# Built once (see base.SqlRepository). UPDATE statements may not use bind names equal to column names.
# The slot and the fair-load figures the caps read (routing_service.domain.fair_load) change in this one
# statement, under the agent's row lock; `slot_version` (NULL: any) makes a reservation judged on the
# figures succeed only while they are the ones it read.
_TAKE_SLOT = shared(
    update(agents)
    .where(
        agents.c.agent_id == bindparam("slot_agent"),
        agents.c.status == "available",
        agents.c.active_assignments < agents.c.capacity,
        agents.c.load_version
        == func.coalesce(bindparam("slot_version", type_=Integer()), agents.c.load_version),
    )
    .values(
        active_assignments=agents.c.active_assignments + 1,
        updated_at=bindparam("slot_at", type_=UtcDateTime()),
        recent_escalations=_recent_with(bindparam("slot_entry", type_=String())),
        last_critical_at=case(
            (_CRITICAL == 1, bindparam("slot_critical_at", type_=UtcDateTime())),
            else_=agents.c.last_critical_at,
        ),
        critical_in_row=case((_CRITICAL == 1, agents.c.critical_in_row + 1), else_=0),
        load_version=agents.c.load_version + 1,
    )
)


def _slot_params(agent_id: str, now: datetime, *, critical: bool, load_version: int | None) -> dict[str, Any]:
    """The bind parameters of `_TAKE_SLOT`."""
    return {
        "slot_agent": agent_id,
        "slot_at": now,
        "slot_version": load_version,
        "slot_entry": f"{int(now.timestamp()):010d} ",
        "slot_critical": 1 if critical else 0,
        "slot_critical_at": now,
    }


_GIVE_BACK = shared(
    update(agents)
    .where(agents.c.agent_id == bindparam("slot_agent"))
    .values(active_assignments=agents.c.active_assignments - 1)
)
_ACTIVE_FOR_CALL = shared(
    select(assignments.c.agent_id).where(
        assignments.c.call_id == bindparam("call_id"),
        assignments.c.purpose == bindparam("purpose"),
        assignments.c.state == _ACTIVE_LITERAL,
    )
)

_RELEASE = shared(
    update(assignments)
    .where(
        assignments.c.call_id == bindparam("rel_call"),
        assignments.c.purpose == bindparam("rel_purpose"),
        assignments.c.state == _ACTIVE_LITERAL,
    )
    .values(
        state=RELEASED,
        stage=str(AssignmentStage.RELEASED),
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
_FREE_SLOT = shared(
    update(agents)
    .where(agents.c.agent_id == bindparam("rel_agent"))
    .values(_SLOT_FREED)
    .returning(agents.c.capacity, agents.c.active_assignments, agents.c.team_ids)
)


# A round trip of its own: a statement's snapshot is taken before the lock is granted, so reads joined to it
# would miss what the decision it waited for committed.


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


def _reserve_pg(*, record: bool) -> Select[Any]:
    """PostgreSQL: `_TAKE_SLOT` and the assignment's insert-or-ignore in one statement (data-modifying
    CTEs), one round trip instead of two. One row: slots taken (0 or 1) and assignments inserted (0 or 1;
    0 with a slot taken means the call already held an active assignment of this purpose).

    With `record`, the decision's insert-or-ignore follows in the same statement, fed by the assignment's
    insert: the decision row exists only when the reservation does (the third count, `recorded`: 0 with an
    assignment inserted means the decision was stored already)."""
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
        literal(str(AssignmentStage.RESERVED), String()),
        bindparam("res_team", type_=String()),
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
        "stage",
        "team_id",
    ]
    inserted = (
        postgresql.insert(assignments)
        .from_select(columns, row)
        .on_conflict_do_nothing()
        .returning(assignments.c.assignment_id)
        .cte("inserted")
    )
    counts = [
        select(func.count()).select_from(taken).scalar_subquery().label("taken"),
        select(func.count()).select_from(inserted).scalar_subquery().label("inserted"),
    ]
    if record:
        recorded = insert_for_each(inserted).cte("recorded")
        counts.append(select(func.count()).select_from(recorded).scalar_subquery().label("recorded"))
    return select(*counts)


_RELEASE_AND_FREE_PG = shared(_release_and_free_pg())
_RESERVE_PG = shared(_reserve_pg(record=False))
_RESERVE_AND_RECORD_PG = shared(_reserve_pg(record=True))


def _handle_time_statement(*, postgres: bool) -> Select[Any]:
    """The mean handle time (connected -> end of conversation) of a team's latest finished conversations:
    newest first down the partial (team_id, completed_at) index, stopping after `sample`, so the cost does
    not grow with the traffic of the window (averaging every call of a busy centre's hour made each callback
    decision slow exactly when calls pile up), and the latest calls are the better estimate anyway.
    Reservations that never connected (missed, released unused) have no handle time and are not in the
    index."""
    seconds: ColumnElement[Any]
    if postgres:
        seconds = extract("epoch", assignments.c.completed_at - assignments.c.connected_at)
    else:
        seconds = (
            func.julianday(assignments.c.completed_at) - func.julianday(assignments.c.connected_at)
        ) * 86400.0
    latest = (
        select(seconds.label("seconds"))
        .where(
            assignments.c.team_id == bindparam("team_id"),
            assignments.c.completed_at >= bindparam("since", type_=UtcDateTime),
            assignments.c.purpose == "live",
            assignments.c.connected_at.is_not(None),
        )
        .order_by(assignments.c.completed_at.desc())
        .limit(bindparam("sample", type_=Integer))
        .subquery()
    )
    return select(func.avg(latest.c.seconds).label("mean"), func.count(latest.c.seconds).label("samples"))


_HANDLE_TIME_SQLITE = shared(_handle_time_statement(postgres=False))
_HANDLE_TIME_PG = shared(_handle_time_statement(postgres=True))

_RECORD_COLUMNS = (
    assignments.c.call_id,
    assignments.c.purpose,
    assignments.c.agent_id,
    assignments.c.stage,
    assignments.c.reserved_at,
    assignments.c.expires_at,
    assignments.c.team_id,
    assignments.c.offered_at,
    assignments.c.connected_at,
    assignments.c.completed_at,
    assignments.c.released_at,
    assignments.c.release_reason,
)


def record_from_row(row: Any, prefix: str = "") -> AssignmentRecord:
    """Map an `assignments` row (at least `_RECORD_COLUMNS`, each named `prefix` + its name) to the domain
    record."""
    if prefix:
        row = _Unprefixed(row, prefix)
    return AssignmentRecord(
        call_id=row.call_id,
        purpose=row.purpose,
        agent_id=row.agent_id,
        stage=AssignmentStage(row.stage),
        reserved_at=row.reserved_at,
        expires_at=row.expires_at,
        team_id=row.team_id,
        offered_at=row.offered_at,
        connected_at=row.connected_at,
        completed_at=row.completed_at,
        released_at=row.released_at,
        reason=row.release_reason,
    )


class _Unprefixed:
    """A row's columns named `prefix` + name, read by name."""

    __slots__ = ("_prefix", "_row")

    def __init__(self, row: Any, prefix: str) -> None:
        self._row, self._prefix = row, prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, self._prefix + name)


def _move(to_stage: AssignmentStage) -> Update:
    """`UPDATE assignments` moving the call's held assignment of a purpose to `to_stage`, only from the
    stages `ALLOWED_FROM` lists (so a repeat, or a move that no longer applies, changes no row), returning the
    record. Moving to a stage that frees the slot also sets state 'released' and released_at; the caller
    gives the slot back. Parameters: mv_call, mv_purpose, mv_at, mv_reason, mv_expires (None keeps)."""
    at = bindparam("mv_at", type_=UtcDateTime())
    values: dict[str, Any] = {
        "stage": str(to_stage),
        "release_reason": bindparam("mv_reason", type_=String()),
        "expires_at": func.coalesce(bindparam("mv_expires", type_=UtcDateTime()), assignments.c.expires_at),
    }
    if to_stage is AssignmentStage.OFFERED:
        values["offered_at"] = at
    elif to_stage is AssignmentStage.CONNECTED:
        values["offered_at"] = func.coalesce(assignments.c.offered_at, at)
        values["connected_at"] = at
    elif to_stage in (AssignmentStage.WRAP_UP, AssignmentStage.COMPLETED):
        values["completed_at"] = func.coalesce(assignments.c.completed_at, at)
    if not to_stage.holds_slot:
        values["state"] = RELEASED
        values["released_at"] = at
    allowed = sorted(str(stage) for stage in ALLOWED_FROM[to_stage])
    return (
        update(assignments)
        .where(
            assignments.c.call_id == bindparam("mv_call"),
            assignments.c.purpose == bindparam("mv_purpose"),
            assignments.c.state == _ACTIVE_LITERAL,
            assignments.c.stage.in_([literal_column(f"'{stage}'", String) for stage in allowed]),
        )
        .values(values)
        .returning(*_RECORD_COLUMNS)
    )


def _move_and_free_pg(to_stage: AssignmentStage) -> Select[Any]:
    """PostgreSQL: `_move(to_stage)` (a freeing stage) and the freed slot in one statement, as
    `_release_and_free_pg`. The agent's columns are NULL when its row is gone."""
    moved = _move(to_stage).cte("moved")
    freed = (
        update(agents)
        .where(agents.c.agent_id == moved.c.agent_id)
        .values(_SLOT_FREED)
        .returning(agents.c.agent_id, agents.c.capacity, agents.c.active_assignments, agents.c.team_ids)
        .cte("freed")
    )
    return select(*moved.c, freed.c.capacity, freed.c.active_assignments, freed.c.team_ids).select_from(
        moved.outerjoin(freed, freed.c.agent_id == moved.c.agent_id)
    )


_MOVES = {stage: shared(_move(stage)) for stage in AssignmentStage if ALLOWED_FROM[stage]}
_MOVES_AND_FREE_PG = {
    stage: shared(_move_and_free_pg(stage))
    for stage in AssignmentStage
    if ALLOWED_FROM[stage] and not stage.holds_slot
}
_LIVE_FOR_CALL = shared(
    select(*_RECORD_COLUMNS).where(
        assignments.c.call_id == bindparam("call_id"),
        assignments.c.purpose == bindparam("purpose"),
        assignments.c.state == _ACTIVE_LITERAL,
    )
)
_RELEASED_LITERAL: ColumnElement[str] = literal_column("'released'", String)
_MISSED_AGENTS = shared(
    select(assignments.c.agent_id)
    .where(
        assignments.c.call_id == bindparam("call_id"),
        assignments.c.state == _RELEASED_LITERAL,
        assignments.c.purpose == "live",
        assignments.c.stage == str(AssignmentStage.MISSED),
    )
    .distinct()
)
# Both of the call's kinds of live offer in one statement: the slot-holding one (through
# uq_assignments_active_call) and those it missed (through ix_assignments_released_call_id).
_OFFERS_FOR_CALL = shared(
    union_all(
        select(*_RECORD_COLUMNS).where(
            assignments.c.call_id == bindparam("call_id"),
            assignments.c.purpose == "live",
            assignments.c.state == _ACTIVE_LITERAL,
        ),
        select(*_RECORD_COLUMNS).where(
            assignments.c.call_id == bindparam("call_id"),
            assignments.c.state == _RELEASED_LITERAL,
            assignments.c.purpose == "live",
            assignments.c.stage == str(AssignmentStage.MISSED),
        ),
    )
)
_HAND_OFF = (
    update(assignments)
    .where(
        assignments.c.call_id == bindparam("ho_call"),
        assignments.c.purpose == bindparam("ho_purpose"),
        assignments.c.state == _ACTIVE_LITERAL,
    )
    .values(
        state=RELEASED,
        stage=str(AssignmentStage.RELEASED),
        released_at=bindparam("ho_at", type_=UtcDateTime()),
        release_reason=bindparam("ho_reason", type_=String()),
    )
    .returning(assignments.c.agent_id)
)


def _offers_and_customer_pg() -> Select[Any]:
    """PostgreSQL: `_OFFERS_FOR_CALL` and the caller's customer row in one statement, each outer-joined to
    a one-row seed: a row per offer (at least one), the customer's columns by their names (NULL when not on
    record), the offer's prefixed `o_` (NULL when there is none)."""
    seed = select(literal(1).label("seed")).subquery("seed")
    customer = select(customers).where(customers.c.number == bindparam("caller")).subquery("customer")
    offers = _OFFERS_FOR_CALL.subquery("offers")
    return select(*customer.c, *(column.label(f"o_{column.name}") for column in offers.c)).select_from(
        seed.outerjoin(customer, true()).outerjoin(offers, true())
    )


_OFFERS_AND_CUSTOMER_PG = shared(_offers_and_customer_pg())


class SqlAssignmentRepository(SqlRepository):
    """`ports.AssignmentRepository` on SQL."""

    async def reserve(
        self,
        *,
        agent_id: str,
        call_id: str,
        purpose: str,
        now: datetime,
        expires_at: datetime,
        team_id: str | None = None,
        critical: bool = False,
        load_version: int | None = None,
        decision: Decision | None = None,
    ) -> bool:
        """Take one slot of the agent in the current transaction; False when none was free (or the agent is
        not available / unknown, or, with `load_version`, another reservation changed its fair-load figures
        since they were read).

        With `decision`, the decision row is stored exactly when the result is True (`DuplicateDecision`
        when it is stored already): on PostgreSQL in the reservation's statement (`_reserve_pg`), on SQLite
        as the next statement (a library call, not a round trip).

        The same statement appends `now` to the agent's recent escalations, and for a `critical` call sets
        its last critical time and adds one to its critical run (a non-critical call ends the run).

        The assignment starts `reserved`, with the team the call was routed to (`team_id`, stored in the
        same insert). A call holds at most one active assignment per purpose: when it already holds one
        with this agent, that one stands and the result is True (no second slot is taken); with another
        agent, `Conflict`.
        """
        if self._postgres:
            params = _slot_params(agent_id, now, critical=critical, load_version=load_version) | {
                "res_call": call_id,
                "res_purpose": purpose,
                "res_at": now,
                "res_expires": expires_at,
                "res_team": team_id,
            }
            if decision is None:
                counts = (await self._execute(_RESERVE_PG, params)).first()  # one row: two counts
            else:
                params |= decision_params(decision)
                counts = (await self._execute(_RESERVE_AND_RECORD_PG, params)).first()  # three counts
            taken, inserted = (counts.taken, counts.inserted) if counts is not None else (0, 0)
            if taken == 1 and inserted == 1:
                if decision is not None and counts.recorded != 1:
                    raise duplicate(decision)
                return True
            if taken != 1:
                stands = await self.active_for_call(call_id, purpose) == agent_id
            else:
                stands = await self._give_back(agent_id, call_id, purpose)
            return await self._recorded(decision) if stands else False
        slot = _slot_params(agent_id, now, critical=critical, load_version=load_version)
        won = await self._execute(_TAKE_SLOT, slot)
        if won.rowcount != 1:
            if await self.active_for_call(call_id, purpose) != agent_id:
                return False
            return await self._recorded(decision)
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
                "stage": str(AssignmentStage.RESERVED),
                "team_id": team_id,
            },
        )
        if not inserted:
            await self._give_back(agent_id, call_id, purpose)
        return await self._recorded(decision)

    async def _recorded(self, decision: Decision | None) -> bool:
        """The reservation stands: store its decision, if any (its own statement). True."""
        if decision is not None:
            await SqlDecisionRepository(self._session).add(decision)
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
        """Release the call's active assignment for `purpose` whatever its stage (stage `released`) and give
        the slot back (never below zero); an agent left with no active assignment becomes idle since `now`.
        None when nothing was active."""
        params = {
            "rel_call": call_id,
            "rel_purpose": purpose,
            "rel_at": now,
            "rel_reason": reason[:256],
        }
        if self._postgres:
            params |= {"rel_idle": now, "rel_updated": now}
            row = (await self._execute(_RELEASE_AND_FREE_PG, params)).first()
            return None if row is None else _released(call_id, row.agent_id, row)
        released = (await self._execute(_RELEASE, params)).first()
        if released is None:
            return None
        return await self._free_slot(call_id, released.agent_id, now)

    async def _free_slot(self, call_id: str, agent_id: str, now: datetime) -> Released:
        """Give back the slot of `agent_id` (SQLite's second statement of a release)."""
        freed = {"rel_agent": agent_id, "rel_idle": now, "rel_updated": now}
        after = (await self._execute(_FREE_SLOT, freed)).first()
        return _released(call_id, agent_id, after)

    async def transition(
        self,
        call_id: str,
        purpose: str,
        to_stage: AssignmentStage,
        now: datetime,
        reason: str,
        expires_at: datetime | None = None,
    ) -> StageChange | None:
        """Move the call's held assignment of `purpose` to `to_stage`, when its stage allows it
        (`lifecycle.ALLOWED_FROM`); None otherwise (nothing held, a repeat, or a move that no longer applies:
        idempotent). Stamps offered_at / connected_at / completed_at; `expires_at` replaces the stage's
        time-out (None keeps it). A stage that frees the slot gives it back exactly like `release` and the
        change carries the `Released` to announce."""
        if not ALLOWED_FROM[to_stage]:
            raise ValueError(f"no move leads to {to_stage}")
        params = {
            "mv_call": call_id,
            "mv_purpose": purpose,
            "mv_at": now,
            "mv_reason": reason[:256],
            "mv_expires": expires_at,
        }
        if to_stage.holds_slot:
            row = (await self._execute(_MOVES[to_stage], params)).first()
            return None if row is None else StageChange(record_from_row(row), None)
        if self._postgres:
            params |= {"rel_idle": now, "rel_updated": now}
            row = (await self._execute(_MOVES_AND_FREE_PG[to_stage], params)).first()
            if row is None:
                return None
            return StageChange(record_from_row(row), _released(call_id, row.agent_id, row))
        row = (await self._execute(_MOVES[to_stage], params)).first()
        if row is None:
            return None
        return StageChange(record_from_row(row), await self._free_slot(call_id, row.agent_id, now))

    async def lock_call(self, call_id: str) -> None:
        """PostgreSQL: a transaction-scoped advisory lock on the call, taken with the transaction's `BEGIN`
        in one round trip (`PostgresLink.lock`). SQLite: nothing to do, its writers are serialised by
        BEGIN IMMEDIATE already."""
        await self._lock(call_id)

    async def live_for_call(self, call_id: str, purpose: str = "live") -> AssignmentRecord | None:
        """The call's assignment of `purpose` that holds a slot, with its stage; None when none does."""
        row = (await self._execute(_LIVE_FOR_CALL, {"call_id": call_id, "purpose": purpose})).first()
        return None if row is None else record_from_row(row)

    async def latest_for_call(self, call_id: str, purpose: str = "live") -> AssignmentRecord | None:
        """The call's newest assignment of `purpose`, whatever its stage (None when it never had one)."""
        live = await self.live_for_call(call_id, purpose)
        if live is not None:
            return live
        query = (
            select(*_RECORD_COLUMNS)
            .where(
                assignments.c.call_id == call_id,
                assignments.c.state == _RELEASED_LITERAL,
                assignments.c.purpose == purpose,
            )
            .order_by(assignments.c.assignment_id.desc())
            .limit(1)
        )
        row = (await self._execute(query)).first()
        return None if row is None else record_from_row(row)

    async def live_for_agents(self, agent_ids: list[str]) -> list[AssignmentRecord]:
        """The slot-holding assignments of these agents (any purpose), oldest first."""
        if not agent_ids:
            return []
        query = (
            select(*_RECORD_COLUMNS)
            .where(assignments.c.agent_id.in_(sorted(set(agent_ids))), assignments.c.state == _ACTIVE_LITERAL)
            .order_by(assignments.c.reserved_at, assignments.c.assignment_id)
        )
        return [record_from_row(row) for row in await self._execute(query)]

    async def missed_agents(self, call_id: str) -> set[str]:
        """Agents whose live assignment for this call ended `missed` (they did not take it)."""
        return {row.agent_id for row in await self._execute(_MISSED_AGENTS, {"call_id": call_id})}

    async def offers_for_call(self, call_id: str, caller: str | None = None) -> CallOffers:
        """The call's slot-holding live assignment and who missed it, in one statement; with `caller`, the
        customer on record for it too (PostgreSQL: in the same statement, `_offers_and_customer_pg`;
        SQLite: the next one)."""
        live: AssignmentRecord | None = None
        missed: set[str] = set()
        customer: Customer | None = None
        if caller and self._postgres:
            params = {"call_id": call_id, "caller": caller}
            records = []
            for row in await self._execute(_OFFERS_AND_CUSTOMER_PG, params):
                if customer is None and row.number is not None:
                    customer = customer_from_row(row)
                if row.o_call_id is not None:
                    records.append(record_from_row(row, prefix="o_"))
        else:
            records = [
                record_from_row(row) for row in await self._execute(_OFFERS_FOR_CALL, {"call_id": call_id})
            ]
            if caller:
                customer = await SqlCustomerRepository(self._session).get(caller)
        for record in records:
            if record.stage is AssignmentStage.MISSED:
                missed.add(record.agent_id)
            else:
                live = record
        return CallOffers(live=live, missed=frozenset(missed), customer=customer)

    async def hand_over(
        self,
        *,
        from_call_id: str,
        from_purpose: str,
        to_call_id: str,
        to_purpose: str,
        team_id: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> str | None:
        """Move the slot held by (`from_call_id`, `from_purpose`) onto (`to_call_id`, `to_purpose`) as a new
        `reserved` assignment, without freeing the slot in between (the old row ends `released`, "handed
        over"). The specialist's id; None when nothing was held. When the target already holds an assignment
        of that purpose: with the same specialist it stands (the extra slot is given back), with another one
        the slot is given back and `Conflict` is raised."""
        params = {
            "ho_call": from_call_id,
            "ho_purpose": from_purpose,
            "ho_at": now,
            "ho_reason": f"handed over to call {to_call_id}"[:256],
        }
        moved = (await self._execute(_HAND_OFF, params)).first()
        if moved is None:
            return None
        agent_id: str = moved.agent_id
        inserted = await self._insert_ignore(
            assignments,
            {
                "call_id": to_call_id,
                "purpose": to_purpose,
                "agent_id": agent_id,
                "state": ACTIVE,
                "reserved_at": now,
                "expires_at": expires_at,
                "released_at": None,
                "release_reason": f"handed over from {from_purpose} of call {from_call_id}"[:256],
                "stage": str(AssignmentStage.RESERVED),
                "team_id": team_id,
            },
        )
        if not inserted:
            await self._free_slot(to_call_id, agent_id, now)
            holder = await self.active_for_call(to_call_id, to_purpose)
            if holder != agent_id:
                raise Conflict(
                    f"call {to_call_id} already holds an active {to_purpose} assignment with {holder}"
                )
        return agent_id

    async def active_for_call(self, call_id: str, purpose: str) -> str | None:
        """The agent holding the call's active assignment for `purpose`, if any."""
        params = {"call_id": call_id, "purpose": purpose}
        found: str | None = (await self._execute(_ACTIVE_FOR_CALL, params)).scalar_one_or_none()
        return found

    async def expired(self, now: datetime, limit: int) -> list[AssignmentRecord]:
        """Slot-holding assignments whose current stage timed out (`expires_at` at or before `now`), oldest
        first (the sweeper decides per stage what happens)."""
        query = (
            select(*_RECORD_COLUMNS)
            .where(assignments.c.state == _ACTIVE_LITERAL, assignments.c.expires_at <= now)
            .order_by(assignments.c.expires_at, assignments.c.assignment_id)
            .limit(max(0, limit))
        )
        return [record_from_row(row) for row in await self._execute(query)]

    async def recent_handle_time(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> timedelta | None:
        """Mean handle time (connected_at -> completed_at) of the team's last `limit` live conversations that
        ended at or after `since`; None when there were none (see `_handle_time_statement`)."""
        sample = await self.recent_handle_sample(team_id, since, limit=limit)
        return sample[0] if sample is not None else None

    async def recent_handle_sample(
        self, team_id: str, since: datetime, *, limit: int = HANDLE_TIME_SAMPLE
    ) -> tuple[timedelta, int] | None:
        """`recent_handle_time` and how many conversations it averaged, in one read; None when none."""
        statement = _HANDLE_TIME_PG if self._postgres else _HANDLE_TIME_SQLITE
        params = {"team_id": team_id, "since": since, "sample": max(1, limit)}
        row = (await self._execute(statement, params)).first()
        if row is None or row.mean is None:
            return None
        return timedelta(seconds=max(0.0, float(row.mean))), int(row.samples)


def _released(call_id: str, agent_id: str, agent_row: Any) -> Released:
    """What a freed slot announces; no teams and no free slot when the agent row is gone (its assignments
    cascade with it, so only mid-race)."""
    if agent_row is None or agent_row.capacity is None:
        return Released(call_id=call_id, agent_id=agent_id, team_ids=(), free_slots=0)
    return Released(
        call_id=call_id,
        agent_id=agent_id,
        team_ids=tuple(agent_row.team_ids or ()),
        free_slots=max(0, agent_row.capacity - agent_row.active_assignments),
    )
