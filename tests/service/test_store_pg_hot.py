"""Hot statements on PostgreSQL (`routing_service.store.pg_hot`): they run straight on the asyncpg connection,
read exactly what SQLAlchemy reads for the same statement, belong to the unit of work's transaction (a
rollback leaves nothing behind, a commit keeps everything), and fail with the exceptions SQLAlchemy raises
(constraint violations, a connection killed under them, a cancelled statement)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Double, Numeric, func, insert, literal_column, select, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.sql import Executable, Select

from routing_service.domain.errors import Unavailable
from routing_service.domain.models import Complexity, Customer
from routing_service.store import Store
from routing_service.store.agents import _CANDIDATES_PG, _GET, agent_from_row, candidates_statement
from routing_service.store.assignments import _FREE_SLOT, _LOCK_CALL, _RELEASE, _TAKE_SLOT
from routing_service.store.base import insert_ignore
from routing_service.store.callbacks import _AHEAD_OF, _WAITING_HEAD
from routing_service.store.customers import _GET as _GET_CUSTOMER
from routing_service.store.hot import FastResult, hot
from routing_service.store.pg_hot import pg_hot
from routing_service.store.tables import customers
from routing_service.store.unit_of_work import ConnectionLink, SqlUnitOfWork
from tests.service.store_builders import NOW, add_agents, enqueue, make_agent, make_ticket

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

_SLEEP = hot(select(func.pg_sleep(5)))
_INSERT_CUSTOMER = hot(insert(customers))
# NUMERIC read as float: SQLAlchemy picks that processor by the column's type OID.
_NUMERIC_AS_FLOAT: Select[float, float] = hot(
    select(
        literal_column("1.5::numeric", Numeric(asdecimal=False)).label("n"),
        literal_column("2.5::float8", Double()).label("f"),
    )
)


def _link(uow: SqlUnitOfWork) -> ConnectionLink:
    link = uow._session
    assert isinstance(link, ConnectionLink)
    return link


async def _backend_pid(link: ConnectionLink) -> int:
    raw = await (await link.connection()).get_raw_connection()
    pid: int = raw.driver_connection.get_server_pid()  # type: ignore[union-attr]
    return pid


def _admin_url(store: Store) -> str:
    """The store's database, for a plain asyncpg connection of its own."""
    return str(store.engine.url.set(drivername="postgresql"))


async def _terminate_backend(url: str, pid: int) -> bool:
    """Kill backend `pid` from another connection (as a server restart or failover would); True if killed."""
    admin = await asyncpg.connect(url)
    try:
        killed: bool = await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        return killed
    finally:
        await admin.close()


def _customer_row(number: str, **overrides: Any) -> dict[str, Any]:
    return {
        "number": number,
        "tier": "standard",
        "account_name": "",
        "previous_escalations": 0,
        "last_agent_id": None,
        "updated_at": NOW,
        **overrides,
    }


async def _seed(store: Store) -> None:
    await add_agents(
        store,
        *(make_agent(f"agent-{i}", capacity=2, idle_since=NOW - timedelta(minutes=i)) for i in range(6)),
        make_agent("never-idle", capacity=2, idle_since=None),
    )
    async with store.uow() as uow:
        await uow.customers.upsert(Customer(number="+15551230001", tier="gold", account_name="Acme"), NOW)
        await uow.commit()
    await enqueue(
        store, *(make_ticket(f"cb-{index}", service_key=key) for index, key in enumerate((2.5, 1.25, 7.0)))
    )


@postgres_only
async def test_hot_statements_run_on_asyncpg_and_read_what_sqlalchemy_reads(store: Store) -> None:
    await _seed(store)
    async with store.uow() as uow:
        fast = await uow.agents.candidates("technical", Complexity.ADVANCED, 4)
        link = _link(uow)
        params = {"team_id": "technical", "min_complexity": int(Complexity.ADVANCED), "limit": 4}
        # The same statement, not marked hot, goes through SQLAlchemy's own execution.
        slow_result = await link.execute(candidates_statement(postgres=True), params)
        assert isinstance(slow_result, CursorResult)
        slow = [agent_from_row(row) for row in slow_result]
    assert [a.agent_id for a in fast] == ["never-idle", "agent-5", "agent-4", "agent-3"]
    assert fast == slow
    runner = pg_hot(store.database.dialect)
    assert runner is not None
    assert runner.compiled.holds(_CANDIDATES_PG)


async def _both_ways(store: Store, statement: Executable, params: dict[str, Any]) -> None:
    """Run hot `statement` and a non-hot copy (same SQL) each in a unit of work that is rolled back; both
    must read the same rows, values, types and row count."""
    copy = statement.execution_options()  # a new object: not in the hot registry
    fast = await _run_rolled_back(store, statement, params, hot=True)
    slow = await _run_rolled_back(store, copy, params, hot=False)
    assert fast == slow
    fast_rows = fast[0]
    assert [[type(value) for value in row] for row in fast_rows] == [
        [type(value) for value in row] for row in slow[0]
    ]


