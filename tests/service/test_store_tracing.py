"""Tracing wraps the store's one path per database; it changes neither which statements run nor how.

A ResolveEscalation is run twice through the real stub, on SQLite and on PostgreSQL, each time on a fresh
database: once untraced, once with an in-memory span exporter. Every statement the store runs on its driver
path (`PostgresLink.execute` on asyncpg, `SqliteDatabase.execute` on sqlite3) is recorded with its SQL.
Traced, the store runs the same statements, in the same order, and each of them has exactly one `db.query`
span (`db.system`, `db.statement`), in the resolve's trace; untraced, no statement span is even started. A
statement that fails has its one span too, marked with the driver's error.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import insert
from sqlalchemy.sql import Executable

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.tracing import StatementSpans, configure_tracing, reset_tracing, statement_spans
from routing_service.grpc.server import RoutingServer
from routing_service.store import Store
from routing_service.store.postgres import PostgresLink, lock_sql
from routing_service.store.sqlite import SqliteDatabase
from routing_service.store.statements import Result, shared
from routing_service.store.tables import customers
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.service.grpc_helpers import add_agent, add_customer, resolve, routing_settings
from tests.service.store_builders import NOW

PREMIUM = "+1111111111"
_INSERT_CUSTOMER = shared(insert(customers))


class StatementLog:
    """Records the SQL of every statement the store runs on its driver path while `recording` is True,
    and counts the statement spans started meanwhile."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.executed: list[str] = []
        self.recording = False
        self.spans_started = 0
        pg_execute, sqlite_execute, start = PostgresLink.execute, SqliteDatabase.execute, StatementSpans.start
        pg_lock = PostgresLink.lock
        log = self

        async def on_postgres(
            link: PostgresLink, statement: Executable, params: Mapping[str, Any] | None = None
        ) -> Result:
            if log.recording:
                compiled = link._database.statements.get(statement, params)
                log.executed.append(compiled.bound(params or {})[0])
            return await pg_execute(link, statement, params)

        async def on_postgres_lock(link: PostgresLink, key: str) -> None:
            if log.recording and not link._in_transaction:
                log.executed.append(lock_sql(key))  # rides with the BEGIN, with its own span
            await pg_lock(link, key)

        def on_sqlite(
            database: SqliteDatabase, connection: Any, statement: Executable, params: Mapping[str, Any] | None
        ) -> Result:
            if log.recording:
                log.executed.append(database.statements.get(statement, params).bound(params or {})[0])
            return sqlite_execute(database, connection, statement, params)

        def counted_start(spans: StatementSpans, system: str, statement: str) -> Any:
            if log.recording:
                log.spans_started += 1
            return start(spans, system, statement)

        monkeypatch.setattr(PostgresLink, "execute", on_postgres)
        monkeypatch.setattr(PostgresLink, "lock", on_postgres_lock)
        monkeypatch.setattr(SqliteDatabase, "execute", on_sqlite)
        monkeypatch.setattr(StatementSpans, "start", counted_start)


@pytest.fixture
def statement_log(monkeypatch: pytest.MonkeyPatch) -> StatementLog:
    return StatementLog(monkeypatch)


@asynccontextmanager
async def fresh_database(backend: str, tmp_path: Path, name: str) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / name}.db"
        return
    database = await create_pg_database()
    try:
        yield pg_url(database)
    finally:
        await drop_pg_database(database)


async def resolve_once(
    database_url: str, log: StatementLog, exporter: InMemorySpanExporter | None = None
) -> tuple[pb.Decision, list[str], list[ReadableSpan]]:
    """One premium technical call resolved on a fresh routing server: the decision, the SQL of the
    statements the ResolveEscalation ran and the spans finished meanwhile (the setup's are not recorded)."""
    server = RoutingServer(routing_settings(database_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await add_customer(stub, PREMIUM, "premium", "Premium Support")
        await add_agent(stub, "ann", number="+15550100201")
        if exporter is not None:
            exporter.clear()
        log.executed, log.spans_started, log.recording = [], 0, True
        try:
            decision = await resolve(stub, "call-a", caller=PREMIUM)
        finally:
            log.recording = False
        spans = list(exporter.get_finished_spans()) if exporter is not None else []
        return decision, log.executed, spans
    finally:
        await channel.close()
        await server.stop(0.5)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_traced_resolve_runs_the_same_statements_each_with_one_span(
    backend: str, tmp_path: Path, statement_log: StatementLog
) -> None:
    system = "sqlite" if backend == "sqlite" else "postgresql"
    async with fresh_database(backend, tmp_path, "untraced") as url:
        untraced_decision, untraced, _ = await resolve_once(url, statement_log)
    assert not statement_spans.enabled
    assert statement_log.spans_started == 0, "untraced, no statement span is even started"
    assert len(untraced) >= 3, f"a decision reads and writes on the store's path: {untraced}"

    exporter = InMemorySpanExporter()
    configure_tracing("escalade-test", span_exporter=exporter)
    try:
        assert statement_spans.enabled
        async with fresh_database(backend, tmp_path, "traced") as url:
            traced_decision, traced, finished = await resolve_once(url, statement_log, exporter)
    finally:
        reset_tracing()
    assert not statement_spans.enabled

    assert traced_decision.kind == untraced_decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert traced == untraced, "tracing changes neither the statements nor their order"
    # Exactly one span per statement the resolve ran, in order.
    assert statement_log.spans_started == len(traced)
    spans = sorted((s for s in finished if s.name.startswith("db.query")), key=lambda s: s.start_time or 0)
    assert [dict(s.attributes or {}).get("db.statement") for s in spans] == [sql[:500] for sql in traced]
    assert {dict(s.attributes or {}).get("db.system") for s in spans} == {system}
    assert [s.name for s in spans] == ["db.query " + sql.split(None, 1)[0].upper() for sql in traced]
    assert all(s.kind is SpanKind.CLIENT and s.status.is_ok for s in spans)
    # They belong to the RPC's trace: the statements ran inside the server's ResolveEscalation span.
    (rpc,) = [s for s in finished if s.kind is SpanKind.SERVER and "ResolveEscalation" in s.name]
    assert rpc.context is not None
    assert {s.context.trace_id for s in spans if s.context is not None} == {rpc.context.trace_id}


async def test_a_failing_statement_has_one_span_marked_with_the_drivers_error(store: Store) -> None:
    duplicate_error = (
        sqlite3.IntegrityError if store.dialect_name == "sqlite" else asyncpg.UniqueViolationError
    )
    row = {
        "number": "+15551230000",
        "tier": "standard",
        "account_name": "",
        "previous_escalations": 0,
        "last_agent_id": None,
        "updated_at": NOW,
    }
    exporter = InMemorySpanExporter()
    configure_tracing("escalade-test", span_exporter=exporter)
    try:
        async with store.uow() as uow:
            link = uow._session
            assert link is not None
            await link.execute(_INSERT_CUSTOMER, row)
            with pytest.raises(duplicate_error):
                await link.execute(_INSERT_CUSTOMER, row)
    finally:
        reset_tracing()
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("db.query")]
    assert [s.name for s in spans] == ["db.query INSERT", "db.query INSERT"]
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.ERROR]
    assert spans[1].status.description == duplicate_error.__name__
    assert {dict(s.attributes or {}).get("db.system") for s in spans} == {store.dialect_name}
