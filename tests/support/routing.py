"""A real routing service with the TechCorp policy (and, by default, its demo data) on an ephemeral port.

The edge, ops, fault and workflow tests all need "the routing service as a user runs it": this is the one
place that starts it for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from routing_service.grpc import mapping
from routing_service.grpc.server import RoutingServer
from routing_service.policy.loader import load_agents, load_customers
from routing_service.settings import RoutingSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TECHCORP_POLICY = EXAMPLES / "techcorp.yaml"


async def seed_techcorp(stub: pb_grpc.RoutingServiceAsyncStub) -> None:
    """The demo specialists and customers of examples/, through the admin API (as `escalade dev` does)."""
    for agent in load_agents(EXAMPLES / "techcorp-agents.yaml"):
        await stub.UpsertAgent(pb.UpsertAgentRequest(agent=mapping.agent_to_pb(agent.to_domain())))
    for customer in load_customers(EXAMPLES / "techcorp-customers.csv"):
        await stub.UpsertCustomer(
            pb.UpsertCustomerRequest(customer=mapping.customer_to_pb(customer.to_domain()))
        )


@dataclass(frozen=True)
class RunningRouting:
    server: RoutingServer
    address: str
    stub: pb_grpc.RoutingServiceAsyncStub

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])


@asynccontextmanager
async def techcorp_routing(
    database_url: str, *, seed: bool = True, policy: Path = TECHCORP_POLICY
) -> AsyncIterator[RunningRouting]:
    """Start a RoutingServer (no policy watching, no sweeps) on 127.0.0.1:0 and a connected stub (`policy`:
    TechCorp's, or a variant of it)."""
    settings = RoutingSettings(
        database_url=database_url,
        policy=policy,
        routing_address="127.0.0.1:0",
        shutdown_grace_seconds=0.5,
    )
    server = RoutingServer(settings, watch_policy=False, run_sweeps=False)
    port = await server.start()
    address = f"127.0.0.1:{port}"
    channel = grpc.aio.insecure_channel(address)
    try:
        stub = pb_grpc.RoutingServiceStub(channel)
        if seed:
            await seed_techcorp(stub)
        yield RunningRouting(server=server, address=address, stub=stub)
    finally:
        await channel.close()
        await server.stop(0.5)