async def _run_rolled_back(
    store: Store, statement: Executable, params: dict[str, Any], *, hot: bool
) -> tuple[list[tuple[Any, ...]], list[str], int]:
    async with store.uow() as uow:
        result = await _link(uow).execute(statement, params)
        assert isinstance(result, FastResult) is hot, statement
        if isinstance(result, FastResult):
            rows: Sequence[Any] = result.all()
            names = list(rows[0]._fields) if rows else []
            return [tuple(row) for row in rows], names, result.rowcount
        assert isinstance(result, CursorResult)
        if not result.returns_rows:
            return [], [], result.rowcount
        rows = result.all()
        return [tuple(row) for row in rows], list(result.keys()) if rows else [], result.rowcount


@postgres_only
async def test_every_kind_of_hot_statement_reads_and_counts_what_sqlalchemy_does(store: Store) -> None:
    await _seed(store)
    assert await _reserve_agent(store, "agent-1", "call-1")
    cases: list[tuple[Executable, dict[str, Any]]] = [
        (_CANDIDATES_PG, {"team_id": "technical", "min_complexity": 1, "limit": 10}),
        (_GET, {"agent_id": "agent-2"}),
        (_GET, {"agent_id": "never-idle"}),  # NULL timestamp
        (_GET, {"agent_id": "nobody"}),
        (_GET_CUSTOMER, {"number": "+15551230001"}),
        (_WAITING_HEAD, {"head_team": "technical", "head_limit": 5}),  # FLOAT column: processors by OID
        (_AHEAD_OF, {"ahead_team": "technical", "ahead_key": 2.5}),
        (_NUMERIC_AS_FLOAT, {}),
        (_TAKE_SLOT, {"slot_agent": "agent-3", "slot_at": NOW}),  # no rows: row count from the command tag
        (_TAKE_SLOT, {"slot_agent": "nobody", "slot_at": NOW}),
        (
            _RELEASE,
            {"rel_call": "call-1", "rel_purpose": "live", "rel_at": NOW, "rel_reason": "done"},
        ),
        (_FREE_SLOT, {"rel_agent": "agent-1", "rel_idle": NOW, "rel_updated": NOW}),
        (_LOCK_CALL, {"lock_call": "call-2"}),  # a void column
        (insert_ignore(customers, postgres=True), _customer_row("+15551230001")),  # conflict: 0 rows
        (insert_ignore(customers, postgres=True), _customer_row("+15551230002")),
    ]
    for statement, params in cases:
        await _both_ways(store, statement, params)


async def _reserve_agent(store: Store, agent_id: str, call_id: str) -> bool:
    async with store.uow() as uow:
        won = await uow.assignments.reserve(
            agent_id=agent_id, call_id=call_id, purpose="live", now=NOW, expires_at=NOW + timedelta(hours=1)
        )
        await uow.commit()
        return won


@postgres_only
async def test_a_calls_lock_taken_on_the_fast_path_holds_until_its_unit_of_work_ends(store: Store) -> None:
    async def lock_is_free() -> bool:
        other = await asyncpg.connect(_admin_url(store))
        try:
            free: bool = await other.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", "call-9")
            return free
        finally:
            await other.close()

    runner = pg_hot(store.database.dialect)
    assert runner is not None
    async with store.uow() as uow:
        await uow.assignments.lock_call("call-9")
        assert runner.compiled.holds(_LOCK_CALL)
        assert not await lock_is_free()
        await uow.commit()
    assert await lock_is_free()
    async with store.uow() as uow:
        await uow.assignments.lock_call("call-9")
        assert not await lock_is_free()
    assert await lock_is_free()  # rolled back: released as well


@postgres_only
async def test_hot_statements_belong_to_the_unit_of_works_transaction(store: Store) -> None:
    await add_agents(store, make_agent("alice", capacity=2))
    # Left without commit: the hot writes are rolled back with the unit of work.
    async with store.uow() as uow:
        assert await uow.assignments.reserve(
            agent_id="alice", call_id="call-1", purpose="live", now=NOW, expires_at=NOW + timedelta(hours=1)
        )
        raw = (await (await _link(uow).connection()).get_raw_connection()).driver_connection
        assert isinstance(raw, asyncpg.Connection)
        assert raw.is_in_transaction()
        # A statement through SQLAlchemy sees the hot statement's uncommitted write: one transaction.
        seen = await _link(uow).execute(
            text("SELECT active_assignments FROM agents WHERE agent_id = 'alice'")
        )
        assert seen.scalar_one() == 1
    async with store.uow() as uow:
        alice = await uow.agents.get("alice")
        assert alice is not None and alice.active_assignments == 0
        assert await uow.assignments.active_for_call("call-1", "live") is None

    # An explicit rollback, then more work committed in the same unit of work: only that is kept.
    async with store.uow() as uow:
        await _link(uow).execute(_INSERT_CUSTOMER, _customer_row("+15551239990"))
        await uow.rollback()
        await _link(uow).execute(_INSERT_CUSTOMER, _customer_row("+15551239991"))
        await uow.commit()
        # And after the commit a hot statement begins a new transaction, rolled back on exit.
        await _link(uow).execute(_INSERT_CUSTOMER, _customer_row("+15551239992"))
    async with store.uow() as uow:
        assert await uow.customers.get("+15551239990") is None
        assert await uow.customers.get("+15551239991") is not None
        assert await uow.customers.get("+15551239992") is None


