"""The store on SQLite (`routing_service.store.sqlite`): one stdlib sqlite3 connection, statements inline on
the event loop. Units of work serialise among themselves, never block the loop while another process holds the
write lock, give up with `Unavailable` after the busy timeout, give the connection back when cancelled and
leave checkpoints to a background thread; statements compiled once read the values their types say and fail
with sqlite3's own exceptions. A private in-memory database is that one connection."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Double, Integer, Numeric, bindparam, literal_column, select, text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.sql import Executable

from routing_service.domain.errors import Unavailable
from routing_service.domain.models import AgentStatus, Complexity, Customer
from routing_service.store import Store
from routing_service.store.agents import _CANDIDATES_SQLITE, _GET, _OTHERS
from routing_service.store.assignments import _TAKE_SLOT, _slot_params
from routing_service.store.base import insert_ignore
from routing_service.store.callbacks import _AHEAD_OF, _WAITING_HEAD
from routing_service.store.customers import _GET as _GET_CUSTOMER
from routing_service.store.database import is_sqlite, open_database
from routing_service.store.errors import is_unavailable
from routing_service.store.sqlite import (
    CHECKPOINT_AFTER_COMMITS,
    CHECKPOINT_NICE,
    SqliteDatabase,
    SqliteLink,
    sqlite_path,
)
from routing_service.store.statements import SHARED_STATEMENTS, CompiledStatement, shared
from routing_service.store.tables import customers
from routing_service.store.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory
from tests.service.store_builders import (
    AGENTS_IN,
    INSERT_CUSTOMER,
    NOW,
    add_agents,
    enqueue,
    make_agent,
    make_decision,
    make_ticket,
    opened_store,
)

pytestmark = pytest.mark.timeout(60)

_NUMERIC: Executable = shared(
    select(
        literal_column("1.5", Numeric(asdecimal=False)).label("n"),
        literal_column("2.5", Double()).label("f"),
        literal_column("3.25", Numeric()).label("d"),
    )
)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}") as opened:
        yield opened


def _database(store: Store) -> SqliteDatabase:
    database = store.database
    assert isinstance(database, SqliteDatabase)
    return database


def _link(uow: SqlUnitOfWork) -> SqliteLink:
    link = uow._session
    assert isinstance(link, SqliteLink)
    return link


def _holder(store: Store) -> sqlite3.Connection:
    """Another process's connection, as far as SQLite can tell: it takes the write lock."""
    holder = sqlite3.connect(_database(store).path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def _wal_size(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def _ticks_while(work: asyncio.Task[object], period: float = 0.005) -> int:
    ticks = 0
    while not work.done():
        await asyncio.sleep(period)
        ticks += 1
    return ticks


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


async def test_a_file_url_opens_the_inline_database_on_that_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "routing.db"
    async with opened_store(f"sqlite+aiosqlite:///{path}") as store:
        database = _database(store)
        assert database.path == str(path) and path.exists()  # its folder created
        assert database.checkpointer is not None
        assert store.dialect_name == database.dialect_name == "sqlite"
    assert is_sqlite("sqlite:///x.db") and is_sqlite("sqlite+aiosqlite:///:memory:")
    assert not is_sqlite("postgresql+asyncpg://u@127.0.0.1/db")
    assert sqlite_path("sqlite+aiosqlite:///:memory:") == sqlite_path("sqlite://") == ":memory:"
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        await open_database("mysql://u@127.0.0.1/db")


async def test_an_in_memory_database_is_one_connection_that_stores_and_reads() -> None:
    async with (
        opened_store("sqlite+aiosqlite:///:memory:") as store,
        opened_store("sqlite+aiosqlite:///:memory:") as other,
    ):
        database = _database(store)
        assert database.path == ":memory:" and database.checkpointer is None
        connection = database.connection()
        await add_agents(store, make_agent("alice", idle_since=NOW))
        async with store.uow() as uow:
            await uow.customers.upsert(Customer(number="+15551230001", tier="gold"), NOW)
            await uow.commit()
        # A unit of work left without commit leaves nothing behind, in memory as on a file.
        async with store.uow() as uow:
            await uow.customers.upsert(Customer(number="+15551230002", tier="gold"), NOW)
        async with store.uow() as uow:
            alice = await uow.agents.get("alice")
            gold = await uow.customers.get("+15551230001")
            assert await uow.customers.get("+15551230002") is None
        assert alice is not None and alice.idle_since == NOW and alice.team_ids == ("technical",)
        assert gold is not None and gold.tier == "gold"
        assert database.connection() is connection, "the database is its one connection"
        # Each private in-memory database is its own.
        async with other.uow() as uow:
            assert await uow.agents.get("alice") is None


async def test_inline_connection_has_the_pragmas_but_no_busy_timeout_or_autocheckpoint(store: Store) -> None:
    database = _database(store)
    connection = await database.acquire()
    try:
        settings = {
            name: connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "wal_autocheckpoint")
        }
    finally:
        database.end(connection)
    # synchronous: 1 is NORMAL
    assert settings == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 0,
        "wal_autocheckpoint": 0,
    }
    assert not database.lock.locked()


