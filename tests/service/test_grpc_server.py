"""Server bootstrap and streaming: health, reflection, WatchAvailability, policy reload, the sweeper."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app.policy_source import PolicySource
from routing_service.app.sweeper import sweep_once
from routing_service.grpc.server import SERVICE_NAME, RoutingServer
from routing_service.policy.errors import PolicyError
from tests.service.grpc_helpers import TECHCORP, Routing, add_agent, agent_of, resolve, routing_settings

# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


async def eventually(check: Callable[[], bool | Awaitable[bool]], *, attempts: int = 200) -> None:
    """Poll `check` (sync or async) until true; fails after `attempts` short sleeps."""
    for _ in range(attempts):
        result = check()
        if await result if asyncio.iscoroutine(result) else result:
            return
        await asyncio.sleep(0.05)
    pytest.fail("condition never became true")


async def test_health_is_serving_when_started(routing: Routing) -> None:
    health = health_pb2_grpc.HealthStub(routing.channel)
    for service in ("", SERVICE_NAME):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_routing_service_when_asked(routing: Routing) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(routing.channel)
    call = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = set()
    async for response in call:
        names |= {s.name for s in response.list_services_response.service}
    assert SERVICE_NAME == "escalade.routing.v1.RoutingService"
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names


async def test_watch_delivers_an_event_when_a_release_frees_a_specialist(routing: Routing) -> None:
    stub = routing.stub
    await add_agent(stub, "ann", teams=("technical", "enterprise"))
    await resolve(stub, "call-1")
    call = stub.WatchAvailability(pb.WatchAvailabilityRequest(team_ids=["technical"]))
    await eventually(lambda: routing.server.events.subscriber_count == 1)
    await add_agent(stub, "other", teams=("billing",), number="+15550100301")  # other team: filtered out
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    event = await asyncio.wait_for(call.read(), timeout=10)
    assert isinstance(event, pb.WatchAvailabilityResponse)
    assert (event.team_id, event.agent_id, event.free_slots) == ("technical", "ann", 1)
    call.cancel()
    await eventually(lambda: routing.server.events.subscriber_count == 0)


async def test_watch_delivers_an_event_when_an_agent_becomes_available(routing: Routing) -> None:
    stub = routing.stub
    await add_agent(stub, "ann", status=pb.AGENT_STATUS_OFFLINE)
    call = stub.WatchAvailability(pb.WatchAvailabilityRequest())
    await eventually(lambda: routing.server.events.subscriber_count == 1)
    await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="ann", status=pb.AGENT_STATUS_AVAILABLE))
    event = await asyncio.wait_for(call.read(), timeout=10)
    assert isinstance(event, pb.WatchAvailabilityResponse) and event.agent_id == "ann"
    call.cancel()


async def test_watch_stream_ends_cleanly_when_the_server_stops(sqlite_url: str) -> None:
    server = RoutingServer(routing_settings(sqlite_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = routing_pb2_grpc.RoutingServiceStub(channel).WatchAvailability(pb.WatchAvailabilityRequest())
        await eventually(lambda: server.events.subscriber_count == 1)
        await server.stop(2)
        assert await asyncio.wait_for(call.read(), timeout=10) is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


async def test_policy_reload_keeps_the_last_good_policy_when_the_new_file_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    shutil.copy(TECHCORP, path)
    source = PolicySource.load(path)
    good = source.current
    path.write_text(TECHCORP.read_text().replace('number: "+15550100200"', 'number: "555-TECH"'))
    assert await source.reload() is False
    assert source.current is good
    assert isinstance(source.last_error, PolicyError)
    assert "teams.technical.destination.number" in str(source.last_error)
    path.write_text(TECHCORP.read_text().replace("name: techcorp", "name: techcorp-v2"))
    assert await source.reload() is True
    assert source.current.name == "techcorp-v2" and source.last_error is None


async def test_running_server_reloads_on_file_change_and_keeps_serving_when_a_bad_file_arrives(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "policy.yaml"
    shutil.copy(TECHCORP, path)
    settings = routing_settings(sqlite_url, policy=path, policy_poll_seconds=0.05)
    server = RoutingServer(settings, run_sweeps=False)
    port = await server.start()
    try:
        policies = server.policies
        assert policies is not None
        path.write_text("teams: [not, a, policy")
        await eventually(lambda: policies.last_error is not None)
        assert policies.current.name == "techcorp"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            decision = await resolve(stub, "call-1", category="billing", complexity=pb.COMPLEXITY_BASIC)
            assert decision.team_id == "billing"
            path.write_text(TECHCORP.read_text().replace('number: "+15550100300"', 'number: "+15550100399"'))
            await eventually(lambda: policies.last_error is None and policies.reloads == 1)
            decision = await resolve(stub, "call-2", category="billing", complexity=pb.COMPLEXITY_BASIC)
            assert decision.destination.number == "+15550100399"
    finally:
        await server.stop(0.5)


async def test_sweeper_frees_expired_reservations_and_expires_old_callbacks_when_due(
    routing: Routing,
) -> None:
    stub = routing.stub
    await add_agent(stub, "ann")
    await resolve(stub, "call-1")
    assert (await resolve(stub, "call-2")).kind == pb.DECISION_KIND_CALLBACK
    uow = routing.server.uow
    now = datetime.now(UTC)
    early = await sweep_once(uow=uow, now=now, callback_ttl=timedelta(hours=24))
    assert (early.released, early.expired_callbacks) == (0, 0)
    late = await sweep_once(uow=uow, now=now + timedelta(hours=3), callback_ttl=timedelta(hours=1))
    assert (late.released, late.expired_callbacks) == (1, 1)
    assert (await agent_of(stub, "ann")).active_assignments == 0
    listed = await stub.ListCallbacks(pb.ListCallbacksRequest(state=pb.CALLBACK_STATE_EXPIRED))
    assert [c.call_id for c in listed.callbacks] == ["call-2"]