@postgres_only
async def test_hot_statement_failures_are_sqlalchemy_errors(store: Store) -> None:
    async with store.uow() as uow:
        link = _link(uow)
        with pytest.raises(IntegrityError):  # CHECK constraint
            await link.execute(_INSERT_CUSTOMER, _customer_row("+15551230000", previous_escalations=-1))
        await uow.rollback()
        with pytest.raises(StatementError, match="naive datetime"):
            await link.execute(
                _INSERT_CUSTOMER, _customer_row("+15551230000", updated_at=datetime(2026, 1, 1))
            )
        await link.execute(_INSERT_CUSTOMER, _customer_row("+15551230000"))
        with pytest.raises(IntegrityError) as duplicate:  # primary key
            await link.execute(_INSERT_CUSTOMER, _customer_row("+15551230000"))
        assert not duplicate.value.connection_invalidated
    # The unit of work ends cleanly (rolled back) and the pooled connection is still good.
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230000") is None


@postgres_only
async def test_a_connection_killed_under_a_hot_statement_is_unavailable_and_replaced(store: Store) -> None:
    with pytest.raises(Unavailable):
        async with store.uow() as uow:
            await uow.customers.get("+15551230001")  # hot: checks out a connection and begins
            pid = await _backend_pid(_link(uow))
            assert await _terminate_backend(_admin_url(store), pid)
            await asyncio.sleep(0.1)
            await uow.customers.get("+15551230001")
    # The broken connection was invalidated, not returned to the pool: the next unit of work runs.
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None


@postgres_only
async def test_a_killed_connection_is_reported_as_sqlalchemy_reports_it(store: Store) -> None:
    async with store.uow() as uow:
        link = _link(uow)
        await link.execute(_GET_CUSTOMER, {"number": "+15551230001"})
        pid = await _backend_pid(link)
        await _terminate_backend(_admin_url(store), pid)
        await asyncio.sleep(0.1)
        with pytest.raises(DBAPIError) as failure:
            await link.execute(_GET_CUSTOMER, {"number": "+15551230001"})
        assert failure.value.connection_invalidated
        assert (await link.connection()).invalidated


@postgres_only
async def test_a_cancelled_hot_statement_discards_its_connection(store: Store) -> None:
    pids = []

    async def sleeper() -> None:
        async with store.uow() as uow:
            await _link(uow).execute(_GET_CUSTOMER, {"number": "+15551230001"})
            pids.append(await _backend_pid(_link(uow)))
            await _link(uow).execute(_SLEEP)

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert await _backend_pid(_link(uow)) != pids[0]


@postgres_only
async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(store: Store) -> None:
    async with store.uow() as uow:
        await uow.customers.get("+15551230001")
        pid = await _backend_pid(_link(uow))
    assert await _terminate_backend(_admin_url(store), pid)
    await asyncio.sleep(0.1)
    # No pre-ping round trip: the closed socket is noticed at checkout and the pool connects afresh.
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert await _backend_pid(_link(uow)) != pid


def _terminate_while_the_loop_is_blocked(url: str, pid: int) -> None:
    """Kill backend `pid` from another thread while this thread's event loop is blocked, so the loop has
    not seen the pooled connection's socket end when the next unit of work checks it out."""

    async def terminate() -> None:
        assert await _terminate_backend(url, pid)

    killer = threading.Thread(target=asyncio.run, args=(terminate(),))
    killer.start()
    killer.join()
    time.sleep(0.1)  # the server has closed the socket by now


@postgres_only
async def test_a_unit_of_works_first_statement_on_a_dead_pooled_connection_runs_on_a_new_one(
    store: Store,
) -> None:
    async with store.uow() as uow:
        await uow.customers.get("+15551230001")
        pid = await _backend_pid(_link(uow))
    _terminate_while_the_loop_is_blocked(_admin_url(store), pid)
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert await _backend_pid(_link(uow)) != pid
    # Only the first statement is retried: a connection dying later in a unit of work is `Unavailable`.
    with pytest.raises(Unavailable):
        async with store.uow() as uow:
            await uow.customers.get("+15551230001")
            pid = await _backend_pid(_link(uow))
            _terminate_while_the_loop_is_blocked(_admin_url(store), pid)
            await uow.customers.get("+15551230001")
