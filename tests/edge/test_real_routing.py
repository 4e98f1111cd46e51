"""The edge against the REAL routing service: RoutingServer on 127.0.0.1:0 with a real store (SQLite file
and PostgreSQL), the TechCorp policy, demo agents and customers; the edge's outbox shares the store's
database, as it does by default. The seed's scenarios come out as the tutorial routes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import SecretStr

from routing_service.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from tests.edge.edge_support import SECRET, Edge, audit, check_destination_numbers, load_fixture, running_edge
from tests.support.routing import techcorp_routing
from webhook_edge.settings import EdgeSettings

ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"
ENTERPRISE_CALL = "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"


@dataclass
class Stack:
    edge: Edge
    stub: pb_grpc.RoutingServiceAsyncStub


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with techcorp_routing(database_url) as routing:
        edge_settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            routing_deadline_ms=5000,
            database_url=database_url,
        )
        async with running_edge(edge_settings) as edge:
            yield Stack(edge, routing.stub)


async def decision_of(stack: Stack, call_id: str) -> pb.Decision:
    return (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=call_id))).decision


async def active(stack: Stack) -> dict[str, int]:
    reply = await stack.stub.ListAgents(pb.ListAgentsRequest(page_size=1000))
    return {a.agent_id: a.active_assignments for a in reply.agents if a.active_assignments}


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
    stack: Stack, vapi_sdk: SimpleNamespace, fixture: str
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


async def test_trace_says_arguments_were_missing_when_none_were_sent(stack: Stack) -> None:
    doc = load_fixture("transfer-destination-request.no-tool-arguments.json")
    await stack.edge.post(doc)
    decision = await decision_of(stack, doc["message"]["call"]["id"])
    assert any("no escalateToSupport arguments" in step.detail for step in decision.trace)


async def test_specialist_is_released_when_call_ends(stack: Stack) -> None:
    await stack.edge.post(load_fixture(ENTERPRISE))
    held = await active(stack)
    assert sum(held.values()) == 1 and set(held) <= {"ent-1", "ent-2"}
    response = await stack.edge.post(load_fixture("status-update.ended.json"))
    assert response.status_code == 200 and response.json() == {}
    assert await active(stack) == {}


async def test_duplicates_reserve_once_and_answer_the_same_when_delivered_concurrently(stack: Stack) -> None:
    doc = load_fixture(ENTERPRISE)
    replies = await asyncio.gather(*(stack.edge.post(doc) for _ in range(5)))
    assert len({r.text for r in replies}) == 1
    assert sum((await active(stack)).values()) == 1


async def test_callback_is_recorded_when_specialists_are_busy(
    stack: Stack, vapi_sdk: SimpleNamespace
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
    assert entry.payload["decision_id"] == decision.decision_id
    assert (entry.payload["team_id"], entry.payload["tier"]) == ("technical", "premium")
    assert entry.payload["caller_number"] == "+1111111111"
    assert entry.payload["priority"] == decision.callback.priority
    assert len(await stack.edge.outbox.pending()) == 1


async def test_review_is_recorded_when_escalated_call_reports_end(stack: Stack) -> None:
    await stack.edge.post(load_fixture(ENTERPRISE))
    decision = await decision_of(stack, ENTERPRISE_CALL)
    await stack.edge.post(load_fixture("end-of-call-report.escalated.json"))
    entry = await stack.edge.outbox.get(f"review-{ENTERPRISE_CALL}")
    assert entry is not None and entry.payload["decision_id"] == decision.decision_id


async def test_review_is_not_recorded_when_call_was_not_escalated(stack: Stack) -> None:
    await stack.edge.post(load_fixture("end-of-call-report.escalated.json"))
    assert await stack.edge.outbox.pending() == []


async def test_tool_calls_path_reaches_the_same_routing(stack: Stack) -> None:
    doc = load_fixture("tool-calls.escalate-to-support.json")
    del doc["message"]["call"]["monitor"]
    response = await stack.edge.post(doc)
    [result] = response.json()["results"]
    decision = await decision_of(stack, doc["message"]["call"]["id"])
    assert decision.tool_call_id == result["toolCallId"]
    assert result["result"] == decision.caller_message