async def test_loop_keeps_running_and_unit_of_work_waits_when_another_process_holds_the_lock(
    store: Store,
) -> None:
    await add_agents(store, make_agent("alice"))
    holder = _holder(store)

    async def set_busy() -> None:
        async with store.uow() as uow:
            await uow.agents.set_status("alice", AgentStatus.BUSY, NOW)
            await uow.commit()

    work = asyncio.create_task(set_busy())
    try:
        await asyncio.sleep(0.2)
        assert not work.done()
        ticker = asyncio.create_task(_ticks_while(work))
        await asyncio.sleep(0.2)
        # A loop blocked in a busy handler would not have ticked at all.
        assert not ticker.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await asyncio.wait_for(work, 5)
    assert await ticker > 10
    async with store.uow() as uow:
        alice = await uow.agents.get("alice")
    assert alice is not None and alice.status is AgentStatus.BUSY


async def test_unit_of_work_is_unavailable_after_the_busy_timeout(store: Store) -> None:
    database = SqliteDatabase(store.url, busy_timeout_ms=150)
    factory = SqlUnitOfWorkFactory(database)
    holder = _holder(store)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="locked"):
            async with factory() as uow:
                await uow.customers.get("+15550100100")
        waited = time.monotonic() - started
        assert 0.1 <= waited < 2, waited
        assert not database.lock.locked(), "the lock was given back"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    try:
        # The connection and its lock were given back: the next unit of work on it runs.
        async with factory() as uow:
            assert await uow.customers.get("+15550100100") is None
    finally:
        await database.close()
    async with store.uow() as uow:
        assert await uow.customers.get("+15550100100") is None


async def test_units_of_work_take_turns_when_one_suspends_inside_its_transaction(store: Store) -> None:
    order: list[str] = []

    async def slow_writer() -> None:
        async with store.uow() as uow:
            await uow.decisions.get("x", "y")  # first statement: takes the connection
            order.append("slow in")
            await asyncio.sleep(0.05)  # a real suspension while the transaction is open
            order.append("slow out")
            await uow.commit()

    async def quick_reader() -> None:
        await asyncio.sleep(0.01)
        async with store.uow() as uow:
            await uow.decisions.get("x", "y")
            order.append("quick")

    await asyncio.gather(slow_writer(), quick_reader())
    assert order == ["slow in", "slow out", "quick"]
    assert not _database(store).lock.locked()


async def test_cancelled_unit_of_work_gives_the_connection_back(store: Store) -> None:
    holder = _holder(store)

    async def blocked() -> None:
        async with store.uow() as uow:
            await uow.customers.get("+15550100100")

    work = asyncio.create_task(blocked())
    await asyncio.sleep(0.05)
    assert _database(store).lock.locked(), "waiting for the file lock, holding the connection"
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work
    assert not _database(store).lock.locked()
    holder.execute("ROLLBACK")
    holder.close()
    async with asyncio.timeout(5), store.uow() as uow:
        assert await uow.customers.get("+15550100100") is None


