"""The edge's outbox database away while routing decides a callback (PostgreSQL behind a test-owned proxy
for the edge only; routing reaches the database directly). The caller still gets the queue line, and the
callback's workflow start is recorded once the database is back: Vapi will not redeliver (it got its
answer), so without that the queued callback would never be dialled."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from routing_service.grpc.server import RoutingServer
from routing_service.settings import RoutingSettings
from tests.edge.edge_support import SECRET, running_edge
from tests.faults.fault_support import (
    EXAMPLES,
    PREMIUM_TECHNICAL,
    TcpProxy,
    destination_of,
    eventually,
    request_for,
)
from tests.support.routing import seed_techcorp
from webhook_edge.outbox import outbox_table
from webhook_edge.settings import EdgeSettings

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_callback_start_is_recorded_when_the_outbox_database_returns(
    database_url: str, tmp_path: Path
) -> None:
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    edge_url = url.set(host="127.0.0.1", port=await proxy.start()).render_as_string(hide_password=False)
    server = RoutingServer(
        RoutingSettings(
            database_url=database_url, policy=EXAMPLES / "techcorp.yaml", routing_address="127.0.0.1:0"
        ),
        watch_policy=False,
        run_sweeps=False,
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    engine = create_async_engine(database_url)
    try:
        stub = pb_grpc.RoutingServiceStub(channel)
        await seed_techcorp(stub)
        for agent_id in ("tech-1", "tech-2"):
            await stub.SetAgentStatus(
                pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
            )
        settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=f"127.0.0.1:{port}",
            routing_deadline_ms=5000,
            database_url=edge_url,
        )
        async with running_edge(settings) as edge:
            proxy.cut()
            response = await edge.post(request_for("outbox-away", PREMIUM_TECHNICAL))
            assert destination_of(response) == "+15550100600"  # the queue line: the caller is looked after
            decision = (await stub.GetDecision(pb.GetDecisionRequest(call_id="outbox-away"))).decision
            assert decision.kind == pb.DECISION_KIND_CALLBACK
            proxy.restore()

            async def recorded() -> bool:
                async with engine.connect() as conn:
                    query = sa.select(outbox_table.c.id).where(
                        outbox_table.c.workflow_id == "callback-outbox-away"
                    )
                    return (await conn.execute(query)).first() is not None

            await eventually(recorded, budget=20)
    finally:
        await engine.dispose()
        await channel.close()
        await server.stop(0.5)
        await proxy.close()
