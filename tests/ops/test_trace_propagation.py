"""One trace per webhook: edge (FastAPI) -> gRPC client -> gRPC server -> store statements, collected by
an in-memory exporter behind the masking exporter; no span carries a full number or the secret."""

from __future__ import annotations

import sysconfig
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from escalade_platform.tracing import configure_tracing, get_tracer, reset_tracing
from tests.edge.edge_support import SECRET, load_fixture
from tests.ops.ops_support import CALLER, ENTERPRISE, running_stack

RESOLVE = "/escalade.routing.v1.RoutingService/ResolveEscalation"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    configure_tracing("escalade-test", span_exporter=exporter)
    try:
        yield exporter
    finally:
        reset_tracing()


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    chain: list[ReadableSpan] = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        chain.append(by_id[parent.span_id])
        parent = chain[-1].parent
    return chain


async def test_one_trace_spans_edge_grpc_and_store_when_a_webhook_is_routed(
    spans: InMemorySpanExporter, sqlite_url: str
) -> None:
    async with running_stack(sqlite_url) as stack:
        spans.clear()
        response = await stack.edge.post(load_fixture(ENTERPRISE))
        assert response.status_code == 200
    finished = list(spans.get_finished_spans())
    edge = [s for s in finished if s.kind == SpanKind.SERVER and "/webhook/vapi" in s.name]
    assert len(edge) == 1
    trace_id = edge[0].context.trace_id
    client = [s for s in finished if s.name == RESOLVE and s.kind == SpanKind.CLIENT]
    server = [s for s in finished if s.name == RESOLVE and s.kind == SpanKind.SERVER]
    assert len(client) == 1 and len(server) == 1
    by_id = {s.context.span_id: s for s in finished}
    assert edge[0] in ancestors(client[0], by_id)
    assert server[0].parent is not None and server[0].parent.span_id == client[0].context.span_id
    statements = [s for s in finished if s.name.startswith("db.query") and server[0] in ancestors(s, by_id)]
    assert statements, "the store's statements run under the gRPC server span"
    assert {s.attributes["db.system"] for s in statements if s.attributes} == {"sqlite"}
    assert all(s.context.trace_id == trace_id for s in [*client, *server, *statements])


async def test_spans_carry_no_number_or_secret_when_a_webhook_is_routed(
    spans: InMemorySpanExporter, sqlite_url: str, tmp_path: Path
) -> None:
    async with running_stack(sqlite_url) as stack:
        await stack.edge.post(load_fixture(ENTERPRISE), path="/webhook/vapi?from=" + CALLER)
        await stack.edge.post(load_fixture("status-update.ended.json"))
    finished = spans.get_finished_spans()
    assert finished
    dump = "\n".join(s.to_json() for s in finished)
    assert CALLER not in dump and CALLER[1:] not in dump
    assert SECRET not in dump
    assert "+1*****7890" in dump  # the number in the URL's query string was there, masked


@pytest.mark.temporal
async def test_workflow_start_joins_the_trace_when_the_relay_client_starts_it(
    spans: InMemorySpanExporter,
) -> None:
    from temporalio.testing import WorkflowEnvironment

    from escalade_platform.settings import TemporalConnectionSettings
    from webhook_edge.relay import temporal_connector

    binary = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(binary))
    try:
        client = await temporal_connector(
            TemporalConnectionSettings(temporal_address=env.client.service_client.config.target_host)
        )()
        tracer = get_tracer("ops-test")
        with tracer.start_as_current_span("webhook") as parent:
            await client.start_workflow(
                "QueueCallbackWorkflow", id=f"callback-trace-{uuid.uuid4()}", task_queue=f"q-{uuid.uuid4()}"
            )
    finally:
        await env.shutdown()
    starts = [s for s in spans.get_finished_spans() if s.name == "StartWorkflow:QueueCallbackWorkflow"]
    assert len(starts) == 1
    assert starts[0].context.trace_id == parent.get_span_context().trace_id
