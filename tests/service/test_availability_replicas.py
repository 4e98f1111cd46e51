"""WatchAvailability across two routing replicas on one PostgreSQL database (LISTEN/NOTIFY,
routing_service/store/notify.py): a stream opened on replica B hears of slots freed on replica A."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import grpc
import pytest
from structlog.testing import capture_logs

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app.assignments import LIVE
from routing_service.app.availability import announce_freed
from routing_service.grpc.server import RoutingServer
from routing_service.store.notify import PgAvailabilityListener
from tests.conftest import (
    PG_ADMIN_DB,
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_pg_database,
    drop_pg_database,
    pg_url,
)
from tests.service.grpc_helpers import add_agent, resolve, routing_settings

pytestmark = pytest.mark.postgres

Seen = tuple[str, str, int]
"""(team_id, agent_id, free_slots) of one WatchAvailability event."""

LIMIT_S = 30.0


@dataclass
class Replica:
    server: RoutingServer
    stub: routing_pb2_grpc.RoutingServiceAsyncStub

    @property
    def listener(self) -> PgAvailabilityListener:
        assert self.server.listener is not None, "a routing server on PostgreSQL listens"
        return self.server.listener


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (its URL), dropped afterwards."""
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


@asynccontextmanager
async def replica(database_url: str) -> AsyncIterator[Replica]:
    server = RoutingServer(routing_settings(database_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Replica(server, routing_pb2_grpc.RoutingServiceStub(channel))
    finally:
        await server.stop(0.5)


@asynccontextmanager
async def two_replicas(database_url: str) -> AsyncIterator[tuple[Replica, Replica]]:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(database_url))
        b = await stack.enter_async_context(replica(database_url))
        assert a.listener.listening.is_set() and b.listener.listening.is_set()
        yield a, b


async def eventually(check: Callable[[], bool]) -> None:
    """Poll `check` until true (the test's own timeout bounds the wait)."""
    for _ in range(5_000):
        if check():
            return
        await asyncio.sleep(0.02)
    pytest.fail("condition never held")


@asynccontextmanager
async def watching(at: Replica, *teams: str) -> AsyncIterator[Callable[[int], Awaitable[list[Seen]]]]:
    """A WatchAvailability stream on `at`, subscribed before the block starts; the block gets `take(n)`,
    which reads the next n events."""
    before = at.server.events.subscriber_count
    call = at.stub.WatchAvailability(pb.WatchAvailabilityRequest(team_ids=list(teams)))

    async def take(n: int) -> list[Seen]:
        seen: list[Seen] = []
        for _ in range(n):
            event = await call.read()
            assert isinstance(event, pb.WatchAvailabilityResponse), f"stream ended after {seen}"
            seen.append((event.team_id, event.agent_id, event.free_slots))
        return seen

    try:
        await eventually(lambda: at.server.events.subscriber_count > before)
        yield take
    finally:
        call.cancel()


async def test_watch_on_b_receives_a_release_done_on_a_exactly_once(pg_database: str) -> None:
    async with (
        asyncio.timeout(LIMIT_S),
        two_replicas(pg_database) as (a, b),
        watching(b, "technical") as on_b,
        watching(a, "technical") as on_a,
    ):
        await add_agent(a.stub, "ann")  # available: an event of its own
        assert (await resolve(a.stub, "call-1")).agent_id == "ann"
        reply = await a.stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
        assert reply.released
        await add_agent(a.stub, "zed", number="+15550100301")  # the marker that ends the sequence
        expected = [("technical", "ann", 1), ("technical", "ann", 1), ("technical", "zed", 1)]
        assert await on_b(3) == expected
        assert await on_a(3) == expected  # A's own notices are not published twice


async def test_watch_on_b_receives_an_agent_becoming_available_on_a(pg_database: str) -> None:
    async with asyncio.timeout(LIMIT_S), two_replicas(pg_database) as (a, b):
        await add_agent(a.stub, "ann", status=pb.AGENT_STATUS_OFFLINE)  # offline: nothing announced
        async with watching(b) as on_b:
            await a.stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="ann", status=pb.AGENT_STATUS_BUSY))
            await a.stub.SetAgentStatus(
                pb.SetAgentStatusRequest(agent_id="ann", status=pb.AGENT_STATUS_AVAILABLE)
            )
            await add_agent(a.stub, "zed", teams=("billing",), number="+15550100301")
            assert await on_b(2) == [("technical", "ann", 1), ("billing", "zed", 1)]


async def test_nothing_reaches_b_when_the_releasing_transaction_rolls_back(pg_database: str) -> None:
    async with (
        asyncio.timeout(LIMIT_S),
        two_replicas(pg_database) as (a, b),
        watching(b, "technical") as on_b,
    ):
        await add_agent(a.stub, "ann")
        await resolve(a.stub, "call-1")
        async with a.server.uow() as u:
            released = await u.assignments.release("call-1", LIVE, datetime.now(UTC), "rolled back")
            assert released is not None
            freed = await announce_freed(
                u,
                agent_id="ann",
                team_ids=released.team_ids,
                free_slots=released.free_slots,
                at=datetime.now(UTC),
            )
            assert freed is not None
            # no commit: leaving the block rolls the release (and its NOTIFY) back
        await add_agent(a.stub, "zed", number="+15550100301")
        assert (await a.stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))).released
        # ann's upsert, the marker, then the committed release: nothing from the rolled-back one
        assert await on_b(3) == [
            ("technical", "ann", 1),
            ("technical", "zed", 1),
            ("technical", "ann", 1),
        ]


async def test_listener_reconnects_when_its_backend_is_terminated(pg_database: str) -> None:
    async with asyncio.timeout(LIMIT_S), two_replicas(pg_database) as (a, b):
        await add_agent(a.stub, "ann")
        await resolve(a.stub, "call-1")
        old_pid = b.listener.backend_pid
        with capture_logs() as logs:
            admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
            try:
                assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid) is True
            finally:
                await admin.close()
            await eventually(lambda: b.listener.connections == 2 and b.listener.listening.is_set())
        assert b.listener.backend_pid not in (None, old_pid)
        lost = [entry for entry in logs if entry["event"] == "availability_listener_lost"]
        assert len(lost) == 1 and lost[0]["log_level"] == "warning" and "exc_info" not in lost[0]
        assert any(entry["event"] == "availability_listener_reconnected" for entry in logs)
        async with watching(b, "technical") as on_b:
            assert (await a.stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))).released
            await add_agent(a.stub, "zed", number="+15550100301")
            # nothing made up on reconnection, and later events arrive once each
            assert await on_b(2) == [("technical", "ann", 1), ("technical", "zed", 1)]
