"""The edge against the REAL routing service: RoutingServer on 127.0.0.1:0 with a real store (SQLite file
and PostgreSQL), the TechCorp policy, demo agents and customers; the edge's outbox shares the store's
database, as it does by default. The seed's scenarios come out as the tutorial routes them."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import (
    RealStack,
    active,
    audit,
    check_destination_numbers,
    decision_of,
    load_fixture,
)
from workflows.inputs import EscalationReviewInput, QueueCallbackInput

ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"
ENTERPRISE_CALL = "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"


def assert_vapi_valid(sdk: SimpleNamespace, body: dict[str, Any]) -> None:
    model = sdk.TransferResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    check_destination_numbers(body["destination"], problems)
    assert problems == []


# fixture: (team, kind, destination prefix). A reserved specialist gets the policy's specialist transfer
# (warm-transfer-say-summary, the seed's getAvailableSpecialist); a team line its team's mode.
SEED = {
    ENTERPRISE: ("enterprise", pb.DECISION_KIND_TRANSFER_AGENT, "+155501001"),
    "transfer-destination-request.standard-billing-basic.json": (
        "billing",
        pb.DECISION_KIND_TRANSFER_AGENT,
        "+15550100301",
    ),
    "transfer-destination-request.premium-technical-advanced.json": (
        "technical",
        pb.DECISION_KIND_TRANSFER_AGENT,
        "+15550100201",
    ),
    "transfer-destination-request.unknown-caller-outage-critical.json": (
        "enterprise",
        pb.DECISION_KIND_TRANSFER_AGENT,
        "+155501001",
    ),
    "transfer-destination-request.legacy-functioncall.json": (
        "billing",
        pb.DECISION_KIND_TRANSFER_AGENT,
        "+15550100301",
    ),
    "transfer-destination-request.web-call-no-customer-number.json": (
        "product",
        pb.DECISION_KIND_TRANSFER_TEAM,
        "+15550100400",
    ),
    "transfer-destination-request.no-tool-arguments.json": (
        "enterprise",
        pb.DECISION_KIND_TRANSFER_AGENT,
        "+155501001",
    ),
}


@pytest.mark.parametrize("fixture", sorted(SEED))
async def test_seed_scenario_is_routed_as_the_tutorial_when_fixture_is(
    stack: RealStack, vapi_sdk: SimpleNamespace, fixture: str
) -> None:
    team, kind, prefix = SEED[fixture]
    mode = (
        "warm-transfer-say-summary"
        if kind == pb.DECISION_KIND_TRANSFER_AGENT
        else "warm-transfer-say-message"
    )
    doc = load_fixture(fixture)
    response = await stack.edge.post(doc)
    assert response.status_code == 200
    body = response.json()
    assert_vapi_valid(vapi_sdk, body)
    destination = body["destination"]
    assert destination["number"].startswith(prefix)
    assert destination["transferPlan"]["mode"] == mode
    if mode == "warm-transfer-say-summary":
        contents = [m["content"] for m in destination["transferPlan"]["summaryPlan"]["messages"]]
        assert any("{{transcript}}" in c for c in contents)
    else:
        assert destination["transferPlan"]["message"]
    decision = await decision_of(stack, doc["message"]["call"]["id"])
    assert (decision.team_id, decision.kind) == (team, kind)
    assert decision.trace and decision.reason


async def test_trace_says_arguments_were_missing_when_none_were_sent(stack: RealStack) -> None:
    doc = load_fixture("transfer-destination-request.no-tool-arguments.json")
    await stack.edge.post(doc)
    decision = await decision_of(stack, doc["message"]["call"]["id"])
    assert any("no escalateToSupport arguments" in step.detail for step in decision.trace)


PREMIUM = "transfer-destination-request.premium-technical-advanced.json"


async def only_tech_1_with_capacity_1(stack: RealStack) -> None:
    """The issue's setting: one technical specialist able to take the call, with capacity 1."""
    await stack.stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="tech-2", status=pb.AGENT_STATUS_OFFLINE)
    )
    agents = (await stack.stub.ListAgents(pb.ListAgentsRequest(page_size=1000))).agents
    [tech_1] = [a for a in agents if a.agent_id == "tech-1"]
    tech_1.capacity = 1
    await stack.stub.UpsertAgent(pb.UpsertAgentRequest(agent=tech_1))