async def test_a_unit_of_work_cancelled_inside_its_transaction_rolls_back(store: Store) -> None:
    inside = asyncio.Event()

    async def writer() -> None:
        async with store.uow() as uow:
            await uow.customers.upsert(Customer(number="+15551230009", tier="gold"), NOW)
            inside.set()
            await asyncio.sleep(10)
            await uow.commit()

    work = asyncio.create_task(writer())
    await asyncio.wait_for(inside.wait(), 5)
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work
    assert not _database(store).lock.locked()
    assert not _database(store).connection().in_transaction
    async with asyncio.timeout(5), store.uow() as uow:
        assert await uow.customers.get("+15551230009") is None


async def test_statements_belong_to_the_unit_of_works_transaction(store: Store) -> None:
    async with store.uow() as uow:
        link = _link(uow)
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551239990"))
        assert _database(store).connection().in_transaction
        # A textual statement sees the uncommitted write: one transaction.
        seen = await link.execute(text("SELECT count(*) FROM customers WHERE number = '+15551239990'"))
        assert seen.scalar_one() == 1
        await uow.rollback()
        assert not _database(store).connection().in_transaction
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551239991"))
        await uow.commit()
        # After the commit a statement begins a new transaction, rolled back on exit.
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551239992"))
    async with store.uow() as uow:
        assert await uow.customers.get("+15551239990") is None
        assert await uow.customers.get("+15551239991") is not None
        assert await uow.customers.get("+15551239992") is None
    # Another connection sees only what was committed.
    with sqlite3.connect(_database(store).path) as check:
        assert [row[0] for row in check.execute("SELECT number FROM customers")] == ["+15551239991"]


async def test_checkpoints_run_off_the_loop_and_close_truncates_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        checkpointer = _database(store).checkpointer
        assert checkpointer is not None
        for i in range(CHECKPOINT_AFTER_COMMITS + 50):
            async with store.uow() as uow:
                await _link(uow).execute(
                    text(
                        "INSERT INTO customers (number, tier, account_name, previous_escalations, "
                        "updated_at) VALUES (:n, 'standard', '', 0, '2026-11-23 09:00:00')"
                    ),
                    {"n": f"+1415{i:07d}"},
                )
                await uow.commit()
        async with asyncio.timeout(10):
            while checkpointer.checkpoints == 0:  # noqa: ASYNC110 - a counter on a thread
                await asyncio.sleep(0.05)
        assert _wal_size(path) > 0
    finally:
        await store.close()
    assert _wal_size(path) == 0
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM customers").fetchone()[0] == CHECKPOINT_AFTER_COMMITS + 50


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
async def test_checkpoint_thread_runs_at_low_cpu_priority_and_the_loop_at_its_own(store: Store) -> None:
    checkpointer = _database(store).checkpointer
    assert checkpointer is not None
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    checkpointer.note_commit()  # starts the thread
    async with asyncio.timeout(5):
        while checkpointer.native_id is None:  # noqa: ASYNC110 - set by the thread when it runs
            await asyncio.sleep(0.01)
    assert os.getpriority(os.PRIO_PROCESS, checkpointer.native_id) == CHECKPOINT_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice


async def _seed(store: Store) -> None:
    await add_agents(
        store,
        *(make_agent(f"agent-{i}", capacity=2, idle_since=NOW - timedelta(minutes=i)) for i in range(6)),
        make_agent("never-idle", capacity=2, idle_since=None, skills=frozenset({"api", "billing"})),
    )
    async with store.uow() as uow:
        await uow.customers.upsert(Customer(number="+15551230001", tier="gold", account_name="Acme"), NOW)
        await uow.commit()
    await enqueue(
        store, *(make_ticket(f"cb-{index}", service_key=key) for index, key in enumerate((2.5, 1.25, 7.0)))
    )


