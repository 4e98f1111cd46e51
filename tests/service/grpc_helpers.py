"""Helpers shared by the service tests: stub shortcuts and BadRequest decoding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import error_details_pb2, status_pb2

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.grpc.server import RoutingServer
from routing_service.settings import RoutingSettings

REPO = Path(__file__).resolve().parents[2]
TECHCORP = REPO / "examples" / "techcorp.yaml"


@dataclass
class Routing:
    server: RoutingServer
    channel: grpc.aio.Channel
    stub: routing_pb2_grpc.RoutingServiceAsyncStub
    database_url: str


def routing_settings(database_url: str, policy: Path = TECHCORP, **extra: object) -> RoutingSettings:
    return RoutingSettings(
        database_url=database_url,
        policy=policy,
        routing_address="127.0.0.1:0",
        shutdown_grace_seconds=1.0,
        **extra,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------------------------------
# Helpers shared by the service tests
# ---------------------------------------------------------------------------------------------------------
def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations carried by an INVALID_ARGUMENT error."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            out = []
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    out += [(v.field, v.description) for v in bad.field_violations]
            return out
    return []


async def add_agent(
    stub: routing_pb2_grpc.RoutingServiceAsyncStub,
    agent_id: str,
    *,
    teams: tuple[str, ...] = ("technical",),
    capacity: int = 1,
    max_complexity: pb.Complexity.ValueType = pb.COMPLEXITY_CRITICAL,
    number: str = "+15550100201",
    status: pb.AgentStatus.ValueType = pb.AGENT_STATUS_AVAILABLE,
    skills: tuple[str, ...] = (),
) -> pb.Agent:
    reply = await stub.UpsertAgent(
        pb.UpsertAgentRequest(
            agent=pb.Agent(
                agent_id=agent_id,
                display_name=agent_id.title(),
                number=number,
                team_ids=list(teams),
                skills=list(skills),
                max_complexity=max_complexity,
                capacity=capacity,
                status=status,
            )
        )
    )
    return reply.agent


async def add_customer(
    stub: routing_pb2_grpc.RoutingServiceAsyncStub,
    number: str,
    tier: str,
    account: str = "",
    previous: int = 0,
) -> pb.Customer:
    reply = await stub.UpsertCustomer(
        pb.UpsertCustomerRequest(
            customer=pb.Customer(
                number=number, tier=tier, account_name=account, previous_escalations=previous
            )
        )
    )
    return reply.customer


async def resolve(
    stub: routing_pb2_grpc.RoutingServiceAsyncStub,
    call_id: str,
    *,
    caller: str = "",
    category: str = "technical",
    complexity: pb.Complexity.ValueType = pb.COMPLEXITY_ADVANCED,
    context: str = "",
    reason: str = "",
    tool_call_id: str = "tool-1",
    dry_run: bool = False,
) -> pb.Decision:
    reply = await stub.ResolveEscalation(
        pb.ResolveEscalationRequest(
            call_id=call_id,
            tool_call_id=tool_call_id,
            caller_number=caller,
            issue_category=category,
            complexity=complexity,
            customer_context=context,
            escalation_reason=reason,
            dry_run=dry_run,
        )
    )
    return reply.decision


async def agent_of(stub: routing_pb2_grpc.RoutingServiceAsyncStub, agent_id: str, team: str = "") -> pb.Agent:
    reply = await stub.ListAgents(pb.ListAgentsRequest(team_id=team))
    return next(a for a in reply.agents if a.agent_id == agent_id)
