"""SQLite units of work run inline on the event loop (`routing_service.store.sqlite_inline`): they serialise
among themselves, never block the loop while another process holds the write lock, give up with
`Unavailable` after the busy timeout, give the connection back when cancelled, and leave checkpoints to a
background thread. Hot statements run straight on sqlite3 and read and fail as through SQLAlchemy."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError, StatementError

from routing_service.domain.errors import Unavailable
from routing_service.domain.models import Complexity
from routing_service.store import Store
from routing_service.store.agents import _CANDIDATES_SQLITE, agent_from_row, candidates_statement
from routing_service.store.engine import inline_sqlite
from routing_service.store.hot import hot
from routing_service.store.sqlite_inline import CHECKPOINT_AFTER_COMMITS, CHECKPOINT_NICE, InlineSqliteLink
from routing_service.store.tables import customers
from routing_service.store.unit_of_work import SqlUnitOfWorkFactory
from tests.service.store_builders import NOW, add_agents, make_agent, opened_store

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with opened_store(f"sqlite+aiosqlite:///{tmp_path / 'inline.db'}") as opened:
        yield opened


def _holder(store: Store) -> sqlite3.Connection:
    """Another process's connection, as far as SQLite can tell: it takes the write lock."""
    path = store.engine.url.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
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


async def test_store_uses_the_inline_connection_for_a_file_and_not_for_memory(store: Store) -> None:
    assert store.inline is not None
    assert inline_sqlite("sqlite+aiosqlite:///:memory:") is None
    assert inline_sqlite("postgresql+asyncpg://u@127.0.0.1/db") is None


async def test_inline_connection_has_the_engine_pragmas_but_no_busy_timeout_or_autocheckpoint(
    store: Store,
) -> None:
    assert store.inline is not None
    connection = await store.inline.acquire()
    try:
        settings = {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar_one()
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "wal_autocheckpoint")
        }
    finally:
        store.inline.end(connection)
    # synchronous: 1 is NORMAL
    assert settings == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 0,
        "wal_autocheckpoint": 0,
    }


async def test_loop_keeps_running_and_unit_of_work_waits_when_another_process_holds_the_lock(
    store: Store,
) -> None:
    await add_agents(store, make_agent("alice"))
    holder = _holder(store)

    async def set_busy() -> None:
        async with store.uow() as uow:
            await uow.agents.set_status("alice", make_agent("alice").status.BUSY, NOW)
            await uow.commit()

    work = asyncio.create_task(set_busy())
    try:
        await asyncio.sleep(0.2)
        assert not work.done()
        ticker = asyncio.create_task(_ticks_while(work))
        await asyncio.sleep(0.2)
        # A loop blocked in the busy handler would not have ticked at all.
        assert not ticker.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    await asyncio.wait_for(work, 5)
    assert await ticker > 10
    async with store.uow() as uow:
        alice = await uow.agents.get("alice")
    assert alice is not None and alice.status.value == "busy"


async def test_unit_of_work_is_unavailable_after_the_busy_timeout(store: Store) -> None:
    inline = inline_sqlite(store.url, busy_timeout_ms=150)
    assert inline is not None
    factory = SqlUnitOfWorkFactory(store.engine, inline)
    holder = _holder(store)
    try:
        with pytest.raises(Unavailable, match="locked"):
            async with factory() as uow:
                await uow.customers.get("+15550100100")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        inline.close()
    # The connection and its lock were given back: the next unit of work runs.
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


async def test_cancelled_unit_of_work_gives_the_connection_back(store: Store) -> None:
    holder = _holder(store)

    async def blocked() -> None:
        async with store.uow() as uow:
            await uow.customers.get("+15550100100")

    work = asyncio.create_task(blocked())
    await asyncio.sleep(0.05)
    work.cancel()
    with pytest.raises(asyncio.CancelledError):
        await work
    holder.execute("ROLLBACK")
    holder.close()
    async with asyncio.timeout(5), store.uow() as uow:
        assert await uow.customers.get("+15550100100") is None


async def test_checkpoints_run_off_the_loop_and_close_truncates_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    store = await Store.open(f"sqlite+aiosqlite:///{path}")
    try:
        assert store.inline is not None
        for i in range(CHECKPOINT_AFTER_COMMITS + 50):
            async with store.uow() as uow:
                link = uow._session
                assert link is not None
                await link.execute(
                    text(
                        "INSERT INTO customers (number, tier, account_name, previous_escalations, "
                        "updated_at) VALUES (:n, 'standard', '', 0, '2026-11-23 09:00:00')"
                    ),
                    {"n": f"+1415{i:07d}"},
                )
                await uow.commit()
        async with asyncio.timeout(10):
            while store.inline.checkpointer.checkpoints == 0:  # noqa: ASYNC110 - a counter on a thread
                await asyncio.sleep(0.05)
        assert _wal_size(path) > 0
    finally:
        await store.close()
    assert _wal_size(path) == 0
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT count(*) FROM customers").fetchone()[0] == CHECKPOINT_AFTER_COMMITS + 50


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
async def test_checkpoint_thread_runs_at_low_cpu_priority_and_the_loop_at_its_own(store: Store) -> None:
    assert store.inline is not None
    checkpointer = store.inline.checkpointer
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    checkpointer.note_commit()  # starts the thread
    async with asyncio.timeout(5):
        while checkpointer.native_id is None:  # noqa: ASYNC110 - set by the thread when it runs
            await asyncio.sleep(0.01)
    assert os.getpriority(os.PRIO_PROCESS, checkpointer.native_id) == CHECKPOINT_NICE
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice


async def test_hot_statements_run_on_sqlite3_and_read_what_sqlalchemy_reads(store: Store) -> None:
    await add_agents(
        store,
        *(make_agent(f"agent-{i}", capacity=2, idle_since=NOW - timedelta(minutes=i)) for i in range(6)),
    )
    statement = candidates_statement(postgres=False, min_complexity=Complexity.ADVANCED)
    params = {"team_id": "technical", "min_complexity": int(Complexity.ADVANCED), "limit": 4}
    assert store.inline is not None
    async with store.uow() as uow:
        fast = await uow.agents.candidates("technical", Complexity.ADVANCED, 4)
        link = uow._session
        assert isinstance(link, InlineSqliteLink)
        # The same statement, not marked hot, goes through SQLAlchemy's own execution.
        slow = [agent_from_row(row) for row in await link.execute(statement, params)]
    assert [a.agent_id for a in fast] == ["agent-5", "agent-4", "agent-3", "agent-2"]
    assert fast == slow
    assert store.inline.compiled.holds(_CANDIDATES_SQLITE[Complexity.ADVANCED])


async def test_hot_statement_failures_are_sqlalchemy_errors(store: Store) -> None:
    statement = hot(insert(customers))
    row = {
        "number": "+15551230000",
        "tier": "standard",
        "account_name": "",
        "previous_escalations": -1,  # violates the CHECK constraint
        "last_agent_id": None,
        "updated_at": NOW,
    }
    async with store.uow() as uow:
        link = uow._session
        assert link is not None
        with pytest.raises(IntegrityError):
            await link.execute(statement, row)
        with pytest.raises(StatementError, match="naive datetime"):
            await link.execute(
                statement, {**row, "previous_escalations": 0, "updated_at": datetime(2026, 1, 1)}
            )
