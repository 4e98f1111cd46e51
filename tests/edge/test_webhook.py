"""The webhook against a controllable routing servicer: every shared fixture, tolerant parsing, the
lifecycle messages, the outbox, duplicates."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from typing import Any

import pydantic
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import (
    Edge,
    RunningFake,
    fixture_names,
    load_fixture,
    make_decision,
    running_edge,
)
from webhook_edge.settings import EdgeSettings
from workflows.inputs import EscalationReviewInput, QueueCallbackInput

TRANSFER_FIXTURES = fixture_names("transfer-destination-request.")
ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"


def only_request(fake: RunningFake) -> pb.ResolveEscalationRequest:
    assert len(fake.servicer.resolve_requests) == 1
    return fake.servicer.resolve_requests[0]


async def recorded_callback(edge: Edge, call_id: str) -> QueueCallbackInput:
    """The callback workflow's input the edge recorded in its outbox for the call."""
    entry = await edge.outbox.get(f"callback-{call_id}")
    assert entry is not None and entry.kind == "callback"
    data = entry.input()
    assert isinstance(data, QueueCallbackInput)
    return data


@pytest.mark.parametrize("name", TRANSFER_FIXTURES)
async def test_transfer_request_gets_decided_destination_when_fixture_is(
    edge: Edge, fake_routing: RunningFake, name: str
) -> None:
    doc = load_fixture(name)
    response = await edge.post(doc)
    assert response.status_code == 200
    destination = response.json()["destination"]
    assert destination["number"] == "+15550100200"
    request = only_request(fake_routing)
    assert request.call_id == doc["message"]["call"]["id"]
    customer = doc["message"].get("customer") or {}
    assert request.caller_number == customer.get("number", "")


async def test_arguments_come_from_last_tool_call_when_history_has_several(
    edge: Edge, fake_routing: RunningFake
) -> None:
    doc = load_fixture(ENTERPRISE)
    messages = doc["message"]["artifact"]["messages"]
    later = copy.deepcopy(messages[-1])
    later["toolCalls"][0]["id"] = "call_second"
    later["toolCalls"][0]["function"]["arguments"] = json.dumps(
        {"issue_category": "billing", "complexity_level": "basic"}
    )
    messages.append(later)
    await edge.post(doc)
    request = only_request(fake_routing)
    assert (request.tool_call_id, request.issue_category, request.complexity) == (
        "call_second",
        "billing",
        pb.COMPLEXITY_BASIC,
    )


async def test_arguments_are_read_when_given_as_object(edge: Edge, fake_routing: RunningFake) -> None:
    doc = load_fixture(ENTERPRISE)
    function = doc["message"]["artifact"]["messages"][-1]["toolCalls"][0]["function"]
    function["arguments"] = json.loads(function["arguments"])
    await edge.post(doc)
    request = only_request(fake_routing)
    assert request.issue_category == "technical" and request.complexity == pb.COMPLEXITY_ADVANCED
    assert request.arguments_problem == ""
    assert request.customer_context.startswith("Enterprise account")


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('{"issue_category": "technical", ', "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (None, "no arguments"),
        ({"issue_category": 5, "complexity_level": "advanced"}, "non-string issue_category"),
        ({"issue_category": "technical", "complexity_level": "extreme"}, "unknown complexity_level"),
    ],
    ids=["truncated-json", "array", "absent", "wrong-type", "unknown-complexity"],
)
async def test_call_is_still_routed_with_problem_noted_when_arguments_are_malformed(
    edge: Edge, fake_routing: RunningFake, arguments: Any, problem: str
) -> None:
    doc = load_fixture(ENTERPRISE)
    doc["message"]["artifact"]["messages"][-1]["toolCalls"][0]["function"]["arguments"] = arguments
    response = await edge.post(doc)
    assert response.status_code == 200
    assert response.json()["destination"]["number"] == "+15550100200"
    request = only_request(fake_routing)
    assert problem in request.arguments_problem
    assert request.caller_number == "+1234567890"


