"""OpenTelemetry tracing for every Escalade process: `configure_tracing(service, exporter, endpoint)`.

    exporter "none"     nothing is instrumented (the default: zero cost)
             "console"  spans printed to stdout as JSON
             "otlp"     spans sent over OTLP/gRPC to `endpoint` (default http://127.0.0.1:4317)

What gets spans once configured (all in-process, nothing downloaded at run time):
- every `grpc.aio` client channel and server created afterwards (opentelemetry-instrumentation-grpc's
  global instrumentors), so edge -> routing calls carry the trace context across the wire;
- every SQL statement: a `db.query <VERB>` client span (`db.system`, `db.statement` with bind placeholders,
  never values). SQLAlchemy's engine events start them for what SQLAlchemy executes (the edge's outbox,
  the worker's tables, migrations); the routing store, which runs its statements on its drivers itself,
  starts them through `statement_spans` on that same path -- tracing never changes which statements run,
  or how;
- the edge's FastAPI app (`instrument_fastapi`, request and response bodies are never recorded);
- Temporal workflow starts and runs when a client or worker is given `temporal_interceptors()`.

Every exported span passes `MaskingSpanExporter`: phone numbers in attribute values and event attributes
are masked (country code and last 4 digits kept) and secret-named attributes replaced by "***", the same
rules as the logs (`escalade_platform.logs.mask_phone_numbers`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.util.types import AttributeValue
from pydantic_settings import BaseSettings, SettingsConfigDict

from escalade_platform.logs import NUMBER_KEYS
from escalade_platform.masking import mask_number, mask_numbers_in_text

__all__ = [
    "ExporterKind",
    "MaskingSpanExporter",
    "StatementSpans",
    "TracingSettings",
    "configure_tracing",
    "configure_tracing_from_env",
    "get_tracer",
    "instrument_fastapi",
    "mask_attributes",
    "reset_tracing",
    "statement_spans",
    "temporal_interceptors",
    "tracing_enabled",
]

ExporterKind = Literal["none", "console", "otlp"]

_SECRET_PARTS = ("secret", "token", "api_key", "apikey", "authorization", "signature", "password")
_lock = threading.Lock()


class _SwitchableProcessor(SpanProcessor):
    """The provider's one span processor: forwards to the exporters configured now (none after a reset)."""

    def __init__(self) -> None:
        self._inner: list[SpanProcessor] = []

    def add(self, processor: SpanProcessor) -> None:
        self._inner = [*self._inner, processor]

    def clear(self) -> None:
        inner, self._inner = self._inner, []
        for processor in inner:
            processor.shutdown()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._inner:
            processor.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._inner:
            processor.on_end(span)

    def shutdown(self) -> None:
        self.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._inner)


_processors = _SwitchableProcessor()
_global: TracerProvider | None = None
_provider: TracerProvider | None = None
"""Escalade's provider while tracing is configured (the process's `_global` one), else None."""
_instrumented = False
_undo: list[Any] = []


