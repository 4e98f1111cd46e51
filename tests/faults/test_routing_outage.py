"""Routing killed (SIGKILL) or frozen (SIGSTOP) while the edge is under load: every signed
transfer-destination-request is still answered 200 with a destination Vapi can dial (the fallback line once
routing is gone), within the routing deadline (300 ms here, set through ESCALADE_ROUTING_DEADLINE_MS); when
routing is back on the same port the edge's decisions resume, and no specialist is reserved twice (agents'
active assignments add up to the TRANSFER_AGENT decisions stored).

The routing service runs as a real `escalade routing serve` subprocess (SQLite file, and PostgreSQL); the
edge is the real app in this process (its outbox in a SQLite file of its own, so a frozen routing process
holding the store's write lock cannot stall the edge's outbox writes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from pydantic import SecretStr

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from tests.edge.edge_support import SECRET, Edge, running_edge
from tests.faults.fault_support import (
    FALLBACK,
    RoutingProcess,
    active_assignments,
    decisions,
    destination_of,
    free_port,
    post_all,
    request_for,
    wait_edge_ready,
)
from tests.support.routing import seed_techcorp
from webhook_edge.settings import EdgeSettings

pytestmark = pytest.mark.timeout(90)

LOAD = 100


@dataclass
class Outage:
    routing: RoutingProcess
    stub: pb_grpc.RoutingServiceAsyncStub
    edge: Edge
    tmp_path: Path
    processes: list[RoutingProcess]

    async def restart(self) -> None:
        """Routing back on the same port and database (the killed process is gone)."""
        await self.routing.kill()
        self.routing = RoutingProcess(self.routing.database_url, self.routing.port, self.routing.log_path)
        self.processes.append(self.routing)
        await self.routing.start()


@pytest.fixture
async def outage(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Outage]:
    routing = RoutingProcess(database_url, free_port(), tmp_path / "routing.log")
    await routing.start()
    channel = grpc.aio.insecure_channel(routing.address)
    processes = [routing]
    try:
        stub = pb_grpc.RoutingServiceStub(channel)
        await seed_techcorp(stub)
        monkeypatch.setenv("ESCALADE_ROUTING_DEADLINE_MS", "300")
        settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
        )
        assert settings.routing_deadline_ms == 300
        async with running_edge(settings) as edge:
            outage = Outage(routing, stub, edge, tmp_path, processes)
            yield outage
    finally:
        await channel.close()
        for process in processes:
            await process.kill()


IN_FLIGHT = 10
"""Requests in flight at once: the load keeps flowing after the fault, so most of it meets the outage."""


async def load_with_fault(
    edge: Edge, prefix: str, fault: Callable[[], Awaitable[None]]
) -> list[httpx.Response]:
    """LOAD signed requests, IN_FLIGHT at a time; once a tenth has been answered, `fault` is applied."""
    answered = 0
    tenth = asyncio.Event()
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def one(index: int) -> httpx.Response:
        nonlocal answered
        async with slots:
            response = await edge.post(request_for(f"{prefix}-{index}"))
        answered += 1
        if answered >= LOAD // 10:
            tenth.set()
        return response

    async with asyncio.timeout(60):
        load = asyncio.gather(*(one(i) for i in range(LOAD)))
        await tenth.wait()
        await fault()
        return list(await load)


async def routed(outage: Outage, call_id: str) -> str:
    """Deliver the call's request until routing's own decision comes back (Vapi retries the same way; the
    replay of a decision the edge gave up waiting for is the same decision, not a second one)."""
    while True:
        target = destination_of(await outage.edge.post(request_for(call_id)))
        if target != FALLBACK:
            return target
        await asyncio.sleep(0.2)


async def assert_decisions_resume(outage: Outage, prefix: str) -> None:
    """Fresh calls get routing's own decisions again (not the fallback), each one stored.

    A restarted process warms up (a new connection pool) and a thawed one first works through the requests
    queued while it was frozen (gRPC deadlines are relative, so it cannot tell they were given up on): with a
    300 ms budget some first deliveries still fall back, so each call is redelivered until it is decided."""
    await wait_edge_ready(outage.edge)
    call_ids = [f"{prefix}-{i}" for i in range(20)]
    async with asyncio.timeout(45):
        targets = await asyncio.gather(*(routed(outage, call_id) for call_id in call_ids))
    for call_id, target in zip(call_ids, targets, strict=True):
        stored = await outage.stub.GetDecision(pb.GetDecisionRequest(call_id=call_id))
        assert stored.decision.destination.number == target


async def assert_nothing_double_reserved(stub: pb_grpc.RoutingServiceAsyncStub) -> None:
    held = sum((await active_assignments(stub)).values())
    transfers = await decisions(stub, pb.DECISION_KIND_TRANSFER_AGENT)
    assert held == len(transfers)
    assert len({d.call_id for d in transfers}) == len(transfers)


async def test_every_request_gets_a_destination_when_routing_is_killed_under_load(outage: Outage) -> None:
    replies = await load_with_fault(outage.edge, "kill", outage.routing.kill)
    targets = [destination_of(r) for r in replies]  # each answered 200 with a number or SIP URI to dial
    assert FALLBACK in targets  # the kill did land mid-load

    after = await post_all(outage.edge, (request_for(f"down-{i}") for i in range(LOAD // 2)))
    assert [destination_of(r) for r in after] == [FALLBACK] * (LOAD // 2)

    await outage.restart()
    await assert_decisions_resume(outage, "back")
    await assert_nothing_double_reserved(outage.stub)
    stored = {d.call_id for d in await decisions(outage.stub)}
    assert not any(call_id.startswith("down-") for call_id in stored)


async def test_every_request_gets_a_destination_when_routing_hangs_under_load(outage: Outage) -> None:
    async def freeze() -> None:
        outage.routing.pause()

    replies = await load_with_fault(outage.edge, "hang", freeze)
    assert FALLBACK in [destination_of(r) for r in replies]  # the freeze did land mid-load

    frozen = await post_all(outage.edge, (request_for(f"frozen-{i}") for i in range(LOAD // 2)))
    assert [destination_of(r) for r in frozen] == [FALLBACK] * (LOAD // 2)

    outage.routing.resume()
    await assert_decisions_resume(outage, "thawed")
    await assert_nothing_double_reserved(outage.stub)