def call(fixture: str, call_id: str) -> dict[str, Any]:
    doc = load_fixture(fixture)
    doc["message"]["call"]["id"] = call_id
    return doc


def event(name: str, call_id: str, **changes: Any) -> dict[str, Any]:
    doc = call(name, call_id)
    doc["message"].update(changes)
    return doc


async def agent(stack: RealStack, agent_id: str) -> pb.Agent:
    agents = (await stack.stub.ListAgents(pb.ListAgentsRequest(page_size=1000))).agents
    [found] = [a for a in agents if a.agent_id == agent_id]
    return found


async def test_specialist_who_picked_up_is_not_offered_the_next_call(stack: RealStack) -> None:
    """Issue 15, reproduction 1: escalate A -> the specialist; forwarding, then ended with
    assistant-forwarded-call for A; escalate B -> NOT the same specialist (they are talking to A)."""
    await only_tech_1_with_capacity_1(stack)
    first = (await stack.edge.post(call(PREMIUM, "call-a"))).json()["destination"]
    assert first["number"] == "+15550100201"
    for doc in (
        event("status-update.forwarding.json", "call-a"),
        event("status-update.ended.json", "call-a", endedReason="assistant-forwarded-call"),
    ):
        response = await stack.edge.post(doc)
        assert response.status_code == 200 and response.json() == {}
    tech_1 = await agent(stack, "tech-1")
    assert tech_1.activity == pb.AGENT_ACTIVITY_TALKING and tech_1.active_assignments == 1
    second = (await stack.edge.post(call(PREMIUM, "call-b"))).json()["destination"]
    assert second["number"] != "+15550100201"
    assert (await decision_of(stack, "call-b")).kind == pb.DECISION_KIND_CALLBACK
    # the specialist's side says the conversation is over: free again (no wrap-up asked); call B's callback
    # is queued ahead of any new caller, so freedom is read from the listing
    await stack.stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a", skip_wrap_up=True))
    tech_1 = await agent(stack, "tech-1")
    assert tech_1.activity == pb.AGENT_ACTIVITY_AVAILABLE and tech_1.active_assignments == 0


@pytest.mark.parametrize(
    "ending",
    [
        ("status-update.ended.json", {"endedReason": "customer-ended-call"}),
        ("status-update.ended.transfer-no-answer.json", {}),
        ("transfer-update.no-answer.json", {}),
    ],
    ids=["ended-before-forwarding", "forwarding-no-answer", "transfer-update-no-answer"],
)
async def test_specialist_is_free_again_when_the_call_never_reached_them(
    stack: RealStack, ending: tuple[str, dict[str, Any]]
) -> None:
    await only_tech_1_with_capacity_1(stack)
    await stack.edge.post(call(PREMIUM, "call-a"))
    assert (await active(stack)) == {"tech-1": 1}
    name, changes = ending
    response = await stack.edge.post(event(name, "call-a", **changes))
    assert response.status_code == 200 and response.json() == {}
    assert await active(stack) == {}
    assert (await stack.edge.post(call(PREMIUM, "call-b"))).json()["destination"]["number"] == "+15550100201"


async def test_duplicates_reserve_once_and_answer_the_same_when_delivered_concurrently(
    stack: RealStack,
) -> None:
    doc = load_fixture(ENTERPRISE)
    replies = await asyncio.gather(*(stack.edge.post(doc) for _ in range(5)))
    assert len({r.text for r in replies}) == 1
    assert sum((await active(stack)).values()) == 1


