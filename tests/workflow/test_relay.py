"""The availability relay against a stand-in routing server: heads woken on connect, the first
`free_slots` waiting callbacks woken per event, reconnection after a dropped stream; and the real signal
reaching a waiting callback workflow on the time-skipping server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from temporalio.client import Client

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.grpc.server import RoutingServer
from tests.service.grpc_helpers import TECHCORP, add_agent, resolve, routing_settings
from tests.workflow.routing_standin import RoutingStandin, serve, ticket
from tests.workflow.workflow_fakes import FakeRouting, FakeVapi, callback_input, eventually, new_worker
from workflows.callback import QueueCallbackWorkflow
from workflows.inputs import callback_workflow_id
from workflows.payloads import ClaimOutcome
from workflows.relay import AvailabilityRelay, signal_callback


@pytest.fixture
async def routing() -> AsyncIterator[tuple[RoutingStandin, routing_pb2_grpc.RoutingServiceAsyncStub]]:
    fake = RoutingStandin(  # type: ignore[abstract]  # only the RPCs used; the rest answer UNIMPLEMENTED
        tickets=[
            ticket("b-2", "billing", 2),
            ticket("b-1", "billing", 1),
            ticket("b-3", "billing", 3),
            ticket("t-1", "technical", 1),
            ticket("t-0", "technical", 0, state=pb.CALLBACK_STATE_RESERVED),
        ]
    )
    server, address = await serve(fake)
    channel = grpc.aio.insecure_channel(address)
    try:
        yield fake, routing_pb2_grpc.RoutingServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


async def run_relay(relay: AvailabilityRelay) -> asyncio.Task[None]:
    return asyncio.create_task(relay.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_relay_wakes_queue_heads_when_stream_opens(
    routing: tuple[RoutingStandin, routing_pb2_grpc.RoutingServiceAsyncStub],
) -> None:
    _, stub = routing
    woken: list[str] = []

    async def wake(call_id: str) -> bool:
        woken.append(call_id)
        return True

    task = await run_relay(AvailabilityRelay(stub, wake))
    try:
        await eventually(lambda: _has(woken, 2))
    finally:
        await stop(task)
    assert sorted(woken) == ["b-1", "t-1"]


async def test_relay_wakes_first_waiting_callbacks_when_slots_free(
    routing: tuple[RoutingStandin, routing_pb2_grpc.RoutingServiceAsyncStub],
) -> None:
    fake, stub = routing
    woken: list[str] = []

    async def wake(call_id: str) -> bool:
        woken.append(call_id)
        return True

    relay = AvailabilityRelay(stub, wake)
    task = await run_relay(relay)
    try:
        await eventually(lambda: _has(woken, 2))
        woken.clear()
        await fake.events.put(pb.WatchAvailabilityResponse(team_id="billing", agent_id="a", free_slots=0))
        await fake.events.put(pb.WatchAvailabilityResponse(team_id="billing", agent_id="a", free_slots=2))
        await eventually(lambda: _has(woken, 2))
        await fake.events.put(pb.WatchAvailabilityResponse(team_id="technical", agent_id="b", free_slots=1))
        await eventually(lambda: _has(woken, 3))
    finally:
        await stop(task)
    assert woken == ["b-1", "b-2", "t-1"]


async def test_relay_asks_only_for_the_queue_head_when_slots_free(
    routing: tuple[RoutingStandin, routing_pb2_grpc.RoutingServiceAsyncStub],
) -> None:
    fake, stub = routing
    fake.teams = ["empty"]
    woken: list[str] = []

    async def wake(call_id: str) -> bool:
        woken.append(call_id)
        return True

    task = await run_relay(AvailabilityRelay(stub, wake))
    try:
        await eventually(lambda: _has(woken, 2))
        catch_up = [
            (r.team_id, r.state, r.page_size) if isinstance(r, pb.ListCallbacksRequest) else type(r).__name__
            for r in fake.requests
        ]
        fake.requests.clear()
        await fake.events.put(pb.WatchAvailabilityResponse(team_id="billing", agent_id="a", free_slots=2))
        await fake.events.put(
            pb.WatchAvailabilityResponse(team_id="technical", agent_id="b", free_slots=5000)
        )
        await eventually(lambda: _has(woken, 5))
    finally:
        await stop(task)
    waiting = pb.CALLBACK_STATE_WAITING
    # Catch-up: the teams, then each team's head alone (a long queue can't hide another team's head).
    assert catch_up == [
        "GetQueueStatusRequest",
        ("billing", waiting, 1),
        ("empty", waiting, 1),
        ("technical", waiting, 1),
    ]
    assert [(r.team_id, r.state, r.page_size) for r in fake.requests] == [
        ("billing", waiting, 2),
        ("technical", waiting, 1000),
    ]
    assert woken == ["b-1", "t-1", "b-1", "b-2", "t-1"]


async def test_relay_reconnects_when_stream_drops(
    routing: tuple[RoutingStandin, routing_pb2_grpc.RoutingServiceAsyncStub],
) -> None:
    fake, stub = routing
    woken: list[str] = []

    async def wake(call_id: str) -> bool:
        woken.append(call_id)
        return True

    relay = AvailabilityRelay(stub, wake, backoff_initial=0.01)
    task = await run_relay(relay)
    try:
        await eventually(lambda: _has(woken, 2))
        await fake.events.put(None)  # routing restarts: the stream ends

        async def reconnected() -> bool:
            return relay.connections >= 2 and fake.watchers >= 2 and len(woken) >= 4

        await eventually(reconnected)
        await fake.events.put(pb.WatchAvailabilityResponse(team_id="technical", agent_id="b", free_slots=1))
        await eventually(lambda: _has(woken, 5))
    finally:
        await stop(task)
    assert woken[-1] == "t-1"


async def test_relay_keeps_retrying_when_routing_is_unreachable() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")

    async def wake(call_id: str) -> bool:
        raise AssertionError("nothing to wake")

    relay = AvailabilityRelay(routing_pb2_grpc.RoutingServiceStub(channel), wake, backoff_initial=0.01)
    task = await run_relay(relay)
    try:
        await asyncio.sleep(0.3)
        assert not task.done()
    finally:
        await stop(task)
        await channel.close()
    assert relay.connections == 0


@pytest.mark.temporal
async def test_signal_wakes_waiting_callback_when_relay_signals(client: Client) -> None:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE), FakeVapi()
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        data = callback_input()
        handle = await client.start_workflow(
            QueueCallbackWorkflow.run,
            data,
            id=callback_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )
        await eventually(lambda: _has(routing.claims, 1))
        routing.outcome = ClaimOutcome.RESERVED
        assert await signal_callback(client, data.call_id)
        assert (await handle.result()).state == "connected"
    assert len(routing.claims) == 2
    assert not await signal_callback(client, "call-that-never-was")


def _has(items: Sequence[object], count: int) -> asyncio.Future[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(len(items) >= count)
    return future


async def test_the_relay_wakes_a_callback_widened_to_the_team_of_a_freed_specialist(
    database_url: str,
) -> None:
    """The worker's relay against a real routing server: eve (enterprise) frees up once technical's waiting
    callback has widened to enterprise, and the relay wakes that callback (not only enterprise's queue)."""
    now = [datetime(2026, 11, 23, 14, 0, tzinfo=UTC)]
    server = RoutingServer(
        routing_settings(database_url, policy=TECHCORP),
        watch_policy=False,
        run_sweeps=False,
        clock=lambda: now[0],
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    relay_task: asyncio.Task[None] | None = None
    try:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await add_agent(stub, "tara", max_complexity=pb.COMPLEXITY_ADVANCED)
        assert (await resolve(stub, "call-1")).kind == pb.DECISION_KIND_TRANSFER_AGENT
        assert (await resolve(stub, "call-2")).kind == pb.DECISION_KIND_CALLBACK
        busy = pb.AGENT_STATUS_BUSY
        await add_agent(stub, "eve", teams=("enterprise",), number="+15550100101", status=busy)
        woken: list[str] = []

        async def wake(call_id: str) -> bool:
            woken.append(call_id)
            return True

        relay = AvailabilityRelay(stub, wake)
        relay_task = asyncio.create_task(relay.run())

        async def connected() -> bool:
            return relay.connections == 1 and server.events.subscriber_count == 1

        await eventually(connected)
        woken.clear()  # the catch-up on connecting wakes every queue's head
        now[0] += timedelta(minutes=10)  # technical's step 2: overflow to enterprise
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="eve", status=pb.AGENT_STATUS_AVAILABLE))

        async def call_2_woken() -> bool:
            return woken == ["call-2"]

        await eventually(call_2_woken)
    finally:
        if relay_task is not None:
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
        await channel.close()
        await server.stop(0.5)