async def test_problem_is_reported_when_no_arguments_exist(edge: Edge, fake_routing: RunningFake) -> None:
    await edge.post(load_fixture("transfer-destination-request.no-tool-arguments.json"))
    request = only_request(fake_routing)
    assert request.arguments_problem == "no escalateToSupport arguments in the message"
    assert (request.issue_category, request.complexity, request.tool_call_id) == ("", 0, "")


async def test_legacy_function_call_parameters_are_read_when_present(
    edge: Edge, fake_routing: RunningFake
) -> None:
    await edge.post(load_fixture("transfer-destination-request.legacy-functioncall.json"))
    request = only_request(fake_routing)
    assert (request.issue_category, request.complexity) == ("account", pb.COMPLEXITY_INTERMEDIATE)
    assert request.arguments_problem == ""


async def test_web_call_is_routed_without_number_when_customer_is_absent(
    edge: Edge, fake_routing: RunningFake
) -> None:
    response = await edge.post(load_fixture("transfer-destination-request.web-call-no-customer-number.json"))
    assert response.status_code == 200
    request = only_request(fake_routing)
    assert request.caller_number == "" and request.issue_category != ""


async def test_flat_seed_body_is_routed_on_the_seed_path(edge: Edge, fake_routing: RunningFake) -> None:
    envelope = load_fixture("transfer-destination-request.legacy-functioncall.json")["message"]
    flat = {
        "type": "transfer-destination-request",
        "functionCall": envelope["functionCall"],
        "customer": {"number": "+0987654321"},
        "call": {"id": "flat-call-1"},
    }
    response = await edge.post(flat, path="/webhook/escalation")
    assert response.status_code == 200
    assert "destination" in response.json()
    request = only_request(fake_routing)
    assert (request.call_id, request.caller_number, request.issue_category) == (
        "flat-call-1",
        "+0987654321",
        "account",
    )


async def test_transcript_and_sip_are_forwarded_when_present(edge: Edge, fake_routing: RunningFake) -> None:
    doc = load_fixture(ENTERPRISE)
    doc["message"]["customer"] = {"sipUri": "sip:caller@example.com"}
    del doc["message"]["call"]["customer"]
    await edge.post(doc)
    request = only_request(fake_routing)
    assert request.caller_sip_uri == "sip:caller@example.com"
    assert request.transcript.startswith("AI: Thanks for calling TechCorp")


async def test_same_answer_is_given_when_delivery_is_duplicated(
    edge: Edge, fake_routing: RunningFake
) -> None:
    """The edge keeps no answers of its own: it asks routing again under the same idempotency key (call id,
    tool call id), and routing's replay of its first decision is what the second delivery answers with. A
    routing stand-in that would decide differently each time shows that the key, not luck, gives the same
    answer."""
    numbers = iter(["+15550100201", "+15550100202"])
    fake_routing.servicer.decide = lambda request: make_decision(request, number=next(numbers))
    doc = load_fixture(ENTERPRISE)
    first = await edge.post(doc)
    second = await edge.post(doc)
    keys = [(r.call_id, r.tool_call_id) for r in fake_routing.servicer.resolve_requests]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert keys[0][0] == doc["message"]["call"]["id"]
    assert first.json()["destination"]["number"] == "+15550100201"
    assert second.json() == first.json()


async def test_callback_is_recorded_once_when_delivered_twice(edge: Edge, fake_routing: RunningFake) -> None:
    fake_routing.servicer.decide = lambda request: make_decision(
        request,
        kind=pb.DECISION_KIND_CALLBACK,
        number="+15550100600",
        caller_message="All specialists are busy. You're in our priority queue.",
        team_id="enterprise",
    )
    doc = load_fixture(ENTERPRISE)
    first = await edge.post(doc)
    second = await edge.post(doc)
    assert first.json() == second.json()
    assert first.json()["destination"]["number"] == "+15550100600"
    data = await recorded_callback(edge, doc["message"]["call"]["id"])
    assert (data.team_id, data.customer_number, data.masked_number) == (
        "enterprise",
        "+1234567890",
        "+1*****7890",
    )
    assert (data.complexity, data.priority) == ("advanced", 7)
    assert data.decision_id
    assert data.context.startswith("Enterprise account")
    assert len(await edge.outbox.pending()) == 1