async def test_statements_read_the_values_their_types_say(store: Store) -> None:
    await _seed(store)
    decision = make_decision("d-1", "call-1")
    async with store.uow() as uow:
        await uow.decisions.add(decision)
        await uow.commit()
    async with store.uow() as uow:
        candidates = await uow.agents.candidates("technical", Complexity.ADVANCED, 4)
        never_idle = await uow.agents.get("never-idle")
        stored = await uow.decisions.get("call-1", "tool-1")
        waiting = await uow.callbacks.get("cb-1")
        (numbers,) = (await _link(uow).execute(_NUMERIC)).all()
    # SQLite sorts NULL first as well: the agent never idle leads.
    assert [a.agent_id for a in candidates] == ["never-idle", "agent-5", "agent-4", "agent-3"]
    assert candidates[1].idle_since == NOW - timedelta(minutes=5)  # stored as text, read as aware UTC
    assert candidates[1].idle_since is not None and candidates[1].idle_since.tzinfo is UTC
    assert all(a.updated_at == NOW and a.updated_at.tzinfo is UTC for a in candidates)
    assert never_idle is not None and never_idle.idle_since is None
    assert never_idle.skills == frozenset({"api", "billing"}) and never_idle.team_ids == (
        "technical",
    )  # JSON
    assert stored == decision  # the JSON body decoded back to the same decision
    assert waiting is not None and waiting.service_key == 1.25 and type(waiting.service_key) is float
    assert waiting.enqueued_at == NOW and waiting.enqueued_at.tzinfo is UTC
    assert tuple(numbers) == (1.5, 2.5, Decimal("3.25"))
    assert [type(value) for value in numbers] == [float, float, Decimal]
    assert _database(store).statements.holds(_CANDIDATES_SQLITE[Complexity.ADVANCED])


async def _run_rolled_back(store: Store, statement: Executable, params: dict[str, Any]) -> tuple[Any, ...]:
    async with store.uow() as uow:
        result = await _link(uow).execute(statement, params)
        rows = result.all()
        return (
            [tuple(row) for row in rows],
            [[type(value) for value in row] for row in rows],
            [list(row._fields) for row in rows],
            result.rowcount,
        )


async def test_every_kind_of_statement_reads_the_same_compiled_once_or_per_call(store: Store) -> None:
    await _seed(store)
    cases: list[tuple[Executable, dict[str, Any], int]] = [
        (_CANDIDATES_SQLITE[Complexity.BASIC], {"team_id": "technical", "limit": 10}, 7),
        (_GET, {"agent_id": "agent-2"}, 1),
        (_GET, {"agent_id": "never-idle"}, 1),
        (_GET, {"agent_id": "nobody"}, 0),
        (_GET_CUSTOMER, {"number": "+15551230001"}, 1),
        (_WAITING_HEAD, {"head_team": "technical", "head_limit": 5}, 3),
        (_AHEAD_OF, {"ahead_team": "technical", "ahead_key": 2.5}, 1),
        (_NUMERIC, {}, 1),
        (_TAKE_SLOT, _slot_params("agent-3", NOW, critical=False, load_version=None), 1),
        (_TAKE_SLOT, _slot_params("nobody", NOW, critical=False, load_version=None), 0),
        (insert_ignore(customers, postgres=False), _customer_row("+15551230001"), 0),  # conflict: 0 rows
        (insert_ignore(customers, postgres=False), _customer_row("+15551230002"), 1),
        (AGENTS_IN, {"min_capacity": 1, "ids": ["agent-1", "agent-4", "nobody"], "not_named": "x"}, 2),
    ]
    database = _database(store)
    for statement, params, rowcount in cases:
        assert id(statement) in SHARED_STATEMENTS, statement
        once = await _run_rolled_back(store, statement, params)
        again = await _run_rolled_back(store, statement, params)
        copy = statement.execution_options()  # not shared: compiled on each call
        per_call = await _run_rolled_back(store, copy, params)
        assert once == again == per_call, statement
        assert once[3] == rowcount, statement
        assert database.statements.holds(statement) and not database.statements.holds(copy)
    params = {"team_id": "technical", "limit": 3}
    compiled = database.statements.get(_CANDIDATES_SQLITE[Complexity.BASIC], params)
    assert compiled is database.statements.get(_CANDIDATES_SQLITE[Complexity.BASIC], dict(params))


