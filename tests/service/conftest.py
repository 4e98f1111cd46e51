"""Fixtures of the service tests, each on both back ends (a SQLite file and PostgreSQL, via `database_url`):

* `routing`/`stub`: a real routing server per test (grpc.aio on 127.0.0.1:0, a real store, the TechCorp
  policy); tests talk to it only through the generated stub;
* `store`: a migrated `Store` for the repository tests (tests/service/test_store_*.py), closed afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.grpc.server import RoutingServer
from routing_service.store import Store
from tests.service.grpc_helpers import Routing, routing_settings
from tests.service.store_builders import opened_store


@pytest.fixture
async def routing(database_url: str) -> AsyncIterator[Routing]:
    server = RoutingServer(routing_settings(database_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Routing(server, channel, routing_pb2_grpc.RoutingServiceStub(channel), database_url)
    finally:
        await channel.close()
        await server.stop(0.5)


@pytest.fixture
def stub(routing: Routing) -> routing_pb2_grpc.RoutingServiceAsyncStub:
    return routing.stub


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with opened_store(database_url) as opened:
        yield opened