async def test_callback_is_not_recorded_when_caller_has_no_number(
    edge: Edge, fake_routing: RunningFake
) -> None:
    fake_routing.servicer.decide = lambda request: make_decision(
        request, kind=pb.DECISION_KIND_CALLBACK, number="+15550100600"
    )
    response = await edge.post(load_fixture("transfer-destination-request.web-call-no-customer-number.json"))
    assert response.json()["destination"]["number"] == "+15550100600"
    assert await edge.outbox.pending() == []


async def test_transfer_decision_records_nothing_when_not_a_callback(edge: Edge) -> None:
    await edge.post(load_fixture(ENTERPRISE))
    assert await edge.outbox.pending() == []


async def test_fallback_decision_answers_fallback_line(edge: Edge, fake_routing: RunningFake) -> None:
    fake_routing.servicer.decide = lambda request: make_decision(
        request, kind=pb.DECISION_KIND_FALLBACK, number="+15550100900", caller_message="Connecting you."
    )
    response = await edge.post(load_fixture(ENTERPRISE))
    destination = response.json()["destination"]
    assert destination["number"] == "+15550100900" and destination["message"] == "Connecting you."


async def test_unusable_decision_answers_fallback_line(edge: Edge, fake_routing: RunningFake) -> None:
    fake_routing.servicer.decide = lambda request: make_decision(request, number="+1-555-TECH-SPECIALISTS")
    response = await edge.post(load_fixture(ENTERPRISE))
    assert response.json()["destination"]["number"] == "+15550100900"


ENDED_CALL = "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"


async def test_nothing_is_released_when_call_is_handed_over(edge: Edge, fake_routing: RunningFake) -> None:
    """`ended` + `assistant-forwarded-call` means the specialist has just picked up: it is forwarded as an
    ENDED event for routing to judge, never released by the edge."""
    response = await edge.post(load_fixture("status-update.ended.json"))
    assert response.status_code == 200 and response.json() == {}
    assert fake_routing.servicer.releases == []
    [event] = fake_routing.servicer.call_events
    assert (event.call_id, event.kind, event.ended_reason) == (
        ENDED_CALL,
        pb.CALL_EVENT_KIND_ENDED,
        "assistant-forwarded-call",
    )
    assert event.transfer_status == ""
    assert (
        event.occurred_at.ToMilliseconds() == load_fixture("status-update.ended.json")["message"]["timestamp"]
    )


async def test_forwarding_status_is_forwarded_as_forwarding_event(
    edge: Edge, fake_routing: RunningFake
) -> None:
    response = await edge.post(load_fixture("status-update.forwarding.json"))
    assert response.status_code == 200 and response.json() == {}
    [event] = fake_routing.servicer.call_events
    assert (event.call_id, event.kind, event.ended_reason) == (ENDED_CALL, pb.CALL_EVENT_KIND_FORWARDING, "")
    assert fake_routing.servicer.releases == []


async def test_missed_transfer_ending_is_forwarded_with_its_reason(
    edge: Edge, fake_routing: RunningFake
) -> None:
    await edge.post(load_fixture("status-update.ended.transfer-no-answer.json"))
    [event] = fake_routing.servicer.call_events
    assert (event.kind, event.ended_reason) == (pb.CALL_EVENT_KIND_ENDED, "call.forwarding.no-answer")


@pytest.mark.parametrize("status", ["in-progress", "ringing", "queued", "scheduled", "something-new"])
async def test_nothing_is_forwarded_when_status_is_neither_forwarding_nor_ended(
    edge: Edge, fake_routing: RunningFake, status: str
) -> None:
    doc = load_fixture("status-update.in-progress.json")
    doc["message"]["status"] = status
    response = await edge.post(doc)
    assert response.status_code == 200 and response.json() == {}
    assert fake_routing.servicer.call_events == [] and fake_routing.servicer.releases == []