async def test_expanding_in_lists_are_rendered_for_each_length(store: Store) -> None:
    await _seed(store)
    async with store.uow() as uow:
        link = _link(uow)

        async def ids(*wanted: str) -> list[str]:
            params = {"min_capacity": 2, "ids": list(wanted), "not_named": "Agent-2"}
            return [row.agent_id for row in await link.execute(AGENTS_IN, params)]

        assert await ids("agent-1") == ["agent-1"]
        assert await ids("agent-4", "agent-2", "agent-1", "nobody") == ["agent-1", "agent-4"]
        assert await ids() == []
        assert await ids("agent-3", "agent-0") == ["agent-0", "agent-3"]
        others = await uow.agents.others("technical", {"agent-0", "agent-5", "never-idle"}, 10)
        assert [a.agent_id for a in others] == ["agent-1", "agent-2", "agent-3", "agent-4"]
        assert [a.agent_id for a in await uow.agents.others("technical", {"agent-9"}, 2)] == [
            "agent-0",
            "agent-1",
        ]
    assert not _database(store).statements.holds(_OTHERS)


async def test_statement_failures_are_sqlite3_errors_and_keep_the_connection(store: Store) -> None:
    database = _database(store)
    connection = database.connection()
    async with store.uow() as uow:
        link = _link(uow)
        with pytest.raises(sqlite3.IntegrityError, match="CHECK") as check:
            await link.execute(INSERT_CUSTOMER, _customer_row("+15551230000", previous_escalations=-1))
        assert not is_unavailable(check.value)
        with pytest.raises(ValueError, match="naive datetime"):
            await link.execute(
                INSERT_CUSTOMER, _customer_row("+15551230000", updated_at=datetime(2026, 1, 1))
            )
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551230000"))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE") as duplicate:  # primary key
            await link.execute(INSERT_CUSTOMER, _customer_row("+15551230000"))
        assert not is_unavailable(duplicate.value)
    assert not database.lock.locked()
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230000") is None  # rolled back with the unit of work
    assert database.connection() is connection, "an integrity error does not discard the connection"
    # Through a repository, an integrity error passes through as sqlite3's (it is not `Unavailable`).
    with pytest.raises(sqlite3.IntegrityError):
        async with store.uow() as uow:
            await uow.agents.upsert(make_agent("alice", capacity=-1), NOW)
    assert not database.lock.locked()


def test_compiled_statements_use_qmark_parameters_for_sqlite3() -> None:
    """The SQL sqlite3 runs: `?` placeholders in the order of `names`, constants filled in, datetimes as the
    UTC text SQLite compares correctly."""
    compiled = CompiledStatement(_TAKE_SLOT, (), SqliteDatabase("sqlite:///:memory:").dialect)
    params = _slot_params("alice", NOW + timedelta(hours=1), critical=False, load_version=None)
    sql, values = compiled.bound(params)
    assert sql.count("?") == len(compiled.names) and "$" not in sql
    bound = dict(zip(compiled.names, values, strict=True))
    assert {k: bound[k] for k in ("active_assignments_1", "slot_at", "slot_agent", "status_1")} == {
        "active_assignments_1": 1,
        "slot_at": "2026-11-23 10:00:00.000000",
        "slot_agent": "alice",
        "status_1": "available",
    }


_ASYNCPG_DIALECT = asyncpg_dialect.dialect()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("dialect", [pysqlite.dialect(), _ASYNCPG_DIALECT], ids=["sqlite", "postgres"])
def test_an_expanding_parameter_converts_only_its_own_values(dialect: Any) -> None:
    """A list in an IN clause is converted by its column's type, item by item; another parameter is
    converted by its own type, whatever its name."""
    statement = select(customers.c.number).where(
        customers.c.updated_at.in_(bindparam("times", expanding=True)),
        customers.c.previous_escalations < bindparam("times_limit", type_=Integer()),
    )
    compiled = CompiledStatement(statement, (), dialect)
    later = NOW + timedelta(hours=1)
    sql, values = compiled.bound({"times": [NOW, later], "times_limit": 3})
    if dialect.name == "sqlite":
        assert values == ["2026-11-23 09:00:00.000000", "2026-11-23 10:00:00.000000", 3]
    else:  # `$n` in the order they appear: the IN list, then the limit
        assert [values[int(n) - 1] for n in re.findall(r"\$(\d+)", sql)] == [NOW, later, 3]
