"""The benchmarks' durable floor does the durable work it claims, so dividing Escalade by it is
fair: under concurrent requests it reserves distinct capacity and never more than a specialist's capacity,
writes one decision row per request with the caller's tier, and a release gives the slot back exactly once.
A correctness check over the real gRPC servicer and database, not a timing."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from benchmarks.floor import (
    SPECIALIST_NUMBER_PREFIX,
    FloorServer,
    PgFloor,
    SqliteFloor,
    customer_number,
    seed_floor,
    start_floor,
)
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc

SPECIALISTS = 10
CAPACITY = 3
CUSTOMERS = 40
TIERS = ("standard", "premium", "enterprise")
# The seed takes every tenth specialist offline and qualifies every third up to intermediate only, so an
# advanced call can go to s00001, s00002, s00004, s00005, s00007 and s00008.
QUALIFIED = {f"s{i:05d}" for i in range(SPECIALISTS) if i % 10 and i % 3}


@pytest.fixture
async def floor(database_url: str) -> AsyncIterator[FloorServer]:
    await seed_floor(
        database_url, specialists=SPECIALISTS, customers=CUSTOMERS, capacity=CAPACITY, tiers=TIERS
    )
    server = await start_floor(database_url)
    try:
        yield server
    finally:
        await server.stop(None)


async def rows(server: FloorServer, sql: str) -> list[tuple[Any, ...]]:
    store = server.store
    if isinstance(store, SqliteFloor):
        return [tuple(row) for row in store.conn.execute(sql).fetchall()]
    assert isinstance(store, PgFloor)
    return [tuple(row) for row in await store.pool.fetch(sql)]


def request(i: int) -> pb.ResolveEscalationRequest:
    caller = customer_number(i % CUSTOMERS) if i % 7 else "+12125550000"  # every 7th an unknown caller
    return pb.ResolveEscalationRequest(
        call_id=f"call-{i}",
        tool_call_id="tool",
        caller_number=caller,
        issue_category="technical",
        complexity=pb.COMPLEXITY_ADVANCED,
    )


async def test_concurrent_decisions_never_exceed_capacity_and_every_decision_is_stored(
    floor: FloorServer,
) -> None:
    requests = 60  # more than the 18 qualified slots
    async with grpc.aio.insecure_channel(f"127.0.0.1:{floor.port}") as channel:
        stub = pb_grpc.RoutingServiceStub(channel)
        replies = await asyncio.gather(
            *(stub.ResolveEscalation(request(i), timeout=30) for i in range(requests))
        )

        decisions = [reply.decision for reply in replies]
        reserved = [d for d in decisions if d.kind == pb.DECISION_KIND_TRANSFER_AGENT]
        assert Counter(d.agent_id for d in reserved) == dict.fromkeys(QUALIFIED, CAPACITY)
        assert all(d.destination.number.startswith(SPECIALIST_NUMBER_PREFIX) for d in reserved)
        others = [d for d in decisions if d.kind != pb.DECISION_KIND_TRANSFER_AGENT]
        assert len(others) == requests - len(QUALIFIED) * CAPACITY
        assert all(d.kind == pb.DECISION_KIND_TRANSFER_TEAM and not d.agent_id for d in others)
        for i, decision in enumerate(decisions):
            expected_tier = TIERS[(i % CUSTOMERS) % len(TIERS)] if i % 7 else "standard"
            assert decision.tier == expected_tier, i

        active = dict(await rows(floor, "SELECT agent_id, active FROM floor_specialists"))
        assert active == {
            f"s{i:05d}": CAPACITY if f"s{i:05d}" in QUALIFIED else 0 for i in range(SPECIALISTS)
        }
        stored = await rows(floor, "SELECT call_id, agent_id, tier FROM floor_decisions")
        assert sorted(stored) == sorted((d.call_id, d.agent_id or None, d.tier) for d in decisions)

        # Releasing every call (twice, concurrently) frees each reserved slot exactly once.
        releases = await asyncio.gather(
            *(
                stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id=f"call-{i}"), timeout=30)
                for i in [*range(requests), *range(requests)]
            )
        )
        assert sum(r.released for r in releases) == len(reserved)
        assert Counter(r.agent_id for r in releases if r.released) == dict.fromkeys(QUALIFIED, CAPACITY)
        assert await rows(floor, "SELECT agent_id FROM floor_specialists WHERE active <> 0") == []
        unreleased = "SELECT count(*) FROM floor_decisions WHERE agent_id IS NOT NULL AND released_at IS NULL"
        assert await rows(floor, unreleased) == [(0,)]

        # The freed capacity is reservable again.
        again = await stub.ResolveEscalation(request(1000), timeout=30)
        assert again.decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
        assert again.decision.agent_id in QUALIFIED