async def test_transfer_update_is_forwarded_with_the_latest_attempts_status(
    edge: Edge, fake_routing: RunningFake
) -> None:
    doc = load_fixture("transfer-update.no-answer.json")
    earlier = copy.deepcopy(doc["message"]["artifact"]["transfers"][0])
    earlier["status"] = "busy"
    doc["message"]["artifact"]["transfers"].insert(0, earlier)
    response = await edge.post(doc)
    assert response.status_code == 200 and response.json() == {}
    [event] = fake_routing.servicer.call_events
    assert (event.call_id, event.kind, event.transfer_status) == (
        ENDED_CALL,
        pb.CALL_EVENT_KIND_TRANSFER_UPDATE,
        "no-answer",
    )


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"artifact": {}, "transferStatus": "busy"}, "busy"),
        ({"artifact": {"transfers": []}, "status": "failed"}, "failed"),
        ({"artifact": {"transfers": [{"status": "connected"}, {"mode": "blind-transfer"}]}}, ""),
        ({"artifact": {"transfers": "not a list"}}, ""),
    ],
    ids=["own-transferStatus", "own-status", "latest-without-status", "transfers-not-a-list"],
)
async def test_transfer_update_status_falls_back_when_artifact_has_none(
    edge: Edge, fake_routing: RunningFake, patch: dict[str, Any], expected: str
) -> None:
    doc = load_fixture("transfer-update.no-answer.json")
    doc["message"].update(patch)
    assert (await edge.post(doc)).status_code == 200
    [event] = fake_routing.servicer.call_events
    assert event.transfer_status == expected


@pytest.mark.parametrize(
    "name", ["status-update.ended.json", "status-update.forwarding.json", "transfer-update.no-answer.json"]
)
@pytest.mark.parametrize("code", ["UNAVAILABLE", "INTERNAL", "INVALID_ARGUMENT"])
async def test_call_event_is_acknowledged_and_logged_when_routing_fails(
    edge: Edge, fake_routing: RunningFake, name: str, code: str
) -> None:
    from structlog.testing import capture_logs

    fake_routing.servicer.behaviour = "error"
    fake_routing.servicer.error_code = getattr(__import__("grpc").StatusCode, code)
    with capture_logs() as logs:
        response = await edge.post(load_fixture(name))
    assert response.status_code == 200 and response.json() == {}
    [failure] = [e for e in logs if e["event"] == "call_event_failed"]
    assert failure["grpc_code"] == code and "RecordCallEvent" in failure["reason"]


async def test_call_event_is_acknowledged_when_routing_is_too_slow(
    edge: Edge, fake_routing: RunningFake
) -> None:
    fake_routing.servicer.behaviour = "sleep"
    fake_routing.servicer.sleep_seconds = 3.0
    response = await edge.post(load_fixture("status-update.ended.json"))
    assert response.status_code == 200 and response.json() == {}


async def test_review_is_recorded_when_escalated_call_reports_end(edge: Edge) -> None:
    await edge.post(load_fixture(ENTERPRISE))
    response = await edge.post(load_fixture("end-of-call-report.escalated.json"))
    assert response.status_code == 200 and response.json() == {}
    await edge.post(load_fixture("end-of-call-report.escalated.json"))
    entry = await edge.outbox.get("review-0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81")
    assert entry is not None and entry.kind == "review"
    data = entry.input()
    assert isinstance(data, EscalationReviewInput)
    assert data.ended_reason == "assistant-forwarded-call"
    assert data.duration_seconds == pytest.approx(58.9)
    assert data.transfer_statuses == ["connected"]
    assert data.destination == "+15550100110"
    assert data.summary.startswith("An enterprise customer")
    assert data.final_category == ""
    assert len(await edge.outbox.pending()) == 1


