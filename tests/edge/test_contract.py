"""Contract: every reply shape translate.py can produce validates against Vapi's SDK models and passes the
extra-key / open-enum / E.164 audit of validate_fixtures.py."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import (
    audit,
    check_destination_numbers,
    fixture_names,
    literal_values,
    load_fixture,
    make_decision,
)
from webhook_edge.fallback import EdgeFallback
from webhook_edge.openapi import WEBHOOK_RESPONSES, ToolCallsResponse, TransferDestinationResponse
from webhook_edge.settings import DEFAULT_TRANSFER_FAILED_MESSAGE, MAX_SPOKEN_CHARS, EdgeSettings
from webhook_edge.translate import (
    UnusableDecision,
    control_transfer,
    destination_json,
    mode_name,
    spoken,
    tool_result,
    transfer_response,
)
from webhook_edge.vapi_models import parse_body

REQUEST = pb.ResolveEscalationRequest(
    call_id="c-contract", tool_call_id="t-1", complexity=pb.COMPLEXITY_ADVANCED, issue_category="technical"
)
SUMMARY = (
    ("system", "Brief the engineer taking over."),
    ("user", "Here is the transcript:\n\n{{transcript}}\n\n"),
)

CASES: dict[str, dict[str, Any]] = {
    "warm-say-message": {"mode": pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE},
    "warm-say-summary": {
        "mode": pb.TRANSFER_MODE_WARM_TRANSFER_SAY_SUMMARY,
        "summary": SUMMARY,
        "handoff": "",
    },
    "blind": {"mode": pb.TRANSFER_MODE_BLIND_TRANSFER, "handoff": ""},
    "unspecified-mode": {"mode": pb.TRANSFER_MODE_UNSPECIFIED},
    "sip-summary-header": {
        "mode": pb.TRANSFER_MODE_BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER,
        "sip_uri": "sip:incident-oncall@sip.techcorp.example.com",
        "summary": SUMMARY,
    },
    "sip-blind": {"mode": pb.TRANSFER_MODE_BLIND_TRANSFER, "sip_uri": "sips:oncall@example.com"},
    "extension": {"mode": pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE, "extension": "4021"},
    "wait-operator-message": {
        "mode": pb.TRANSFER_MODE_WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_MESSAGE
    },
    "wait-operator-summary": {
        "mode": pb.TRANSFER_MODE_WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_SUMMARY,
        "summary": SUMMARY,
    },
    "experimental": {"mode": pb.TRANSFER_MODE_WARM_TRANSFER_EXPERIMENTAL, "summary": SUMMARY},
    "callback-queue-line": {
        "kind": pb.DECISION_KIND_CALLBACK,
        "number": "+15550100600",
        "caller_message": "All specialists are busy. You're in our priority queue. "
        "Current wait time is approximately 10 minutes.",
    },
    "silent-caller-message": {"caller_message": ""},
}


def assert_valid_transfer_response(sdk: SimpleNamespace, body: dict[str, Any]) -> Any:
    model = sdk.TransferResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    check_destination_numbers(body["destination"], problems)
    assert problems == []
    return model


@pytest.mark.parametrize("case", sorted(CASES))
def test_transfer_reply_validates_against_vapi_sdk_when_mode_is(case: str, vapi_sdk: SimpleNamespace) -> None:
    decision = make_decision(REQUEST, **CASES[case])
    body = transfer_response(decision)
    model = assert_valid_transfer_response(vapi_sdk, body)
    destination = body["destination"]
    assert destination["transferPlan"]["mode"] == mode_name(decision.transfer_mode)
    assert model.destination.transfer_plan.mode == destination["transferPlan"]["mode"]
    if "summary" in CASES[case]:
        assert destination["transferPlan"]["summaryPlan"]["enabled"] is True
        assert (
            destination["transferPlan"]["summaryPlan"]["messages"][1]["content"].count("{{transcript}}") == 1
        )
    if CASES[case].get("extension"):
        assert destination["extension"] == "4021"
    if CASES[case].get("sip_uri"):
        assert destination["type"] == "sip" and "number" not in destination


def test_every_sdk_transfer_mode_is_produced_when_the_proto_mode_is_set(vapi_sdk: SimpleNamespace) -> None:
    from vapi.types import TransferPlanMode

    sdk_modes, _ = literal_values(TransferPlanMode)
    produced = {mode_name(v) for v in pb.TransferMode.values() if v != pb.TRANSFER_MODE_UNSPECIFIED}
    assert produced == sdk_modes - {"warm-transfer-twiml"}


@pytest.mark.parametrize(
    "destination",
    [
        {"number": "+1-555-TECH-SPECIALISTS"},
        {"number": "+0987654321"},
        {"number": None, "sip_uri": None},
        {"sip_uri": "http://not-sip"},
        {"extension": "12345678901"},
    ],
    ids=["seed-letters", "leading-zero", "none", "not-sip", "long-extension"],
)
def test_decision_is_refused_when_destination_is_not_sendable(destination: dict[str, Any]) -> None:
    with pytest.raises(UnusableDecision):
        destination_json(make_decision(REQUEST, **destination))


def test_fallback_reply_validates_when_routing_is_down(vapi_sdk: SimpleNamespace) -> None:
    body = {"destination": EdgeFallback(EdgeSettings(vapi_secret=SecretStr("s"), policy=None)).destination()}
    assert_valid_transfer_response(vapi_sdk, body)
    assert body["destination"]["number"] == "+15550100900"
    assert (
        body["destination"]["message"] == "I'll connect you with our general support team who can help you."
    )
    assert body["destination"]["transferPlan"]["message"] == (
        "Escalation routing error - connecting to general support team"
    )


def test_fallback_decision_uses_override_number_when_configured(vapi_sdk: SimpleNamespace) -> None:
    decision = make_decision(
        REQUEST,
        kind=pb.DECISION_KIND_FALLBACK,
        sip_uri="sip:general@example.com",
        caller_message="Connecting you with our support team.",
    )
    settings = EdgeSettings(vapi_secret=SecretStr("s"), fallback_number="+15550100999")
    destination = EdgeFallback(settings).for_decision(decision)
    assert_valid_transfer_response(vapi_sdk, {"destination": destination})
    assert destination["type"] == "number" and destination["number"] == "+15550100999"
    assert "sipUri" not in destination
    assert destination["message"] == "Connecting you with our support team."


def test_fallback_decision_keeps_policy_line_when_no_override(vapi_sdk: SimpleNamespace) -> None:
    decision = make_decision(REQUEST, kind=pb.DECISION_KIND_FALLBACK, number="+15550100901")
    destination = EdgeFallback(EdgeSettings(vapi_secret=SecretStr("s"))).for_decision(decision)
    assert_valid_transfer_response(vapi_sdk, {"destination": destination})
    assert destination["number"] == "+15550100901"


def test_settings_reject_fallback_number_when_not_e164() -> None:
    with pytest.raises(ValueError, match=r"E\.164"):
        EdgeSettings(vapi_secret=SecretStr("s"), fallback_number="+1-555-GENERAL-SUPPORT")


def test_tool_calls_reply_validates_against_vapi_sdk(vapi_sdk: SimpleNamespace) -> None:
    body = {
        "results": [
            tool_result("escalateToSupport", "call_1", "Transferring you now."),
            {"name": "lookupTicketStatus", "toolCallId": "call_2", "error": "not handled here"},
        ]
    }
    model = vapi_sdk.ToolCallsResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    assert problems == []
    assert model.results[0].tool_call_id == "call_1"


@pytest.mark.parametrize("case", ["warm-say-message", "sip-summary-header", "extension"])
def test_control_transfer_validates_against_vapi_sdk(case: str, vapi_sdk: SimpleNamespace) -> None:
    destination = destination_json(make_decision(REQUEST, **CASES[case]))
    body = control_transfer(destination, "Transferring you now.")
    model = vapi_sdk.ControlTransfer.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    assert problems == []
    assert model.type == "transfer"


def test_audit_flags_problems_when_reply_has_unknown_key_bad_enum_or_bad_number(
    vapi_sdk: SimpleNamespace,
) -> None:
    body = {
        "destination": {
            "type": "number",
            "number": "+1-555-BILLING-TEAM",
            "transfer_plan": {"mode": "warm-transfer-say-message"},
            "transferPlan": {"mode": "warm-transfer-say-messages"},
        }
    }
    model = vapi_sdk.TransferResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    check_destination_numbers(body["destination"], problems)
    assert any("transfer_plan" in p for p in problems)
    assert any("not in SDK enum" in p for p in problems)
    assert any("E.164" in p for p in problems)


@pytest.mark.parametrize("name", fixture_names("response.transfer-destination."))
def test_shared_reply_fixture_passes_the_audit(name: str, vapi_sdk: SimpleNamespace) -> None:
    body = load_fixture(name)
    model = vapi_sdk.TransferResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    if "destination" in body:
        check_destination_numbers(body["destination"], problems)
    assert problems == []


@pytest.mark.parametrize(
    "name",
    [n for n in fixture_names() if not n.startswith(("response.", "outbound-call."))],
)
def test_inbound_fixture_parses_and_matches_sdk_class(name: str, vapi_sdk: SimpleNamespace) -> None:
    doc = load_fixture(name)
    message = parse_body(json.dumps(doc).encode())
    assert message.envelope and message.type == doc["message"]["type"]
    vapi_sdk.ServerMessage.model_validate(doc)
    if not name.startswith("unknown."):
        vapi_sdk.by_type[message.type].model_validate(doc["message"])
    else:
        assert message.type not in vapi_sdk.by_type


_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(list(pb.TransferMode.values())),
    kind=st.sampled_from(
        [pb.DECISION_KIND_TRANSFER_TEAM, pb.DECISION_KIND_TRANSFER_AGENT, pb.DECISION_KIND_CALLBACK]
    ),
    number=st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True),
    sip=st.booleans(),
    extension=st.from_regex(r"[0-9]{0,10}", fullmatch=True),
    caller_message=_text,
    handoff=_text,
    summary=st.lists(st.tuples(st.sampled_from(["system", "user"]), _text), max_size=3),
)
def test_any_sendable_decision_validates_against_vapi_sdk(
    vapi_sdk: SimpleNamespace,
    mode: pb.TransferMode.ValueType,
    kind: pb.DecisionKind.ValueType,
    number: str,
    sip: bool,
    extension: str,
    caller_message: str,
    handoff: str,
    summary: list[tuple[str, str]],
) -> None:
    decision = make_decision(
        REQUEST,
        kind=kind,
        mode=mode,
        number=number,
        sip_uri="sip:team@example.com" if sip else None,
        extension="" if sip else extension,
        caller_message=caller_message,
        handoff=handoff,
        summary=tuple(summary),
    )
    body = transfer_response(decision)
    assert_valid_transfer_response(vapi_sdk, body)
    control = control_transfer(body["destination"], caller_message)
    vapi_sdk.ControlTransfer.model_validate(control)


# ------------------------------------------------------------- failed transfers keep the caller -----------
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_transfer_reply_keeps_the_assistant_on_when_the_transfer_fails(
    case: str, vapi_sdk: SimpleNamespace
) -> None:
    body = transfer_response(make_decision(REQUEST, **CASES[case]), failed_message="Sorry, no luck there.")
    model = assert_valid_transfer_response(vapi_sdk, body)
    assert body["destination"]["transferPlan"]["fallbackPlan"] == {
        "message": "Sorry, no luck there.",
        "endCallEnabled": False,
    }
    assert model.destination.transfer_plan.fallback_plan.end_call_enabled is False


def test_transfer_reply_uses_the_default_failed_transfer_sentence_when_none_is_configured() -> None:
    plan = transfer_response(make_decision(REQUEST))["destination"]["transferPlan"]
    assert plan["fallbackPlan"]["message"] == DEFAULT_TRANSFER_FAILED_MESSAGE
    assert plan["fallbackPlan"]["message"] == EdgeSettings(vapi_secret=SecretStr("s")).transfer_failed_message


@pytest.mark.parametrize("override", [None, "+15550100999"])
def test_fallback_lines_keep_the_assistant_on_when_they_fail_too(
    vapi_sdk: SimpleNamespace, override: str | None
) -> None:
    settings = EdgeSettings(
        vapi_secret=SecretStr("s"), transfer_failed_message="Nobody answered.", fallback_number=override
    )
    decision = make_decision(REQUEST, kind=pb.DECISION_KIND_FALLBACK, number="+15550100901")
    fallback = EdgeFallback(settings)
    for destination in (fallback.destination(), fallback.for_decision(decision)):
        assert_valid_transfer_response(vapi_sdk, {"destination": destination})
        assert destination["transferPlan"]["fallbackPlan"] == {
            "message": "Nobody answered.",
            "endCallEnabled": False,
        }


def test_control_transfer_keeps_the_fallback_plan(vapi_sdk: SimpleNamespace) -> None:
    destination = destination_json(make_decision(REQUEST), failed_message="Let me help you another way.")
    body = control_transfer(destination, "Transferring you now.")
    model = vapi_sdk.ControlTransfer.model_validate(body)
    assert model.destination.transfer_plan.fallback_plan.message == "Let me help you another way."


@pytest.mark.parametrize("bad", ["", "x" * (MAX_SPOKEN_CHARS + 1)], ids=["empty", "too-long"])
def test_settings_reject_failed_transfer_sentence_when_unusable(bad: str) -> None:
    with pytest.raises(ValueError, match="transfer_failed_message"):
        EdgeSettings(vapi_secret=SecretStr("s"), transfer_failed_message=bad)


# ------------------------------------------------------------- sentences Vapi would refuse -----------------
LONG = " ".join(f"Sentence number {i} explains one more detail of the queue." for i in range(60))


def test_long_caller_sentence_is_cut_at_a_sentence_boundary_not_refused(vapi_sdk: SimpleNamespace) -> None:
    assert len(LONG) > 3 * MAX_SPOKEN_CHARS
    body = transfer_response(make_decision(REQUEST, caller_message=LONG, handoff=LONG))
    assert_valid_transfer_response(vapi_sdk, body)
    for said in (body["destination"]["message"], body["destination"]["transferPlan"]["message"]):
        assert len(said) <= MAX_SPOKEN_CHARS
        assert said.endswith("of the queue.") and LONG.startswith(said)
        assert len(said) > MAX_SPOKEN_CHARS - 70  # as many whole sentences as fit
    control = control_transfer(body["destination"], LONG)
    assert len(control["content"]) <= MAX_SPOKEN_CHARS and control["content"].endswith(".")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("Short enough.", 50, "Short enough."),
        ("  Padded.  ", 50, "Padded."),
        ("One. Two! Three? Four.", 17, "One. Two! Three?"),
        ('He said "stop." Then left.', 20, 'He said "stop."'),
        ("Version 1.5 is out. Upgrade now please.", 25, "Version 1.5 is out."),
        ("no sentence end in here at all just words", 20, "no sentence end in…"),
        ("x" * 30, 10, "x" * 9 + "…"),
    ],
    ids=["fits", "strips", "last-end", "closing-quote", "decimal-point", "word-cut", "hard-cut"],
)
def test_spoken_text_is_cut_at_the_last_sentence_end_that_fits(text: str, limit: int, expected: str) -> None:
    assert spoken(text, limit) == expected


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400), st.integers(min_value=2, max_value=120))
def test_spoken_text_never_exceeds_the_limit_and_is_a_prefix(text: str, limit: int) -> None:
    said = spoken(text, limit)
    assert len(said) <= limit
    assert text.strip().startswith(said.removesuffix("…").rstrip())


# ------------------------------------------------------------- the documented reply shapes ---------------
@pytest.mark.parametrize("name", sorted(WEBHOOK_RESPONSES[200]["content"]["application/json"]["examples"]))
def test_documented_reply_example_validates_against_sdk_and_our_models(
    name: str, vapi_sdk: SimpleNamespace
) -> None:
    body = WEBHOOK_RESPONSES[200]["content"]["application/json"]["examples"][name]["value"]
    if "destination" in body:
        assert_valid_transfer_response(vapi_sdk, body)
        TransferDestinationResponse.model_validate(body)
    elif "results" in body:
        vapi_sdk.ToolCallsResponse.model_validate(body)
        ToolCallsResponse.model_validate(body)
    else:
        assert body == {}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_reply_we_produce_fits_the_documented_model(case: str) -> None:
    body = transfer_response(make_decision(REQUEST, **CASES[case]))
    documented = TransferDestinationResponse.model_validate(body)
    assert documented.model_dump(by_alias=True, exclude_none=True) == body
    fallback = {
        "destination": EdgeFallback(EdgeSettings(vapi_secret=SecretStr("s"), policy=None)).destination()
    }
    assert TransferDestinationResponse.model_validate(fallback).model_dump(
        by_alias=True, exclude_none=True
    ) == (fallback)


def _report_without_escalation() -> dict[str, Any]:
    return load_fixture("end-of-call-report.not-escalated.json")


@pytest.mark.parametrize(
    ("signal", "evidence"),
    [
        ("tool_call", "escalateToSupport called"),
        ("transfer", "artifact.transfers"),
        ("destination", "destination"),
        ("ended_reason", "endedReason assistant-forwarded-call"),
    ],
)
def test_report_shows_an_escalation_when_any_of_its_signals_is_present(signal: str, evidence: str) -> None:
    """Each signal alone marks the report as an escalation; the edge keeps the review on that evidence when
    routing holds no decision (the call was answered with the fallback line)."""
    doc = _report_without_escalation()
    message = doc["message"]
    escalated = load_fixture("end-of-call-report.escalated.json")["message"]
    if signal == "tool_call":
        message["artifact"]["messages"].append(escalated["artifact"]["messages"][-1])
    elif signal == "transfer":
        message["artifact"]["transfers"] = [{"status": "no-answer"}]
    elif signal == "destination":
        message["destination"] = escalated["destination"]
    else:
        message["endedReason"] = "assistant-forwarded-call"
    assert parse_body(json.dumps(doc).encode()).escalation_evidence() == evidence


def test_report_shows_no_escalation_when_it_has_none_of_the_signals() -> None:
    doc = _report_without_escalation()
    doc["message"]["artifact"]["messages"].append(
        {
            "role": "tool_calls",
            "toolCalls": [{"id": "x", "function": {"name": "lookupOrder", "arguments": "{}"}}],
        }
    )
    doc["message"]["artifact"]["transfers"] = []
    assert parse_body(json.dumps(doc).encode()).escalation_evidence() == ""
