"""Tracing wraps the store's one path per database; it never selects another one.

A ResolveEscalation is run twice through the real stub, on SQLite and on PostgreSQL, each time on a fresh
database: once untraced, once with an in-memory span exporter. Every statement the store runs is recorded
with the path it took: the hot-statement fast path (`PgHot.execute` straight on asyncpg, `InlineSqlite`
straight on sqlite3) or SQLAlchemy's execution (its `before_cursor_execute` event). Traced, the store runs
the same statements on the same paths, and each of them has its `db.query` span, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.tracing import StatementSpans, configure_tracing, reset_tracing, statement_spans
from routing_service.grpc.server import RoutingServer
from routing_service.store.hot import CompiledStatement, FastResult
from routing_service.store.pg_hot import PgHot
from routing_service.store.sqlite_inline import InlineSqlite
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from tests.service.grpc_helpers import add_agent, add_customer, resolve, routing_settings

PREMIUM = "+1111111111"
Executed = list[tuple[str, str]]
"""(path, SQL text) per statement, in the order they ran: path "fast" or "sqlalchemy"."""


class StatementLog:
    """Records every statement the store runs and the path it took, while `recording` is True."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.executed: Executed = []
        self.recording = False
        self.spans_started = 0
        pg_execute, inline_execute, start = PgHot.execute, InlineSqlite.execute, StatementSpans.start
        log = self

        async def pg_fast(
            runner: PgHot, connection: AsyncConnection, compiled: CompiledStatement, params: Any
        ) -> FastResult | None:
            result = await pg_execute(runner, connection, compiled, params)
            if result is not None and log.recording:
                log.executed.append(("fast", compiled.sql))
            return result

        def inline(
            runner: InlineSqlite, connection: sa.Connection, statement: Executable, params: Any
        ) -> Any:
            compiled = runner.compiled.get(statement, params)
            result = inline_execute(runner, connection, statement, params)
            if isinstance(result, FastResult) and compiled is not None and log.recording:
                log.executed.append(("fast", compiled.sql))
            return result

        def counted_start(spans: StatementSpans, system: str, statement: str) -> Any:
            log.spans_started += 1
            return start(spans, system, statement)

        monkeypatch.setattr(PgHot, "execute", pg_fast)
        monkeypatch.setattr(InlineSqlite, "execute", inline)
        monkeypatch.setattr(StatementSpans, "start", counted_start)

    def via_sqlalchemy(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.recording:
            self.executed.append(("sqlalchemy", statement))

    @asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", self.via_sqlalchemy)
        try:
            yield
        finally:
            sa.event.remove(sa.engine.Engine, "before_cursor_execute", self.via_sqlalchemy)


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
) -> tuple[pb.Decision, Executed, list[ReadableSpan]]:
    """One premium technical call resolved on a fresh routing server: the decision, the statements the
    ResolveEscalation ran and the `db.query` spans finished meanwhile (the setup's are not recorded)."""
    server = RoutingServer(routing_settings(database_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await add_customer(stub, PREMIUM, "premium", "Premium Support")
        await add_agent(stub, "ann", number="+15550100201")
        async with log.listening():
            if exporter is not None:
                exporter.clear()
            log.executed, log.recording = [], True
            decision = await resolve(stub, "call-a", caller=PREMIUM)
            log.recording = False
        finished = exporter.get_finished_spans() if exporter is not None else ()
        spans = sorted(
            (s for s in finished if s.name.startswith("db.query")), key=lambda s: s.start_time or 0
        )
        return decision, log.executed, spans
    finally:
        await channel.close()
        await server.stop(0.5)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_traced_resolve_runs_the_same_statements_on_the_same_paths_each_with_a_span(
    backend: str, tmp_path: Path, statement_log: StatementLog
) -> None:
    system = "sqlite" if backend == "sqlite" else "postgresql"
    async with fresh_database(backend, tmp_path, "untraced") as url:
        untraced_decision, untraced, _ = await resolve_once(url, statement_log)
    assert not statement_spans.enabled
    assert statement_log.spans_started == 0, "untraced, no statement span is even started"
    fast = [sql for path, sql in untraced if path == "fast"]
    assert len(fast) >= 3, f"the decision's hot statements take the fast path untraced: {untraced}"

    exporter = InMemorySpanExporter()
    configure_tracing("escalade-test", span_exporter=exporter)
    try:
        async with fresh_database(backend, tmp_path, "traced") as url:
            traced_decision, traced, spans = await resolve_once(url, statement_log, exporter)
    finally:
        reset_tracing()

    assert traced_decision.kind == untraced_decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert traced == untraced, "tracing changes neither the statements nor the path they take"
    # One span per statement the resolve ran, in order, on whichever path it took.
    assert [dict(s.attributes or {}).get("db.statement") for s in spans] == [sql[:500] for _, sql in traced]
    assert {dict(s.attributes or {}).get("db.system") for s in spans} == {system}
    assert [s.name for s in spans] == ["db.query " + sql.split(None, 1)[0].upper() for _, sql in traced]
