"""Helpers of the operability tests: a running routing + edge stack and Prometheus text parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from routing_service.grpc.server import RoutingServer
from routing_service.metrics import MetricsEndpoint
from tests.conftest import free_port
from tests.edge.edge_support import Edge, running_edge, stack_edge_settings
from tests.support.routing import techcorp_routing

ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"
ENTERPRISE_CALL = "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"
PREMIUM = "transfer-destination-request.premium-technical-advanced.json"
CALLER = "+1234567890"
"""The enterprise fixture's caller number: never in full in logs, metrics or traces."""


@dataclass
class Stack:
    server: RoutingServer
    metrics: MetricsEndpoint
    edge: Edge
    stub: pb_grpc.RoutingServiceAsyncStub
    routing_address: str

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics.port}/metrics"

    async def routing_metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            reply = await client.get(self.metrics_url)
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/plain")
        return reply.text

    async def edge_metrics(self) -> str:
        return await edge_metrics(self.edge)


async def edge_metrics(edge: Edge) -> str:
    """What the edge's own metrics port answers to `GET /metrics` (the edge was built with a port)."""
    endpoint = edge.app.state.metrics_endpoint
    assert endpoint is not None, "the edge serves no metrics: build its settings with edge_metrics_port"
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{endpoint.port}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


@asynccontextmanager
async def running_stack(database_url: str, **edge_overrides: Any) -> AsyncIterator[Stack]:
    async with techcorp_routing(database_url) as routing:
        server = routing.server
        assert server.policies is not None
        endpoint = MetricsEndpoint(server.uow, server.policies)
        await endpoint.start("127.0.0.1", 0)
        try:
            edge_settings = stack_edge_settings(
                routing.address, database_url, **{"edge_metrics_port": free_port(), **edge_overrides}
            )
            async with running_edge(edge_settings) as edge:
                yield Stack(server, endpoint, edge, routing.stub, routing.address)
        finally:
            await endpoint.stop()


def sample(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` whose labels include `labels` (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0