class StatementSpans:
    """Client spans for SQL statements, one per statement: `db.query <VERB>`, with `db.system` (the dialect
    name) and `db.statement` (the SQL text, bind placeholders only, cut at 500 characters; phone numbers are
    masked on export like every attribute).

    SQLAlchemy's engine events start them for the statements SQLAlchemy executes. A store that runs a
    statement on its driver itself starts the span there, so tracing wraps that path rather than choosing
    another one:

        span = statement_spans.start(dialect, sql) if statement_spans.enabled else None
        try:
            ...  # run the statement
        except Exception as error:
            if span is not None:
                statement_spans.failed(span, error)
            raise
        finally:
            if span is not None:
                span.end()

    `enabled` is False while SQL tracing is off: reading it is the whole cost then."""

    __slots__ = ("_tracer", "enabled")

    def __init__(self) -> None:
        self.enabled = False
        self._tracer: trace.Tracer = trace.NoOpTracer()

    def start(self, system: str, statement: str) -> trace.Span:
        """A started span for `statement` on database `system` (not made current: it has no children)."""
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        return self._tracer.start_span(
            f"db.query {verb}",
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system": system, "db.statement": statement[:500]},
        )

    @staticmethod
    def failed(span: trace.Span, error: BaseException) -> None:
        """Mark `span` failed with `error`'s type (the caller still ends it)."""
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))

    def _enable(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        self.enabled = True

    def _disable(self) -> None:
        self.enabled = False
        self._tracer = trace.NoOpTracer()


statement_spans = StatementSpans()
"""The process's statement spans: enabled by `configure_tracing`, disabled by `reset_tracing`."""


def _mask_value(key: str, value: AttributeValue) -> AttributeValue:
    lowered = key.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return "***"
    if isinstance(value, str):
        return (
            mask_number(value) if lowered.rsplit(".", 1)[-1] in NUMBER_KEYS else mask_numbers_in_text(value)
        )
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return [mask_numbers_in_text(v) if isinstance(v, str) else v for v in value]
    return value


def mask_attributes(attributes: Any) -> dict[str, AttributeValue]:
    """A copy of span attributes with phone numbers masked and secret-named values replaced by "***"."""
    return {str(k): _mask_value(str(k), v) for k, v in dict(attributes or {}).items()}


class MaskingSpanExporter(SpanExporter):
    """Masks every span's attributes (and its events' attributes) before handing it to `inner`."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([self._masked(span) for span in spans])

    @staticmethod
    def _masked(span: ReadableSpan) -> ReadableSpan:
        from opentelemetry.sdk.trace import Event

        events = [Event(e.name, mask_attributes(e.attributes), timestamp=e.timestamp) for e in span.events]
        return ReadableSpan(
            name=mask_numbers_in_text(span.name),
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=mask_attributes(span.attributes),
            events=events,
            links=span.links,
            kind=span.kind,
            status=span.status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class TracingSettings(BaseSettings):
    """ESCALADE_OTEL_EXPORTER (none|console|otlp) and ESCALADE_OTEL_ENDPOINT (OTLP/gRPC collector)."""

    model_config = SettingsConfigDict(env_prefix="ESCALADE_OTEL_", extra="ignore")

    exporter: ExporterKind = "none"
    """`none` (nothing instrumented, no cost), `console` (spans printed as JSON) or `otlp`."""
    endpoint: str | None = None
    """OTLP/gRPC collector for `otlp` (default http://127.0.0.1:4317)."""


def configure_tracing_from_env(service_name: str) -> TracerProvider | None:
    """`configure_tracing` with `TracingSettings()` (the CLI's serve commands call this first)."""
    settings = TracingSettings()
    return configure_tracing(service_name, settings.exporter, settings.endpoint)


def get_tracer(name: str) -> trace.Tracer:
    """A tracer of Escalade's provider (a no-op tracer when tracing is not configured)."""
    return _provider.get_tracer(name) if _provider is not None else trace.NoOpTracer()


def tracing_enabled() -> bool:
    """Whether `configure_tracing` installed a tracer provider in this process."""
    return _provider is not None


def configure_tracing(
    service_name: str,
    exporter: ExporterKind = "none",
    endpoint: str | None = None,
    *,
    span_exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Install tracing for this process (idempotent: later calls add their exporter to the same provider).

    `span_exporter` (tests: an InMemorySpanExporter) is added unbatched, behind the masking exporter.
    Returns the provider, or None when `exporter` is "none" and no `span_exporter` is given.
    """
    global _provider, _global
    if exporter == "none" and span_exporter is None:
        return _provider
    with _lock:
        if _global is None:  # one provider per process: OpenTelemetry's global cannot be replaced
            _global = TracerProvider(resource=Resource.create({"service.name": service_name}))
            _global.add_span_processor(_processors)
            trace.set_tracer_provider(_global)
        _provider = provider = _global
    if span_exporter is not None:
        _processors.add(SimpleSpanProcessor(MaskingSpanExporter(span_exporter)))
    if exporter == "console":
        _processors.add(BatchSpanProcessor(MaskingSpanExporter(ConsoleSpanExporter())))
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        otlp = OTLPSpanExporter(endpoint=endpoint or "http://127.0.0.1:4317", insecure=True)
        _processors.add(BatchSpanProcessor(MaskingSpanExporter(otlp)))
    _instrument_libraries(provider)
    return provider


def _instrument_libraries(provider: TracerProvider) -> None:
    global _instrumented
    with _lock:
        if _instrumented:
            return
        _instrumented = True
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer

    client = GrpcAioInstrumentorClient()  # type: ignore[no-untyped-call]
    server = GrpcAioInstrumentorServer()  # type: ignore[no-untyped-call]
    client.instrument(tracer_provider=provider)
    server.instrument(tracer_provider=provider)
    _undo.extend([client.uninstrument, server.uninstrument])
    _instrument_sqlalchemy(provider)


def reset_tracing() -> None:
    """Undo `configure_tracing` (tests): grpc and SQLAlchemy hooks removed, exporters flushed and dropped.

    The process's provider stays installed (OpenTelemetry's global cannot be replaced) but exports
    nothing until the next `configure_tracing`."""
    global _provider, _instrumented
    with _lock:
        _provider = None
        undo = list(_undo)
        _undo.clear()
        _instrumented = False
    for step in reversed(undo):
        step()
    _processors.clear()


def _instrument_sqlalchemy(provider: TracerProvider) -> None:
    """A `db.query` span per statement: of every SQLAlchemy engine through its execution events
    (SQLAlchemy's async engines run these hooks in the caller's context, so the spans nest under the RPC
    that ran them), and of the statements stores run on their drivers through `statement_spans`."""
    import sqlalchemy as sa

    key = "_escalade_span"

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        span = statement_spans.start(conn.dialect.name, statement)
        if context is not None:
            setattr(context, key, span)

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        span = getattr(context, key, None)
        if span is not None:
            span.end()
            setattr(context, key, None)

    def failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, key, None)
        if span is not None:
            statement_spans.failed(span, exception_context.original_exception)
            span.end()
            setattr(exception_context.execution_context, key, None)

    statement_spans._enable(provider.get_tracer("escalade.store"))
    _undo.append(statement_spans._disable)
    hooks = (("before_cursor_execute", before), ("after_cursor_execute", after), ("handle_error", failed))
    for name, hook in hooks:
        sa.event.listen(sa.engine.Engine, name, hook)
        _undo.append(lambda name=name, hook=hook: sa.event.remove(sa.engine.Engine, name, hook))


def instrument_fastapi(app: Any) -> None:
    """Server spans for the edge's routes (no bodies; health, readiness and metrics excluded)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls="healthz,readyz,metrics")


def temporal_interceptors() -> list[Any]:
    """[temporalio's TracingInterceptor] when tracing is configured, else [] (for Client.connect/Worker)."""
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_provider.get_tracer("escalade.temporal"))]
