"""50 different calls race, through the edge end to end, for the one specialist who can take them: exactly
one is transferred to her and she holds exactly one reservation; the other 49 still get a destination (the
team's callback line), never the fallback. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.faults.fault_support import (
    FALLBACK,
    PREMIUM_TECHNICAL,
    Stack,
    active_assignments,
    decisions,
    destination_of,
    post_all,
    request_for,
)

pytestmark = pytest.mark.timeout(60)

RACERS = 50
ADA = "+15550100201"  # tech-1


async def test_exactly_one_call_gets_the_specialist_when_50_calls_race_for_her(stack: Stack) -> None:
    await stack.stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="tech-2", status=pb.AGENT_STATUS_OFFLINE)
    )
    [ada] = [
        a for a in (await stack.stub.ListAgents(pb.ListAgentsRequest())).agents if a.agent_id == "tech-1"
    ]
    ada.capacity = 1
    await stack.stub.UpsertAgent(pb.UpsertAgentRequest(agent=ada))

    replies = await post_all(stack.edge, (request_for(f"race-{i}", PREMIUM_TECHNICAL) for i in range(RACERS)))

    targets = [destination_of(r) for r in replies]
    assert targets.count(ADA) == 1
    assert FALLBACK not in targets
    assert await active_assignments(stack.stub) == {"tech-1": 1}
    [transfer] = await decisions(stack.stub, pb.DECISION_KIND_TRANSFER_AGENT)
    assert transfer.agent_id == "tech-1"
    assert len(await decisions(stack.stub)) == RACERS
