"""SQLite units of work run inline on the event loop (`routing_service.store.sqlite_inline`): they serialise
among themselves, never block the loop while another process holds the write lock, give up with
`Unavailable` after the busy timeout, give the connection back when cancelled, and leave checkpoints to a
background thread."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from store_builders import NOW, add_agents, make_agent, opened_store

from routing_service.domain.errors import Unavailable
from routing_service.store import Store
from routing_service.store.engine import inline_sqlite
from routing_service.store.sqlite_inline import CHECKPOINT_AFTER_COMMITS
from routing_service.store.unit_of_work import SqlUnitOfWorkFactory

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