async def test_review_carries_final_category_when_analysis_extracts_it(edge: Edge) -> None:
    await edge.post(load_fixture(ENTERPRISE))
    report = load_fixture("end-of-call-report.escalated.json")
    report["message"]["analysis"]["structuredData"] = {"issue_category": "Billing"}
    await edge.post(report)
    entry = await edge.outbox.get("review-0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81")
    assert entry is not None and entry.payload["final_category"] == "billing"


async def test_review_is_not_recorded_when_call_was_never_escalated(edge: Edge) -> None:
    response = await edge.post(load_fixture("end-of-call-report.not-escalated.json"))
    assert response.status_code == 200
    assert await edge.outbox.pending() == []


async def test_review_is_recorded_when_the_report_shows_an_escalation_routing_never_decided(
    edge: Edge, fake_routing: RunningFake
) -> None:
    """Routing was down when the transfer was asked for: an edge answered with the fallback line and no
    decision exists. The report is the only record of the escalation, so its review is not lost."""
    response = await edge.post(load_fixture("end-of-call-report.escalated.json"))
    assert response.status_code == 200 and response.json() == {}
    assert fake_routing.servicer.decisions == {}, "routing answers GetDecision with NOT_FOUND"
    entry = await edge.outbox.get("review-0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81")
    assert entry is not None and entry.kind == "review"
    data = entry.input()
    assert isinstance(data, EscalationReviewInput)
    assert (data.transfer_statuses, data.destination) == (["connected"], "+15550100110")


async def test_review_is_recorded_when_routing_cannot_be_asked(edge: Edge, fake_routing: RunningFake) -> None:
    fake_routing.servicer.behaviour = "error"
    fake_routing.servicer.error_code = __import__("grpc").StatusCode.UNAVAILABLE
    response = await edge.post(load_fixture("end-of-call-report.escalated.json"))
    assert response.status_code == 200
    entry = await edge.outbox.get("review-0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81")
    assert entry is not None and entry.kind == "review"
    data = entry.input()
    assert isinstance(data, EscalationReviewInput)
    assert (data.call_id, data.ended_reason) == (
        "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81",
        "assistant-forwarded-call",
    )
    assert data.transfer_statuses == ["connected"]


@pytest.mark.parametrize("name", ["unknown.some-future-event.json"])
async def test_unknown_type_is_acknowledged_when_sdk_lacks_it(
    edge: Edge, fake_routing: RunningFake, name: str
) -> None:
    response = await edge.post(load_fixture(name))
    assert response.status_code == 200 and response.json() == {}
    assert fake_routing.servicer.resolve_requests == []


async def test_other_tool_is_answered_with_error_entry_when_not_escalation(
    edge: Edge, fake_routing: RunningFake
) -> None:
    response = await edge.post(load_fixture("tool-calls.json"))
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["name"] == "lookupTicketStatus" and result["toolCallId"] == "call_Ty5Gb2Nm8Qw3Xe7Lk1Rz4Uc"
    assert "not handled" in result["error"]
    assert fake_routing.servicer.resolve_requests == []


@pytest.mark.parametrize("routing", ["decides", "fails"])
async def test_transfer_reply_carries_the_configured_failed_transfer_sentence(
    edge_settings: Any, fake_routing: RunningFake, routing: str, vapi_sdk: Any
) -> None:
    from tests.edge.edge_support import running_edge

    if routing == "fails":
        fake_routing.servicer.behaviour = "error"
    settings = edge_settings.model_copy(update={"transfer_failed_message": "They're busy. I'm still here."})
    async with running_edge(settings) as edge:
        body = (await edge.post(load_fixture(ENTERPRISE))).json()
    vapi_sdk.TransferResponse.model_validate(body)
    assert body["destination"]["number"] == ("+15550100200" if routing == "decides" else "+15550100900")
    assert body["destination"]["transferPlan"]["fallbackPlan"] == {
        "message": "They're busy. I'm still here.",
        "endCallEnabled": False,
    }


