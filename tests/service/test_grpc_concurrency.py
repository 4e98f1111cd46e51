"""THE concurrency test: 50 simultaneous ResolveEscalation calls for one specialist of capacity 1 through
the gRPC stub reserve exactly one slot, on SQLite and PostgreSQL (the database's guarantees, no Python lock:
the requests run concurrently in one server process, each in its own transaction)."""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from tests.service.grpc_helpers import add_agent, agent_of, resolve

# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


async def test_fifty_simultaneous_calls_reserve_one_slot_when_one_specialist_has_capacity_one(
    stub: Stub,
) -> None:
    await add_agent(stub, "solo", capacity=1)
    decisions = await asyncio.gather(*(resolve(stub, f"race-{i}") for i in range(50)))
    kinds = [d.kind for d in decisions]
    assert kinds.count(pb.DECISION_KIND_TRANSFER_AGENT) == 1
    assert all(k in (pb.DECISION_KIND_CALLBACK, pb.DECISION_KIND_TRANSFER_AGENT) for k in kinds)
    assert (await agent_of(stub, "solo")).active_assignments == 1
    queued = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    assert len(queued.callbacks) == 49
    assert sorted(c.position for c in queued.callbacks) == list(range(1, 50))


async def test_simultaneous_repeats_store_one_decision_when_ids_are_identical(stub: Stub) -> None:
    await add_agent(stub, "solo", capacity=5)
    decisions = await asyncio.gather(*(resolve(stub, "same-call", tool_call_id="t") for _ in range(20)))
    assert len({d.decision_id for d in decisions}) == 1
    assert sum(not d.replayed for d in decisions) == 1
    assert (await agent_of(stub, "solo")).active_assignments == 1


async def test_simultaneous_calls_all_get_a_specialist_when_enough_are_free(stub: Stub) -> None:
    for i in range(20):
        await add_agent(stub, f"a{i:02d}", capacity=1, number=f"+155501002{i:02d}")
    decisions = await asyncio.gather(*(resolve(stub, f"crowd-{i}") for i in range(20)))
    assert [d.kind for d in decisions].count(pb.DECISION_KIND_TRANSFER_AGENT) == 20
    assert len({d.agent_id for d in decisions}) == 20, "each specialist's single slot went to one call"


async def test_a_stream_of_concurrent_calls_never_queues_while_specialists_are_free(stub: Stub) -> None:
    # 32 calls in flight at a time all rank the same specialists first; each must still find a free one
    # (on PostgreSQL by passing over those being reserved, rather than losing race after race and queueing).
    for i in range(150):
        await add_agent(stub, f"s{i:03d}", capacity=2, number=f"+15550{i:06d}")
    in_flight = asyncio.Semaphore(32)

    async def call(i: int) -> pb.Decision:
        async with in_flight:
            return await resolve(stub, f"stream-{i}")

    decisions = await asyncio.gather(*(call(i) for i in range(240)))
    kinds = [d.kind for d in decisions]
    assert kinds.count(pb.DECISION_KIND_TRANSFER_AGENT) == 240, kinds
    queued = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    assert len(queued.callbacks) == 0
