"""Migrations and availability on SQLite and PostgreSQL: the packaged Alembic migration builds exactly the
schema of tables.py, upgrading twice is a no-op, and an unreachable or locked database is `Unavailable`."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine as create_engine

from routing_service.domain.errors import Unavailable
from routing_service.domain.lifecycle import AssignmentStage
from routing_service.domain.models import Complexity
from routing_service.store import DEFAULT_DATABASE_URL, SqlUnitOfWorkFactory, Store
from routing_service.store.__main__ import main as store_command
from routing_service.store.migrate import current_revision, head_revision, include_object_for, upgrade
from routing_service.store.postgres import PostgresDatabase
from routing_service.store.sqlite import SqliteDatabase
from routing_service.store.tables import VERSION_TABLE, metadata
from tests.service.store_builders import NOW, make_agent

UNREACHABLE_PG = "postgresql+asyncpg://postgres@127.0.0.1:1/x"


def _diff(connection: Connection, target: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "version_table": VERSION_TABLE,
            "include_object": include_object_for(connection.dialect.name),
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, target))


async def test_migration_matches_tables_when_upgraded_from_empty(database_url: str) -> None:
    assert await current_revision(database_url) is None
    await upgrade(database_url)
    assert await current_revision(database_url) == head_revision()
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff, metadata) == []
            # the comparison does see differences: drop an index (rolled back) and it is reported missing
            await connection.execute(text("DROP INDEX ix_callbacks_team_id_state_service_key"))
            diffs = await connection.run_sync(_diff, metadata)
            assert [(d[0], d[1].name) for d in diffs] == [
                ("add_index", "ix_callbacks_team_id_state_service_key")
            ]
            await connection.rollback()
            names = await connection.run_sync(lambda c: inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert VERSION_TABLE in names


async def test_upgrade_is_noop_when_run_twice(database_url: str) -> None:
    await upgrade(database_url)
    async with await Store.open(database_url) as store, store.uow() as uow:
        await uow.agents.upsert(make_agent("alice"), NOW)
        await uow.commit()
    await upgrade(database_url)
    async with await Store.open(database_url) as store, store.uow() as uow:
        assert await uow.agents.get("alice") is not None
    assert await current_revision(database_url) == head_revision()


async def test_sqlite_pragmas_are_set_when_the_store_connects(sqlite_url: str) -> None:
    async with await Store.open(sqlite_url) as store:
        assert isinstance(store.database, SqliteDatabase)
        connection = store.database.connection()
        journal, foreign_keys, synchronous, busy, checkpoint = (
            connection.execute(f"PRAGMA {name}").fetchone()[0]
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout", "wal_autocheckpoint")
        )
    # Busy timeout 0 and no automatic checkpoint: the store retries BEGIN IMMEDIATE on the loop and its
    # checkpointer thread checkpoints.
    assert (journal, foreign_keys, synchronous, busy, checkpoint) == ("wal", 1, 1, 0, 0)


async def test_default_url_creates_parent_directory_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with await Store.open(DEFAULT_DATABASE_URL) as store, store.uow() as uow:
        assert await uow.agents.get("x") is None
    assert (tmp_path / ".escalade" / "escalade.db").exists()


async def test_open_raises_unavailable_when_postgres_unreachable() -> None:
    with pytest.raises(Unavailable):
        await Store.open(UNREACHABLE_PG)
    with pytest.raises(Unavailable):
        await upgrade(UNREACHABLE_PG)


async def test_unit_of_work_raises_unavailable_when_postgres_unreachable() -> None:
    # A pool that connects lazily: the server goes away after the store opened.
    pool = await asyncpg.create_pool(host="127.0.0.1", port=1, user="postgres", database="x", min_size=0)
    database = PostgresDatabase(pool, UNREACHABLE_PG)
    try:
        with pytest.raises(Unavailable):
            async with SqlUnitOfWorkFactory(database)() as uow:
                await uow.agents.get("alice")
    finally:
        await database.close()


async def test_write_raises_unavailable_when_sqlite_locked_past_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    database = SqliteDatabase(url, busy_timeout_ms=200)
    try:
        with pytest.raises(Unavailable, match="locked"):
            async with SqlUnitOfWorkFactory(database)() as uow:
                await uow.agents.upsert(make_agent("alice"), NOW)
                await uow.commit()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        await database.close()
    async with await Store.open(url) as store:
        async with store.uow() as uow:
            await uow.agents.upsert(make_agent("alice"), NOW)
            await uow.commit()
        async with store.uow() as uow:
            assert await uow.agents.get("alice") is not None


async def test_0002_backfills_agent_team_ids_when_upgrading_existing_data(database_url: str) -> None:
    await upgrade(database_url, "0001_initial")
    assert await current_revision(database_url) == "0001_initial"
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO agents (agent_id, display_name, dest_number, skills, max_complexity,"
                    " capacity, status, active_assignments, updated_at)"
                    " VALUES ('alice', 'Alice', '+15550100201', '[]', 4, 1, 'available', 0, :now),"
                    " ('loner', 'Loner', '+15550100202', '[]', 4, 1, 'available', 0, :now)"
                ),
                {"now": NOW.replace(tzinfo=None) if connection.dialect.name == "sqlite" else NOW},
            )
            await connection.execute(
                text(
                    "INSERT INTO agent_teams (agent_id, team_id, position) VALUES"
                    " ('alice', 'technical', 1), ('alice', 'enterprise', 0)"
                )
            )
    finally:
        await engine.dispose()
    await upgrade(database_url)
    assert await current_revision(database_url) == head_revision()
    async with await Store.open(database_url) as store, store.uow() as uow:
        alice = await uow.agents.get("alice")
        loner = await uow.agents.get("loner")
        members = await uow.agents.candidates("enterprise", Complexity.BASIC, 10)
    assert alice is not None and alice.team_ids == ("enterprise", "technical")
    assert loner is not None and loner.team_ids == ()
    assert [a.agent_id for a in members] == ["alice"]


async def test_in_memory_sqlite_store_works_when_url_has_no_file() -> None:
    async with await Store.open("sqlite+aiosqlite:///:memory:") as store:
        async with store.uow() as uow:
            await uow.agents.upsert(make_agent("alice"), NOW)
            await uow.commit()
        async with store.uow() as uow:
            assert await uow.agents.get("alice") is not None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_store_recovers_when_postgres_connections_were_killed(database_url: str) -> None:
    async with await Store.open(database_url) as store:
        async with store.uow() as uow:
            await uow.agents.upsert(make_agent("alice"), NOW)
            await uow.commit()
        admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert killed >= 1
        async with store.uow() as uow:
            assert await uow.agents.get("alice") is not None


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_statement_raises_unavailable_when_connection_dies_mid_transaction(database_url: str) -> None:
    async with await Store.open(database_url) as store:
        with pytest.raises(Unavailable):
            async with store.uow() as uow:
                await uow.agents.upsert(make_agent("alice"), NOW)
                admin = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
                try:
                    await admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                finally:
                    await admin.close()
                await uow.agents.get("alice")
        async with store.uow() as uow:
            assert await uow.agents.get("alice") is None, "the broken transaction was not committed"


def test_module_command_upgrades_and_reports_when_run_by_hand(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert store_command(["current", sqlite_url]) == 0
    assert store_command(["upgrade", sqlite_url]) == 0
    assert store_command(["bogus"]) == 2
    assert store_command(["upgrade", UNREACHABLE_PG]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["(empty database)", str(head_revision())]
    assert "usage" in err and "unavailable" in err


async def test_0010_respells_assignments_in_wrap_up_when_upgrading_existing_data(database_url: str) -> None:
    await upgrade(database_url, "0009_worker_dials_and_reviews")
    async with await Store.open(database_url, migrate=False) as store, store.uow() as uow:
        await uow.agents.upsert(make_agent("alice"), NOW)
        await uow.commit()
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            now = NOW.replace(tzinfo=None) if connection.dialect.name == "sqlite" else NOW
            await connection.execute(
                text(
                    "INSERT INTO assignments (assignment_id, call_id, purpose, agent_id, state, reserved_at,"
                    " expires_at, release_reason, stage, completed_at)"
                    " VALUES (41, 'call-1', 'transfer', 'alice', 'active', :now, :now, '', 'wrap_up', :now)"
                ),
                {"now": now},
            )
    finally:
        await engine.dispose()
    await upgrade(database_url)
    async with await Store.open(database_url) as store, store.uow() as uow:
        held = await uow.assignments.live_for_agents(["alice"])
    assert [(a.call_id, a.stage) for a in held] == [("call-1", AssignmentStage.WRAP_UP)]
    assert AssignmentStage.WRAP_UP.value == "wrap-up"
