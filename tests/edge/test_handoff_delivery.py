"""The handoff packet where the specialist works: the escalation tool's optional arguments read by the edge,
the decision id in the SIP headers of SIP destinations, and the packet in the specialist's summary prompt,
every reply validated against Vapi's SDK models; then through the REAL routing service (SQLite and
PostgreSQL) from the tool's arguments to `GetHandoffPacket`."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace
from typing import Any

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import (
    RealStack,
    audit,
    check_destination_numbers,
    load_fixture,
    make_decision,
)
from webhook_edge.provisioning import HANDOFF_PARAMETERS, escalation_function
from webhook_edge.translate import DECISION_ID_HEADER, resolve_request, transfer_response
from webhook_edge.vapi_models import parse_body, read_arguments

REQUEST = pb.ResolveEscalationRequest(call_id="c-sip", tool_call_id="t-1", issue_category="technical")
PREMIUM = "transfer-destination-request.premium-technical-advanced.json"
ARGUMENTS = {
    "issue_category": "technical",
    "complexity_level": "advanced",
    "customer_context": "Premium Support customer; webhook integration",
    "escalation_reason": "Events arrive out of order under load.",
    "summary": "Webhook events from the ticketing integration arrive out of order since Monday.",
    "steps_tried": ["replayed the failed events", "checked the retry settings"],
    "account_id": "AC-20417",
    "order_id": "TC-000555",
    "error_codes": ["WH-409", "WH-429"],
}


def _valid(sdk: SimpleNamespace, body: dict[str, Any]) -> Any:
    model = sdk.TransferResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    check_destination_numbers(body["destination"], problems)
    assert problems == []
    return model


# ---------------------------------------------------------------------------------------------------------
# Tool arguments
# ---------------------------------------------------------------------------------------------------------
def test_the_tools_packet_arguments_are_read_and_sent_to_routing() -> None:
    arguments = read_arguments(json.dumps(ARGUMENTS), tool_call_id="t-1", source="artifact")
    assert arguments.problem == ""
    assert arguments.summary.startswith("Webhook events")
    assert arguments.steps_tried == ("replayed the failed events", "checked the retry settings")
    assert arguments.entities == (
        ("account", "AC-20417"),
        ("order", "TC-000555"),
        ("error_code", "WH-409"),
        ("error_code", "WH-429"),
    )
    message = parse_body(json.dumps(load_fixture(PREMIUM)).encode())
    request = resolve_request(message, arguments)
    assert request.assistant_summary == arguments.summary
    assert list(request.steps_tried) == list(arguments.steps_tried)
    assert [(e.kind, e.value) for e in request.entities] == list(arguments.entities)


@pytest.mark.parametrize(
    ("given", "steps", "entities", "problem"),
    [
        ({}, (), (), ""),
        ({"steps_tried": "one step", "error_codes": "E1"}, ("one step",), (("error_code", "E1"),), ""),
        ({"steps_tried": {"a": 1}}, (), (), "ignored steps_tried that is not a list of strings"),
        ({"steps_tried": ["ok", 5, None]}, ("ok", "5"), (), "ignored entries of steps_tried"),
        ({"account_id": ["A1", {"x": 1}]}, (), (("account", "A1"),), "ignored entries of account_id"),
        ({"steps_tried": [" "] * 3 + ["x"] * 40}, ("x",) * 20, (), "ignored entries of steps_tried"),
    ],
)
def test_packet_arguments_are_optional_and_odd_ones_are_said_not_refused(
    given: dict[str, Any], steps: tuple[str, ...], entities: tuple[tuple[str, str], ...], problem: str
) -> None:
    arguments = read_arguments({"issue_category": "billing", **given}, tool_call_id="t", source="artifact")
    assert arguments.issue_category == "billing"
    assert (arguments.steps_tried, arguments.entities) == (steps, entities)
    assert problem in arguments.problem if problem else arguments.problem == ""


def test_provisioning_offers_the_packet_arguments_as_optional_parameters() -> None:
    from tests.support.routing_builders import techcorp_policy

    function = escalation_function(techcorp_policy())
    properties = function["parameters"]["properties"]
    assert set(HANDOFF_PARAMETERS) <= set(properties)
    assert not set(HANDOFF_PARAMETERS) & set(function["parameters"]["required"])
    # without the policy's handoff section the tool stays the seed's (as without `uncertainty`)
    bare = escalation_function(dataclasses.replace(techcorp_policy(), handoff=None, uncertainty=None))
    assert set(bare["parameters"]["properties"]) == {
        "issue_category",
        "complexity_level",
        "customer_context",
        "escalation_reason",
    }


# ---------------------------------------------------------------------------------------------------------
# SIP headers
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode",
    [pb.TRANSFER_MODE_BLIND_TRANSFER, pb.TRANSFER_MODE_BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER],
)
def test_sip_destinations_carry_the_decision_id_header(vapi_sdk: SimpleNamespace, mode: int) -> None:
    decision = make_decision(
        REQUEST,
        sip_uri="sip:desk-7@pbx.techcorp.example.com",
        mode=mode,  # type: ignore[arg-type]
        summary=(("system", "Known: Summary: printer on fire."), ("user", "{{transcript}}")),
    )
    body = transfer_response(decision)
    model = _valid(vapi_sdk, body)
    destination = body["destination"]
    assert destination["sipHeaders"] == {
        DECISION_ID_HEADER: decision.decision_id,
        "X-Escalade-Call-Id": "c-sip",
    }
    assert model.destination.sip_headers == destination["sipHeaders"]
    if mode == pb.TRANSFER_MODE_BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER:
        # Vapi puts the summary its summaryPlan makes into X-Transfer-Summary
        assert "printer on fire" in destination["transferPlan"]["summaryPlan"]["messages"][0]["content"]


def test_number_destinations_have_no_sip_headers_and_odd_ids_are_made_header_safe(
    vapi_sdk: SimpleNamespace,
) -> None:
    assert "sipHeaders" not in transfer_response(make_decision(REQUEST))["destination"]
    odd = make_decision(REQUEST, sip_uri="sip:desk@pbx.example.com")
    odd.call_id = "call\r\nX-Injected: 1 ü"
    headers = transfer_response(odd)["destination"]["sipHeaders"]
    assert headers["X-Escalade-Call-Id"] == "callX-Injected:1"
    _valid(vapi_sdk, transfer_response(odd))


# ---------------------------------------------------------------------------------------------------------
# Through the real routing service
# ---------------------------------------------------------------------------------------------------------
def _escalation(call_id: str) -> dict[str, Any]:
    doc = load_fixture(PREMIUM)
    doc["message"]["call"]["id"] = call_id
    tool_call = doc["message"]["artifact"]["messages"][-1]["toolCalls"][-1]
    tool_call["function"]["arguments"] = json.dumps(ARGUMENTS)
    return doc


async def test_the_specialist_gets_the_packet_the_tool_arguments_filled(
    stack: RealStack, vapi_sdk: SimpleNamespace
) -> None:
    response = await stack.edge.post(_escalation("call-packet"))
    assert response.status_code == 200
    body = response.json()
    _valid(vapi_sdk, body)
    plan = body["destination"]["transferPlan"]
    assert plan["mode"] == "warm-transfer-say-summary"  # TechCorp's specialist transfer
    prompt = plan["summaryPlan"]["messages"][-1]["content"]
    assert "What routing knows: Summary: Webhook events from the ticketing integration" in prompt
    assert "Already tried: replayed the failed events; checked the retry settings." in prompt
    assert "Account AC-20417" in prompt and "Order TC-000555" in prompt and "WH-409" in prompt
    assert "{{transcript}}" in prompt and "{handoff_summary}" not in prompt
    assert "What routing knows" not in body["destination"].get("message", "")

    reply = await stack.stub.GetHandoffPacket(pb.GetHandoffPacketRequest(call_id="call-packet"))
    packet = reply.packet
    assert [(e.kind, e.value, e.source) for e in packet.entities][:4] == [
        ("account", "AC-20417", "assistant"),
        ("order", "TC-000555", "assistant"),
        ("error_code", "WH-409", "assistant"),
        ("error_code", "WH-429", "assistant"),
    ]
    assert packet.caller_number == load_fixture(PREMIUM)["message"]["call"]["customer"]["number"]
    assert reply.agent_id and reply.kind == pb.DECISION_KIND_TRANSFER_AGENT


async def test_a_sip_specialist_gets_the_decision_id_in_the_sip_headers(
    stack: RealStack, vapi_sdk: SimpleNamespace
) -> None:
    await stack.stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="tech-2", status=pb.AGENT_STATUS_OFFLINE)
    )
    agents = (await stack.stub.ListAgents(pb.ListAgentsRequest(page_size=1000))).agents
    [tech_1] = [a for a in agents if a.agent_id == "tech-1"]
    tech_1.sip_uri = "sip:tech-1@pbx.techcorp.example.com"
    await stack.stub.UpsertAgent(pb.UpsertAgentRequest(agent=tech_1))
    body = (await stack.edge.post(_escalation("call-sip"))).json()
    _valid(vapi_sdk, body)
    destination = body["destination"]
    assert destination["sipUri"] == "sip:tech-1@pbx.techcorp.example.com"
    decision = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id="call-sip"))).decision
    assert destination["sipHeaders"][DECISION_ID_HEADER] == decision.decision_id
    by_header = await stack.stub.GetHandoffPacket(
        pb.GetHandoffPacketRequest(decision_id=destination["sipHeaders"][DECISION_ID_HEADER])
    )
    assert by_header.packet.summary == ARGUMENTS["summary"]
