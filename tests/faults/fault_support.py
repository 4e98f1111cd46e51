"""Helpers of the fault suite: the routing service as a subprocess the test can kill or freeze, a TCP proxy
the test can cut, the TechCorp demo data, signed Vapi requests with a call id of their own, and the counts
the invariants are checked on (read back through the routing API)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from routing_service.grpc.server import RoutingServer
from tests.edge.edge_support import REPO_ROOT, SECRET, Edge, load_fixture, running_edge
from tests.support.routing import techcorp_routing
from webhook_edge.outbox import outbox_table
from webhook_edge.settings import EdgeSettings

EXAMPLES = REPO_ROOT / "examples"
ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"
PREMIUM_TECHNICAL = "transfer-destination-request.premium-technical-advanced.json"
FALLBACK = "+15550100900"
ESCALADE = Path(sys.executable).with_name("escalade")


def free_port() -> int:
    """A port nobody listens on right now (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def request_for(call_id: str, fixture: str = ENTERPRISE) -> dict[str, Any]:
    """A Vapi fixture re-addressed to its own call (the tool call id stays the fixture's)."""
    doc = copy.deepcopy(load_fixture(fixture))
    doc["message"]["call"]["id"] = call_id
    return doc


def destination_of(response: httpx.Response) -> str:
    """The number (or SIP URI) Vapi would dial; fails the test when the answer carries neither."""
    assert response.status_code == 200, response.text
    destination = response.json()["destination"]
    target = destination.get("number") or destination.get("sipUri")
    assert isinstance(target, str) and target, response.text
    return target


async def post_all(
    edge: Edge, docs: Iterable[dict[str, Any]], *, budget: float = 60.0
) -> list[httpx.Response]:
    """Every document posted at once (signed); all answers must arrive within `budget` seconds."""
    async with asyncio.timeout(budget):
        return list(await asyncio.gather(*(edge.post(doc) for doc in docs)))


async def active_assignments(stub: pb_grpc.RoutingServiceAsyncStub) -> dict[str, int]:
    reply = await stub.ListAgents(pb.ListAgentsRequest(page_size=500))
    return {a.agent_id: a.active_assignments for a in reply.agents if a.active_assignments}


async def decisions(
    stub: pb_grpc.RoutingServiceAsyncStub, kind: pb.DecisionKind.ValueType = pb.DECISION_KIND_UNSPECIFIED
) -> list[pb.Decision]:
    """Every stored decision (of `kind`), following the page tokens."""
    found: list[pb.Decision] = []
    token = ""
    while True:
        reply = await stub.ListDecisions(pb.ListDecisionsRequest(kind=kind, page_size=500, page_token=token))
        found += reply.decisions
        token = reply.next_page_token
        if not token:
            return found


async def eventually(check: Callable[[], Awaitable[bool]], *, budget: float = 30.0) -> None:
    """Until `check()` is true (polled every 0.2 s); TimeoutError after `budget` seconds."""
    async with asyncio.timeout(budget):
        while True:
            if await check():
                return
            await asyncio.sleep(0.2)


async def wait_serving(address: str, *, budget: float = 30.0) -> None:
    """Until grpc.health.v1 says SERVING at `address`."""
    async with grpc.aio.insecure_channel(address) as channel, asyncio.timeout(budget):
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1.0)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.1)


async def wait_edge_ready(edge: Edge, *, budget: float = 30.0) -> None:
    """Until the edge's /readyz sees routing SERVING (its channel has reconnected)."""
    async with asyncio.timeout(budget):
        while True:
            if (await edge.client.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)


class RoutingProcess:
    """`escalade routing serve` on a fixed port: kill (SIGKILL), pause (SIGSTOP), resume (SIGCONT)."""

    def __init__(self, database_url: str, port: int, log_path: Path) -> None:
        self.database_url = database_url
        self.port = port
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {
            **os.environ,
            "ESCALADE_DATABASE_URL": self.database_url,
            "ESCALADE_POLICY": str(EXAMPLES / "techcorp.yaml"),
            "ESCALADE_LOG_LEVEL": "warning",
            "ESCALADE_SHUTDOWN_GRACE_SECONDS": "0.5",
        }
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(ESCALADE), "routing", "serve", "--address", self.address, env=env, stdout=log, stderr=log
            )
        try:
            await wait_serving(self.address)
        except TimeoutError:
            await self.kill()
            raise AssertionError(f"routing did not start:\n{self.log_path.read_text()}") from None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    async def kill(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
        await self.process.wait()


class TcpProxy:
    """A TCP forwarder on 127.0.0.1:<ephemeral> owned by the test: `cut()` resets every connection and
    refuses new ones (the database is gone), `restore()` forwards again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.refusing = False
        self.accepted = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> None:
        self.refusing = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.refusing = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.transport.abort()
            return
        self.accepted += 1
        self._writers |= {client_writer, upstream_writer}
        try:
            await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))
        finally:
            self._writers -= {client_writer, upstream_writer}


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65_536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()


@dataclass
class Stack:
    """The real routing service (in process, 127.0.0.1:0) and the real edge sharing its database."""

    server: RoutingServer
    stub: pb_grpc.RoutingServiceAsyncStub
    edge: Edge
    database_url: str

    async def count_outbox(self, kind: str) -> int:
        """Rows of `kind` in the edge's outbox table, read straight from the database."""
        engine = create_async_engine(self.database_url)
        try:
            async with engine.connect() as conn:
                query = (
                    sa.select(sa.func.count()).select_from(outbox_table).where(outbox_table.c.kind == kind)
                )
                return int((await conn.execute(query)).scalar_one())
        finally:
            await engine.dispose()


@asynccontextmanager
async def running_stack(database_url: str, *, deadline_ms: int = 10_000) -> AsyncIterator[Stack]:
    """Routing seeded with the TechCorp demo data, the edge in front of it (deadline `deadline_ms`)."""
    async with techcorp_routing(database_url) as routing:
        edge_settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            routing_deadline_ms=deadline_ms,
            database_url=database_url,
        )
        async with running_edge(edge_settings) as edge:
            yield Stack(routing.server, routing.stub, edge, database_url)
