"""PostgreSQL connections dropped mid-load: a TCP proxy owned by the test sits between the routing service
and PostgreSQL; cutting it resets every connection and refuses new ones. Callers get UNAVAILABLE with a
clear message (never INTERNAL or UNKNOWN), the edge answers the fallback line, and once the proxy forwards
again the same service process serves decisions without a restart and without double reservations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from routing_service.grpc.server import RoutingServer
from tests.edge.edge_support import SECRET, running_edge
from tests.faults.fault_support import (
    FALLBACK,
    TcpProxy,
    active_assignments,
    decisions,
    destination_of,
    eventually,
    request_for,
)
from tests.service.grpc_helpers import resolve, routing_settings
from tests.support.routing import seed_techcorp
from webhook_edge.settings import EdgeSettings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]

LOAD = 60
CALL_TIMEOUT = 15.0


@dataclass
class Proxied:
    proxy: TcpProxy
    server: RoutingServer
    stub: pb_grpc.RoutingServiceAsyncStub


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[Proxied]:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through_proxy = url.set(host="127.0.0.1", port=await proxy.start()).render_as_string(hide_password=False)
    server = RoutingServer(routing_settings(through_proxy), watch_policy=False, run_sweeps=False)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.RoutingServiceStub(channel)
        await seed_techcorp(stub)
        yield Proxied(proxy, server, stub)
    finally:
        await channel.close()
        proxy.restore()
        await server.stop(0.5)
        await proxy.close()


async def outcome(stub: pb_grpc.RoutingServiceAsyncStub, call_id: str) -> tuple[grpc.StatusCode, str]:
    """The status of one ResolveEscalation (a technical, advanced escalation of its own call)."""
    try:
        async with asyncio.timeout(CALL_TIMEOUT):
            await resolve(stub, call_id, caller="+14155550123")
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_callers_get_unavailable_then_decisions_when_database_connections_drop_and_return(
    proxied: Proxied,
) -> None:
    stub = proxied.stub
    finished = 0
    tenth = asyncio.Event()

    async def one(index: int) -> tuple[grpc.StatusCode, str]:
        nonlocal finished
        result = await outcome(stub, f"load-{index}")
        finished += 1
        if finished >= LOAD // 10:
            tenth.set()
        return result

    load = asyncio.gather(*(one(i) for i in range(LOAD)))
    await tenth.wait()
    proxied.proxy.cut()
    during = await load
    codes = [code for code, _ in during]
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, during
    assert grpc.StatusCode.UNAVAILABLE in codes  # the cut did land mid-load

    cut = await asyncio.gather(*(outcome(stub, f"cut-{i}") for i in range(20)))
    assert {code for code, _ in cut} == {grpc.StatusCode.UNAVAILABLE}, cut
    assert all("unavailable" in details for _, details in cut), cut

    proxied.proxy.restore()

    async def decided() -> bool:  # the pool replaces its dead connections on its own
        return (await outcome(stub, "probe"))[0] == grpc.StatusCode.OK

    await eventually(decided)
    after = await asyncio.gather(*(outcome(stub, f"after-{i}") for i in range(20)))
    assert {code for code, _ in after} == {grpc.StatusCode.OK}, after

    held = sum((await active_assignments(stub)).values())
    transfers = await decisions(stub, pb.DECISION_KIND_TRANSFER_AGENT)
    assert held == len(transfers) and held > 0
    stored = {d.call_id for d in await decisions(stub)}
    assert not any(call_id.startswith("cut-") for call_id in stored)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_edge_answers_fallback_then_decisions_when_database_connections_drop_and_return(
    proxied: Proxied, tmp_path: Path
) -> None:
    settings = EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=proxied.server.address,
        routing_deadline_ms=2000,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
    )
    async with running_edge(settings) as edge, asyncio.timeout(60):
        proxied.proxy.cut()
        down = await asyncio.gather(*(edge.post(request_for(f"edge-cut-{i}")) for i in range(20)))
        assert [destination_of(r) for r in down] == [FALLBACK] * 20

        proxied.proxy.restore()

        async def routed() -> bool:
            return destination_of(await edge.post(request_for("edge-probe"))) != FALLBACK

        await eventually(routed)
        back = await asyncio.gather(*(edge.post(request_for(f"edge-back-{i}")) for i in range(20)))
        assert FALLBACK not in [destination_of(r) for r in back]