ORIGINAL_CALL = "7d3e1a90-6f8b-4de5-9bc3-0e9f8d7c6bf8"


def with_original_call_id(doc: dict[str, Any], value: Any) -> dict[str, Any]:
    doc["message"]["call"]["assistantOverrides"] = {
        "variableValues": {"originalCallId": value, "issueCategory": "technical"}
    }
    return doc


@pytest.mark.parametrize("path", ["transfer-destination-request", "tool-calls"])
async def test_callback_call_names_its_original_call_when_escalating(
    edge: Edge, fake_routing: RunningFake, path: str
) -> None:
    name = ENTERPRISE if path == "transfer-destination-request" else "tool-calls.escalate-to-support.json"
    doc = with_original_call_id(load_fixture(name), f"  {ORIGINAL_CALL} ")
    response = await edge.post(doc)
    assert response.status_code == 200
    assert only_request(fake_routing).callback_of_call_id == ORIGINAL_CALL


@pytest.mark.parametrize(
    "value",
    [None, 12345, ["x"], {"id": "x"}, "", "   ", "c" * 201],
    ids=["null", "number", "list", "object", "empty", "blank", "too-long"],
)
async def test_original_call_id_is_ignored_when_not_a_usable_string(
    edge: Edge, fake_routing: RunningFake, value: Any
) -> None:
    response = await edge.post(with_original_call_id(load_fixture(ENTERPRISE), value))
    assert response.status_code == 200 and response.json()["destination"]["number"] == "+15550100200"
    assert only_request(fake_routing).callback_of_call_id == ""


@pytest.mark.parametrize(
    "overrides", [None, "text", {"variableValues": "text"}, {"variableValues": None}, {"other": 1}]
)
async def test_call_is_routed_fresh_when_overrides_are_absent_or_odd(
    edge: Edge, fake_routing: RunningFake, overrides: Any
) -> None:
    doc = load_fixture(ENTERPRISE)
    doc["message"]["call"]["assistantOverrides"] = overrides
    doc["message"]["assistant"] = {"variableValues": {"originalCallId": ORIGINAL_CALL}}  # not the call's
    assert (await edge.post(doc)).status_code == 200
    assert only_request(fake_routing).callback_of_call_id == ""


async def test_callback_input_carries_the_rendered_first_message(
    edge: Edge, fake_routing: RunningFake
) -> None:
    def callback(request: pb.ResolveEscalationRequest) -> pb.Decision:
        decision = make_decision(request, kind=pb.DECISION_KIND_CALLBACK, number="+15550100600")
        decision.callback.first_message = "Hello, this is a call back from Enterprise Support."
        return decision

    fake_routing.servicer.decide = callback
    doc = load_fixture(ENTERPRISE)
    await edge.post(doc)
    data = await recorded_callback(edge, doc["message"]["call"]["id"])
    assert data.first_message == "Hello, this is a call back from Enterprise Support."
    request = only_request(fake_routing)
    assert (data.call_id, data.customer_number) == (request.call_id, request.caller_number)


async def test_callback_input_carries_the_dial_heartbeat_timeout_when_the_edge_sets_one(
    edge_settings: EdgeSettings, fake_routing: RunningFake
) -> None:
    fake_routing.servicer.decide = lambda request: make_decision(
        request, kind=pb.DECISION_KIND_CALLBACK, number="+15550100600"
    )
    assert edge_settings.dial_heartbeat_timeout_seconds == 60, "production's one minute by default"
    settings = edge_settings.model_copy(update={"dial_heartbeat_timeout_seconds": 12})
    async with running_edge(settings) as edge:
        doc = load_fixture(ENTERPRISE)
        await edge.post(doc)
        data = await recorded_callback(edge, doc["message"]["call"]["id"])
    assert data.dial_heartbeat_timeout_seconds == 12


