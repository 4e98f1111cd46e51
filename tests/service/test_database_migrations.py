"""The database's one migration history (`escalade_platform.migrations`) on SQLite and PostgreSQL: it builds
every service's tables exactly as they are declared, the services apply it when they start instead of
creating tables themselves, concurrent starts migrate one after the other, and a database whose edge and
worker tables were made by earlier versions (SQLAlchemy's `create_all`) upgrades in place, rows kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from escalade_platform.migrations import (
    VERSION_TABLE,
    current_revision,
    head_revision,
    include_object_for,
    upgrade,
)
from escalade_platform.migrations.__main__ import main as migrations_command
from routing_service.store import Store
from routing_service.store.tables import metadata as routing_metadata
from webhook_edge.outbox import Outbox, outbox_table
from webhook_edge.outbox import metadata as outbox_metadata
from workflows.inputs import QueueCallbackInput, ReviewState, Verdict
from workflows.ledger import DialLedger, DialState, dial_ledger_table, ledger_metadata
from workflows.payloads import ReviewRecord
from workflows.review_store import ReviewStore, review_table
from workflows.worker import open_engine

LAST_ROUTING_ONLY = "0007_callback_first_message"
"""The newest revision before the edge's and the worker's tables joined the history."""
SERVICES = {"routing": routing_metadata, "edge": outbox_metadata, "worker": ledger_metadata}
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
UNREACHABLE_PG = "postgresql+asyncpg://postgres@127.0.0.1:1/x"
CALLBACK = QueueCallbackInput(
    call_id="c1", customer_number="+14155550123", masked_number="+1******0123", team_id="billing"
)


def _differences(connection: Connection) -> dict[str, list[Any]]:
    """What Alembic's comparison finds between the database and each service's table definitions."""
    found = {}
    for service, metadata in SERVICES.items():
        context = MigrationContext.configure(
            connection,
            opts={
                "version_table": VERSION_TABLE,
                "include_object": include_object_for(connection.dialect.name, metadata.tables.keys()),
                "compare_type": True,
            },
        )
        found[service] = list(compare_metadata(context, metadata))
    return found


async def differences(url: str) -> dict[str, list[Any]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


async def table_names(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


NO_DIFFERENCES: dict[str, list[Any]] = {service: [] for service in SERVICES}


async def test_upgrade_builds_every_services_tables_as_declared(database_url: str) -> None:
    assert await current_revision(database_url) is None

    await upgrade(database_url)

    assert await current_revision(database_url) == head_revision()
    assert await differences(database_url) == NO_DIFFERENCES
    assert {
        "edge_outbox",
        "workflow_callback_dials",
        "workflow_escalation_reviews",
        "agents",
    } <= await table_names(database_url)


async def test_comparison_sees_a_table_that_differs_from_its_declaration(database_url: str) -> None:
    await upgrade(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text("DROP INDEX ix_edge_outbox_pending"))
    finally:
        await engine.dispose()

    found = await differences(database_url)

    assert [(d[0], d[1].name) for d in found["edge"]] == [("add_index", "ix_edge_outbox_pending")]


@pytest.fixture
def no_create_all(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`MetaData.create_all` fails: whatever still creates tables that way is found out."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tables are created by the migrations, never by create_all")

    monkeypatch.setattr(sa.MetaData, "create_all", refuse)
    yield


@pytest.mark.parametrize("service", ["edge", "worker", "routing"])
@pytest.mark.usefixtures("no_create_all")
async def test_each_service_migrates_a_fresh_database_when_it_starts(database_url: str, service: str) -> None:
    if service == "edge":
        outbox = await Outbox.open(database_url)
        assert await outbox.record(CALLBACK)
        await outbox.close()
    elif service == "worker":
        engine = await open_engine(database_url)
        assert (await DialLedger(engine).claim("callback-c1-attempt-1", "c1"))[1]
        await engine.dispose()
    else:
        async with await Store.open(database_url) as store, store.uow() as uow:
            assert await uow.agents.get("ann") is None

    assert await current_revision(database_url) == head_revision()
    assert await differences(database_url) == NO_DIFFERENCES


async def test_services_starting_together_migrate_one_after_the_other(database_url: str) -> None:
    async def edge() -> None:
        outbox = await Outbox.open(database_url)
        await outbox.close()

    async def worker() -> None:
        engine = await open_engine(database_url)
        await engine.dispose()

    async def routing() -> None:
        store = await Store.open(database_url)
        await store.close()

    await asyncio.gather(edge(), worker(), routing(), upgrade(database_url), edge())

    assert await current_revision(database_url) == head_revision()
    assert await differences(database_url) == NO_DIFFERENCES


async def test_services_of_one_process_migrate_different_databases_at_the_same_time(
    database_url: str, tmp_path: Path
) -> None:
    """Alembic's `context` and `op` are module globals that each migration installs and removes: two
    migrations of one process interleaving on different databases (which no database lock serialises)
    used to fail with `KeyError: 'config'`. Routing (a file or server, and a private in-memory one), the
    edge and the worker, each on its own database, all at once."""
    edge_url, worker_url, other_url = (
        f"sqlite+aiosqlite:///{tmp_path / name}" for name in ("edge.db", "worker.db", "other.db")
    )

    async def edge() -> None:
        outbox = await Outbox.open(edge_url)
        await outbox.close()

    async def worker() -> None:
        engine = await open_engine(worker_url)
        await engine.dispose()

    async def routing(url: str) -> None:
        store = await Store.open(url)
        await store.close()

    await asyncio.gather(
        routing(database_url), edge(), worker(), routing("sqlite+aiosqlite://"), upgrade(other_url)
    )

    for url in (database_url, edge_url, worker_url, other_url):
        assert await current_revision(url) == head_revision(), url
        assert await differences(url) == NO_DIFFERENCES, url


async def _database_of_an_earlier_version(url: str) -> None:
    """What earlier versions left: the routing store migrated to 0007, and the edge's and the worker's
    tables made with `create_all` (from the same declarations), each with a row."""
    await upgrade(url, LAST_ROUTING_ONLY)
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(outbox_metadata.create_all)
            await connection.run_sync(ledger_metadata.create_all)
            await connection.execute(
                outbox_table.insert().values(
                    kind="review",
                    workflow_id="review-old",
                    payload={"call_id": "old"},
                    created_at=NOW,
                    attempts=2,
                    next_attempt_at=NOW,
                )
            )
            await connection.execute(
                dial_ledger_table.insert().values(
                    attempt_key="callback-old-attempt-1",
                    call_id="old",
                    state="dialled",
                    vapi_call_id="vapi-1",
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
            await connection.execute(
                review_table.insert().values(
                    call_id="old",
                    state="awaiting-review",
                    findings="[]",
                    team_id="",
                    agent_id="",
                    verdict="",
                    note="",
                    updated_at=NOW,
                )
            )
    finally:
        await engine.dispose()


async def test_database_of_an_earlier_version_upgrades_in_place_with_its_rows(database_url: str) -> None:
    await _database_of_an_earlier_version(database_url)
    assert await current_revision(database_url) == LAST_ROUTING_ONLY

    await upgrade(database_url)

    assert await current_revision(database_url) == head_revision()
    assert await differences(database_url) == NO_DIFFERENCES
    outbox = await Outbox.open(database_url)
    try:
        kept = await outbox.get("review-old")
        assert kept is not None and (kept.payload, kept.attempts) == ({"call_id": "old"}, 2)
    finally:
        await outbox.close()
    engine = await open_engine(database_url)
    try:
        dial = await DialLedger(engine).get("callback-old-attempt-1")
        assert dial is not None and (dial.state, dial.vapi_call_id) == (DialState.DIALLED, "vapi-1")
        reviews = ReviewStore(engine)
        assert await reviews.get("old") == ReviewRecord(call_id="old", state=ReviewState.AWAITING_REVIEW)
        done = ReviewRecord(call_id="new", state=ReviewState.COMPLETED, verdict=Verdict.CONFIRMED)
        await reviews.save(done)
        assert await reviews.get("new") == done
    finally:
        await engine.dispose()


async def test_database_where_only_an_earlier_edge_ran_upgrades_from_nothing(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(outbox_metadata.create_all)
    finally:
        await engine.dispose()
    assert await current_revision(database_url) is None

    await upgrade(database_url)

    assert await current_revision(database_url) == head_revision()
    assert await differences(database_url) == NO_DIFFERENCES


async def test_edge_and_worker_start_on_a_database_a_newer_version_migrated(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await upgrade(database_url)
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0042_from_the_future'")
            )
    finally:
        await engine.dispose()

    outbox = await Outbox.open(database_url)
    assert await outbox.record(CALLBACK)
    await outbox.close()
    worker_engine = await open_engine(database_url)
    await worker_engine.dispose()

    assert await current_revision(database_url) == "0042_from_the_future"
    assert "0042_from_the_future" in caplog.text and "leaving it as it is" in caplog.text
    # the command and the routing store do not pass over it: an operator must know
    with pytest.raises(CommandError, match="0042_from_the_future"):
        await upgrade(database_url)
    with pytest.raises(CommandError, match="0042_from_the_future"):
        await Store.open(database_url)


async def test_upgrade_raises_the_drivers_error_when_postgres_is_unreachable() -> None:
    with pytest.raises(OSError, match="Connect call failed"):
        await upgrade(UNREACHABLE_PG)


def test_command_upgrades_and_reports_every_services_tables(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert migrations_command(["current", sqlite_url]) == 0
    assert migrations_command(["upgrade", sqlite_url]) == 0
    assert migrations_command(["current", sqlite_url]) == 0
    assert migrations_command(["sideways", sqlite_url]) == 2
    assert migrations_command(["upgrade", UNREACHABLE_PG]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == ["(empty database)", str(head_revision()), str(head_revision())]
    assert "usage" in err and "the database is unavailable" in err
    assert {"edge_outbox", "workflow_callback_dials", "callbacks"} <= asyncio.run(table_names(sqlite_url))
