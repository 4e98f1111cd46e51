"""Fair load through the real edge and the REAL routing service (SQLite file and PostgreSQL, the TechCorp
policy with its `fair_load` caps, the demo agents and customers): a critical call skips the enterprise
senior still in cool-down after the previous critical call, the next one takes her over the cap when
nobody else is free, and the trace, the queue status and the metrics say so."""

from __future__ import annotations

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.fair_load import STAGE as FAIR_LOAD
from routing_service.domain.fair_load import gini
from routing_service.metrics import ROUTING_METRICS
from tests.edge.edge_support import RealStack, decision_of
from tests.edge.test_real_routing_uncertainty import transfer_request

LINUS = "+15550100101"  # ent-1, capacity 2
MARGARET = "+15550100102"  # ent-2, capacity 1
OUTAGE = "Production is down for every customer: an outage since this morning"


async def critical_call(stack: RealStack, call_id: str) -> str:
    """A critical escalation of the premium demo customer; the number it is transferred to."""
    response = await stack.edge.post(
        transfer_request(
            call_id,
            "tc-1",
            issue_category="technical",
            complexity_level="critical",
            customer_context=OUTAGE,
        )
    )
    assert response.status_code == 200
    number: str = response.json()["destination"]["number"]
    return number


def over_cap_count() -> float:
    return (
        ROUTING_METRICS.registry.get_sample_value(
            "escalade_routing_over_cap_reservations_total", {"team": "enterprise"}
        )
        or 0.0
    )


async def test_a_senior_in_cooldown_is_skipped_then_taken_over_the_cap_when_nobody_else_is_free(
    stack: RealStack,
) -> None:
    over_before = over_cap_count()
    await stack.stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="ent-2", status=pb.AGENT_STATUS_OFFLINE)
    )
    assert await critical_call(stack, "fair-1") == LINUS
    await stack.stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="fair-1", reason="ended"))
    # Margaret comes on after Linus freed: by least busy and longest idle alone, Linus would be next.
    await stack.stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="ent-2", status=pb.AGENT_STATUS_AVAILABLE)
    )

    assert await critical_call(stack, "fair-2") == MARGARET
    skipped = await decision_of(stack, "fair-2")
    [step] = [s for s in skipped.trace if s.stage == FAIR_LOAD]
    assert (step.subject, step.outcome) == ("ent-1", pb.TRACE_OUTCOME_SKIPPED)
    assert "critical cool-down until" in step.detail
    assert "3 min after the critical call" in step.detail

    # Margaret is full (capacity 1) and in cool-down herself: Linus is the only one, taken over his cap.
    assert await critical_call(stack, "fair-3") == LINUS
    taken = await decision_of(stack, "fair-3")
    [chosen] = [s for s in taken.trace if s.stage == FAIR_LOAD and s.outcome == pb.TRACE_OUTCOME_CHOSEN]
    assert chosen.subject == "ent-1"
    assert chosen.detail.startswith("taken over cap (critical cool-down until")
    assert over_cap_count() == over_before + 1

    queues = await stack.stub.GetQueueStatus(pb.GetQueueStatusRequest())
    load = {t.team_id: t.load_last_hour for t in queues.teams}
    enterprise = load["enterprise"]
    assert (enterprise.specialists, enterprise.escalations, enterprise.most, enterprise.fewest) == (
        2,
        3,
        2,
        1,
    )
    assert enterprise.gini == pytest.approx(gini([2, 1]))
    assert load["technical"].escalations == 0