def test_dial_heartbeat_timeout_is_read_from_the_environment_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ESCALADE_DIAL_HEARTBEAT_TIMEOUT_SECONDS", "15")
    assert EdgeSettings().dial_heartbeat_timeout_seconds == 15
    monkeypatch.setenv("ESCALADE_DIAL_HEARTBEAT_TIMEOUT_SECONDS", "0")
    with pytest.raises(pydantic.ValidationError, match="dial_heartbeat_timeout_seconds"):
        EdgeSettings()


REPORT = "end-of-call-report.escalated.json"
OUTPUTS: dict[str, dict[str, Any]] = {
    "5f0c9a2e-1b7d-4c3e-9a8f-6d5e4c3b2a10": {"name": "issue_category", "result": " Billing "},
    "a1b2c3d4-0000-4e5f-8a9b-0c1d2e3f4a5b": {
        "name": "escalation",
        "result": {"issue_category": "technical", "complexity_level": "advanced", "resolved": False},
    },
    "c0ffee00-1111-4222-8333-944455556666": {"name": "csat", "result": 4},
}


async def review_of(edge: Edge, report: dict[str, Any]) -> EscalationReviewInput:
    await edge.post(load_fixture(ENTERPRISE))
    assert (await edge.post(report)).status_code == 200
    entry = await edge.outbox.get("review-0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81")
    assert entry is not None
    data = entry.input()
    assert isinstance(data, EscalationReviewInput)
    return data


async def test_review_carries_structured_outputs_and_prefers_them_for_the_category(edge: Edge) -> None:
    report = load_fixture(REPORT)
    report["message"]["artifact"]["structuredOutputs"] = OUTPUTS
    report["message"]["analysis"]["structuredData"] = {"issue_category": "account"}
    data = await review_of(edge, report)
    assert data.structured_outputs == OUTPUTS
    assert data.final_category == "billing"
    assert data.transfer_statuses == ["connected"]


async def test_review_category_comes_from_the_escalation_output_when_no_issue_category_output(
    edge: Edge,
) -> None:
    report = load_fixture(REPORT)
    report["message"]["artifact"]["structuredOutputs"] = {
        k: v for k, v in OUTPUTS.items() if v["name"] != "issue_category"
    }
    report["message"]["analysis"]["structuredData"] = {"issue_category": "account"}
    assert (await review_of(edge, report)).final_category == "technical"


async def test_review_category_falls_back_to_deprecated_structured_data_when_outputs_lack_it(
    edge: Edge,
) -> None:
    report = load_fixture(REPORT)
    report["message"]["artifact"]["structuredOutputs"] = {"x": {"name": "csat", "result": 5}}
    report["message"]["analysis"]["structuredData"] = {"category": "Account"}
    data = await review_of(edge, report)
    assert data.final_category == "account"
    assert data.structured_outputs == {"x": {"name": "csat", "result": 5}}


@pytest.mark.parametrize(
    "outputs",
    [
        "not an object",
        {"a": "not an object", "b": {"result": "no name"}, "c": {"name": 5, "result": "x"}},
        {"huge": {"name": "transcript_dump", "result": {"text": "x" * 20_000}}},
    ],
    ids=["not-object", "malformed-entries", "oversized-result"],
)
async def test_review_drops_structured_outputs_that_are_malformed_or_oversized(
    edge: Edge, outputs: Any
) -> None:
    report = load_fixture(REPORT)
    report["message"]["artifact"]["structuredOutputs"] = outputs
    data = await review_of(edge, report)
    assert data.structured_outputs == {} and data.final_category == ""


async def test_review_input_reads_the_report_times_and_destination(edge: Edge) -> None:
    report = load_fixture(REPORT)
    message = report["message"]
    data = await review_of(edge, report)
    assert data.call_id == message["call"]["id"] and data.ended_reason == message["endedReason"]
    started = datetime.fromisoformat(message["startedAt"].replace("Z", "+00:00"))
    ended = datetime.fromisoformat(message["endedAt"].replace("Z", "+00:00"))
    assert (data.started_at, data.ended_at) == (started, ended)
    assert data.duration_seconds == (ended - started).total_seconds()
    assert data.destination == message["destination"]["number"]