async def test_callback_is_recorded_when_specialists_are_busy(
    stack: RealStack, vapi_sdk: SimpleNamespace
) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    doc = load_fixture("transfer-destination-request.premium-technical-advanced.json")
    first = await stack.edge.post(doc)
    second = await stack.edge.post(doc)
    assert first.json() == second.json()
    body = first.json()
    assert_vapi_valid(vapi_sdk, body)
    assert body["destination"]["number"] == "+15550100600"
    assert "priority queue" in body["destination"]["message"]
    call_id = doc["message"]["call"]["id"]
    entry = await stack.edge.outbox.get(f"callback-{call_id}")
    assert entry is not None
    decision = await decision_of(stack, call_id)
    assert decision.kind == pb.DECISION_KIND_CALLBACK
    data = entry.input()
    assert isinstance(data, QueueCallbackInput)
    assert data.decision_id == decision.decision_id
    assert (data.team_id, data.tier) == ("technical", "premium")
    assert data.customer_number == "+1111111111"
    assert data.priority == decision.callback.priority
    assert len(await stack.edge.outbox.pending()) == 1


async def test_review_is_recorded_when_escalated_call_reports_end(stack: RealStack) -> None:
    await stack.edge.post(load_fixture(ENTERPRISE))
    decision = await decision_of(stack, ENTERPRISE_CALL)
    await stack.edge.post(load_fixture("end-of-call-report.escalated.json"))
    entry = await stack.edge.outbox.get(f"review-{ENTERPRISE_CALL}")
    assert decision.decision_id, "recorded because routing has the call's decision"
    assert entry is not None
    data = entry.input()
    assert isinstance(data, EscalationReviewInput)
    assert (data.call_id, data.ended_reason) == (ENTERPRISE_CALL, "assistant-forwarded-call")
    assert (data.transfer_statuses, data.destination) == (["connected"], "+15550100110")


async def test_review_is_not_recorded_when_call_was_not_escalated(stack: RealStack) -> None:
    await stack.edge.post(load_fixture("end-of-call-report.not-escalated.json"))
    assert await stack.edge.outbox.pending() == []


async def test_review_is_recorded_for_an_escalation_answered_without_routing(stack: RealStack) -> None:
    """Real routing holds no decision for the call (it was down when the transfer was asked for, and the
    fallback line answered): the report shows the escalation, so the review is recorded all the same."""
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await decision_of(stack, ENTERPRISE_CALL)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    await stack.edge.post(load_fixture("end-of-call-report.escalated.json"))
    entry = await stack.edge.outbox.get(f"review-{ENTERPRISE_CALL}")
    assert entry is not None and entry.kind == "review"


async def test_tool_calls_path_reaches_the_same_routing(stack: RealStack) -> None:
    doc = load_fixture("tool-calls.escalate-to-support.json")
    del doc["message"]["call"]["monitor"]
    response = await stack.edge.post(doc)
    [result] = response.json()["results"]
    decision = await decision_of(stack, doc["message"]["call"]["id"])
    assert decision.tool_call_id == result["toolCallId"]
    # no control URL: the decision stands, but the assistant is told the transfer could not start
    assert result["result"].startswith("The transfer could not be started")


async def test_second_escalation_from_the_same_call_moves_on_and_keeps_the_assistant_on(
    stack: RealStack, vapi_sdk: SimpleNamespace
) -> None:
    """Issue 15, reproduction 2: the transfer was not answered and the assistant asks again in the same call
    (new tool-call id): not the same specialist, and the reply keeps the assistant on a failed transfer."""
    await only_tech_1_with_capacity_1(stack)
    first = (await stack.edge.post(call(PREMIUM, "call-a"))).json()
    assert_vapi_valid(vapi_sdk, first)
    assert first["destination"]["number"] == "+15550100201"
    assert first["destination"]["transferPlan"]["fallbackPlan"]["endCallEnabled"] is False
    again = call(PREMIUM, "call-a")
    again["message"]["artifact"]["messages"][-1]["toolCalls"][-1]["id"] = "call_asked_again"
    replies = [(await stack.edge.post(again)).json() for _ in range(2)]  # the retry gets the same answer
    assert replies[0] == replies[1]
    assert_vapi_valid(vapi_sdk, replies[0])
    assert replies[0]["destination"]["number"] != "+15550100201"
    decision = await decision_of(stack, "call-a")
    assert decision.tool_call_id == "call_asked_again" and "tech-1" in decision.missed_agent_ids
