"""Uncertain escalations through the real edge and the REAL routing service (SQLite file and PostgreSQL,
the TechCorp policy with its `uncertainty` section, the demo agents and customers): the function tool is
asked to confirm the category, the transfer tool gets the union of candidate teams, a call that needs a
second decision after an uncertain one is counted, and the trace says why each time."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.metrics import ROUTING_METRICS
from tests.edge.edge_support import RealStack, active, decision_of, load_fixture
from tests.service.grpc_helpers import field_violations

REFUND = "I was charged twice this month and need a refund"
UNCERTAINTY = "uncertainty"


def tool_call(call_id: str, tool_call_id: str, **arguments: Any) -> dict[str, Any]:
    """A `tool-calls` message of the premium demo customer (+1111111111) without a control URL."""
    doc = load_fixture("tool-calls.escalate-to-support.json")
    message = doc["message"]
    message["call"]["id"] = call_id
    del message["call"]["monitor"]
    message.pop("toolWithToolCallList", None)
    [entry] = message["toolCallList"]
    entry["id"] = tool_call_id
    entry["function"]["arguments"] = json.dumps(arguments)
    return doc


def transfer_request(call_id: str, tool_call_id: str, **arguments: Any) -> dict[str, Any]:
    """A `transfer-destination-request` of the premium demo customer whose last tool call has `arguments`
    (the transcript says what the customer context says)."""
    doc = load_fixture("transfer-destination-request.premium-technical-advanced.json")
    doc["message"]["call"]["id"] = call_id
    doc["message"]["artifact"]["transcript"] = f"User: {arguments.get('customer_context', '')}"
    last = doc["message"]["artifact"]["messages"][-1]["toolCalls"][-1]
    last["id"] = tool_call_id
    last["function"]["arguments"] = json.dumps(arguments)
    return doc


def steps(decision: pb.Decision) -> dict[str, str]:
    return {s.subject: s.detail for s in decision.trace if s.stage == UNCERTAINTY}


def counted(name: str, **labels: str) -> float:
    return ROUTING_METRICS.registry.get_sample_value(name, labels) or 0.0


async def technical_team_offline(stack: RealStack) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_OFFLINE)
        )


async def test_function_tool_is_asked_to_confirm_then_transfers_the_confirmed_category(
    stack: RealStack,
) -> None:
    asked_before = counted("escalade_routing_uncertain_decisions_total", team="none", action="confirm")
    first = await stack.edge.post(
        tool_call(
            "call-u1",
            "tc-1",
            issue_category="technical",
            complexity_level="intermediate",
            customer_context=REFUND,
            confidence=0.9,
        )
    )
    [result] = first.json()["results"]

    assert first.status_code == 200
    assert result["toolCallId"] == "tc-1"
    assert "is it technical, or billing?" in result["result"]
    confirm = await decision_of(stack, "call-u1")
    assert confirm.kind == pb.DECISION_KIND_CONFIRM_CATEGORY
    assert "confidence 0.00 (lower of stated 0.90 and agreement 0.00)" in steps(confirm)["low-confidence"]
    assert await active(stack) == {}  # nothing reserved while the assistant asks
    assert counted("escalade_routing_uncertain_decisions_total", team="none", action="confirm") == (
        asked_before + 1
    )

    # the caller says it is billing: the assistant escalates again, sure now
    again = await stack.edge.post(
        tool_call(
            "call-u1",
            "tc-2",
            issue_category="billing",
            complexity_level="intermediate",
            customer_context=REFUND,
            confidence=1,
        )
    )
    [second] = again.json()["results"]
    decision = await decision_of(stack, "call-u1")

    assert (decision.kind, decision.team_id, decision.agent_id) == (
        pb.DECISION_KIND_TRANSFER_AGENT,
        "billing",
        "billing-1",
    )
    assert "confidence 1.00" in steps(decision)["confidence"]
    assert second["result"].startswith("The transfer could not be started")  # this call has no control URL


async def test_transfer_tool_gets_the_union_of_candidate_teams_instead_of_a_queue(stack: RealStack) -> None:
    await technical_team_offline(stack)
    response = await stack.edge.post(
        transfer_request(
            "call-u2",
            "tc-1",
            issue_category="technical",
            complexity_level="intermediate",
            customer_context=REFUND,
        )
    )

    assert response.status_code == 200
    assert response.json()["destination"]["number"] == "+15550100301"  # Barbara, billing
    decision = await decision_of(stack, "call-u2")
    assert (decision.team_id, decision.agent_id) == ("billing", "billing-1")
    assert "union of the candidate teams technical, billing" in steps(decision)["union"]
    assert any("union: specialist of team billing reserved" in s.detail for s in decision.trace)


async def test_a_second_transfer_after_an_uncertain_one_is_counted_against_its_team(stack: RealStack) -> None:
    before = counted("escalade_routing_uncertain_second_transfers_total", team="technical")
    arguments = {
        "issue_category": "technical",
        "complexity_level": "intermediate",
        "customer_context": REFUND,
    }
    first = await stack.edge.post(transfer_request("call-u3", "tc-1", **arguments))
    assert first.json()["destination"]["number"] == "+15550100201"  # the technical team had someone free
    # the specialist did not take it: the assistant escalates again in the same call
    arguments["issue_category"] = "billing"
    await stack.edge.post(transfer_request("call-u3", "tc-2", **arguments, confidence=1.0))

    decision = await decision_of(stack, "call-u3")
    assert decision.team_id == "billing"
    assert "(transfer_agent to technical) was uncertain" in steps(decision)["second-transfer"]
    assert counted("escalade_routing_uncertain_second_transfers_total", team="technical") == before + 1
    queues = await stack.stub.GetQueueStatus(pb.GetQueueStatusRequest())
    by_team = {t.team_id: t for t in queues.teams}
    assert (
        by_team["technical"].uncertain_decisions_last_hour,
        by_team["technical"].uncertain_second_transfers_last_hour,
    ) == (1, 1)
    assert by_team["billing"].uncertain_decisions_last_hour == 0  # the second decision was sure
    assert not queues.uncertainty_counts_capped


async def test_an_unusable_confidence_is_ignored_and_traced(stack: RealStack) -> None:
    await stack.edge.post(
        tool_call("call-u4", "tc-1", issue_category="technical", customer_context="An error", confidence=7)
    )

    decision = await decision_of(stack, "call-u4")
    assert any("ignored confidence outside 0-1" in s.detail for s in decision.trace)
    assert "no confidence stated" in steps(decision)["confidence"]


async def test_routing_refuses_a_confidence_outside_0_to_1_naming_the_field(stack: RealStack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stack.stub.ResolveEscalation(pb.ResolveEscalationRequest(call_id="call-u5", confidence=1.5))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [name for name, _ in field_violations(raised.value)] == ["confidence"]
