"""The Vapi API stand-in (`escalade dev` without ESCALADE_VAPI_API_KEY, and the workflow tests): dials are
recorded with the number masked; a dial without an outcome ends at once; a scripted callback plays Vapi's
lifecycle against an edge that verifies the signature (voicemail, then reached and handed over)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escalade_cli.dev_vapi import build_app, build_standin
from escalade_cli.local_server import local_server
from escalade_cli.vapi_standin import CallOutcome, VapiStandin, parse_outcomes, serve_standin
from webhook_edge.auth import AuthError, verify_request

SECRET = "standin-test-secret-4f1a"
ORIGINAL = "inbound-call-0001"
DESTINATION = {
    "type": "number",
    "number": "+15550100210",
    "message": "Connecting you with Dana.",
    "transferPlan": {"mode": "warm-transfer-say-message", "message": "Callback customer."},
}
SECOND = {**DESTINATION, "number": "+15550100220"}
DIAL = {
    "assistantId": "escalade-dev-assistant",
    "phoneNumberId": "escalade-dev-phone-number",
    "customer": {"number": "+14155550123"},
    "name": "callback-c1-attempt-1",
    "assistantOverrides": {
        "firstMessage": "Hello, this is a call back from Technical Support about the technical issue.",
        "variableValues": {
            "originalCallId": ORIGINAL,
            "callbackAttemptKey": "callback-c1-attempt-1",
            "specialistId": "tech-1",
            "issueCategory": "technical",
            "complexityLevel": "advanced",
            "customerContext": "API 401s",
            "callbackReason": "needs an engineer",
        },
    },
}


def dial(original: str = ORIGINAL) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(DIAL))
    body["assistantOverrides"]["variableValues"]["originalCallId"] = original
    return body


# ----------------------------------------------------------------------------------------------------
# Dials without an outcome (the workflow tests' behaviour)
# ----------------------------------------------------------------------------------------------------
async def test_dial_without_outcome_ends_at_once_with_a_customer_turn_when_configured() -> None:
    standin = VapiStandin(ended_reason="customer-ended-call")
    transport = httpx.ASGITransport(app=standin.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        created = await client.post("/call", json=DIAL)
        shown = (await client.get(f"/call/{created.json()['id']}")).json()
    assert (shown["status"], shown["endedReason"]) == ("ended", "customer-ended-call")
    assert [m["role"] for m in shown["artifact"]["messages"]] == ["bot", "user"]


async def test_dial_without_outcome_has_no_customer_turn_when_customer_did_not_speak() -> None:
    standin = VapiStandin(ended_reason="silence-timed-out", customer_spoke=False)
    transport = httpx.ASGITransport(app=standin.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        created = await client.post("/call", json=DIAL)
        shown = (await client.get(f"/call/{created.json()['id']}")).json()
    assert shown["endedReason"] == "silence-timed-out"
    assert [m["role"] for m in shown["artifact"]["messages"]] == ["bot"]


async def test_dev_dial_is_recorded_masked_with_its_outcome_when_no_api_key_is_configured(
    tmp_path: Path,
) -> None:
    record = tmp_path / "logs" / "vapi-dials.jsonl"
    transport = httpx.ASGITransport(app=build_app(record))
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        created = await client.post("/call", json=DIAL)
        assert created.status_code == 201
        listed = (await client.get("/call")).json()
    assert [c["name"] for c in listed] == ["callback-c1-attempt-1"]
    text = record.read_text()
    assert "4155550123" not in text
    entry = json.loads(text)
    assert (entry["attempt_key"], entry["specialist"]) == ("callback-c1-attempt-1", "tech-1")
    assert (entry["original_call_id"], entry["outcome"]) == (ORIGINAL, "reached")
    assert entry["customer"].endswith("0123")


async def test_bad_dial_bodies_get_400_when_not_a_json_object() -> None:
    transport = httpx.ASGITransport(app=build_app(None))
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        not_json = await client.post("/call", content=b"{nope", headers={"content-type": "application/json"})
        a_list = await client.post("/call", json=[1, 2])
        missing = await client.get("/call/nope")
    assert (not_json.status_code, a_list.status_code, missing.status_code) == (400, 400, 404)


async def test_shared_standin_refuses_a_wrong_key_and_reports_in_progress_when_no_ended_reason() -> None:
    standin = VapiStandin(api_key="right", ended_reason=None)
    transport = httpx.ASGITransport(app=standin.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        refused = await client.post("/call", json=DIAL, headers={"authorization": "Bearer wrong"})
        created = await client.post("/call", json=DIAL, headers={"authorization": "Bearer right"})
        shown = (await client.get(f"/call/{created.json()['id']}")).json()
    assert (refused.status_code, created.status_code) == (401, 201)
    assert shown["status"] == "in-progress" and "endedReason" not in shown
    assert [d["customer"] for d in standin.dials] == [{"number": "+14155550123"}]
    assert len(standin.arrivals) == 1 and standin.arrived.is_set()


async def test_an_in_progress_call_ends_with_the_reason_set_after_the_dial() -> None:
    standin = VapiStandin(ended_reason=None)
    transport = httpx.ASGITransport(app=standin.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        call_id = (await client.post("/call", json=DIAL)).json()["id"]
        talking = (await client.get(f"/call/{call_id}")).json()
        standin.ended_reason = "customer-ended-call"  # the customer and the specialist hang up
        ended = (await client.get(f"/call/{call_id}")).json()
    assert talking["status"] == "in-progress"
    assert (ended["status"], ended["endedReason"]) == ("ended", "customer-ended-call")
    assert any(turn.get("role") == "user" for turn in ended["artifact"]["messages"])


# ----------------------------------------------------------------------------------------------------
# Outcome scripts
# ----------------------------------------------------------------------------------------------------
def test_outcome_names_are_parsed_and_unknown_ones_refused_when_scripted() -> None:
    assert parse_outcomes(["Voicemail", "reached"]) == [CallOutcome.VOICEMAIL, CallOutcome.REACHED]
    with pytest.raises(ValueError, match=r"unknown outcome .* known: reached, specialist-no-answer"):
        parse_outcomes(["answered"])
    with pytest.raises(ValueError, match="non-empty list"):
        parse_outcomes([])


def test_script_plays_attempts_in_order_and_repeats_the_last_when_attempts_run_over() -> None:
    standin = VapiStandin(default_outcome=CallOutcome.NO_ANSWER)
    standin.scripts["c1"] = [CallOutcome.VOICEMAIL, CallOutcome.REACHED]
    assert [standin.outcome_for("c1") for _ in range(3)] == [
        CallOutcome.VOICEMAIL,
        CallOutcome.REACHED,
        CallOutcome.REACHED,
    ]
    assert standin.outcome_for("other") is CallOutcome.NO_ANSWER


async def test_script_endpoint_sets_and_lists_outcomes_and_refuses_bad_ones_when_called() -> None:
    standin = VapiStandin()
    transport = httpx.ASGITransport(app=standin.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        put = await client.put("/escalade/outcomes/c1", json={"outcomes": ["voicemail", "reached"]})
        bad = await client.put("/escalade/outcomes/c2", json={"outcomes": ["ringing"]})
        listed = (await client.get("/escalade/outcomes")).json()
    assert put.status_code == 200
    assert bad.status_code == 400 and "known: reached" in bad.json()["message"]
    assert listed == {"c1": ["voicemail", "reached"]}


# ----------------------------------------------------------------------------------------------------
# Played lifecycle against an edge that verifies signatures
# ----------------------------------------------------------------------------------------------------
@dataclass
class FakeEdge:
    """Answers like the edge: a destination (transfer-destination-request), or results plus a Live Call
    Control transfer (tool-calls); `destinations` are handed out in order; `None` declines."""

    destinations: list[dict[str, Any] | None]
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def app(self) -> Starlette:
        async def webhook(request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                verify_request(request.headers, raw, [SECRET.encode()])
            except AuthError as exc:
                return JSONResponse({"error": exc.reason}, status_code=401)
            message = json.loads(raw)["message"]
            self.received.append(message)
            if message["type"] == "transfer-destination-request":
                chosen = self.destinations.pop(0)
                return JSONResponse({"destination": chosen} if chosen else {"error": "nobody"})
            if message["type"] == "tool-calls":
                chosen = self.destinations.pop(0)
                tool_call = message["toolCallList"][0]
                if chosen is not None:
                    async with httpx.AsyncClient() as client:
                        await client.post(
                            message["call"]["monitor"]["controlUrl"],
                            json={"type": "transfer", "destination": chosen, "content": "Connecting."},
                        )
                result = "Transferring now." if chosen else "No specialist: offer a callback."
                return JSONResponse(
                    {
                        "results": [
                            {"name": "escalateToSupport", "toolCallId": tool_call["id"], "result": result}
                        ]
                    }
                )
            return JSONResponse({})

        return Starlette(routes=[Route("/webhook/vapi", webhook, methods=["POST"])])


@contextlib.asynccontextmanager
async def played(
    destinations: list[dict[str, Any] | None], style: str = "tool-calls"
) -> AsyncIterator[tuple[VapiStandin, FakeEdge, httpx.AsyncClient]]:
    edge = FakeEdge(destinations)
    async with local_server(edge.app(), lifespan="auto", capture_signals=False) as served:
        edge.url = served.url
        standin = build_standin(
            edge_url=f"{served.url}/webhook/vapi", edge_secret=SECRET, request_style=style, pace=0.01
        )
        standin.control_wait = 2.0
        async with serve_standin(standin), httpx.AsyncClient(base_url=standin.url) as client:
            yield standin, edge, client


def summary(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        detail = m.get("status") or ""
        if m["type"] == "status-update" and m["status"] == "ended":
            detail = f"ended {m['endedReason']}"
        if m["type"] == "transfer-update":
            detail = m["artifact"]["transfers"][-1]["status"]
        out.append(f"{m['type']} {detail}".strip())
    return out


async def test_voicemail_then_reached_callback_is_handed_to_the_held_specialist_when_scripted() -> None:
    async with played([DESTINATION]) as (standin, edge, client):
        script = await client.put(
            f"/escalade/outcomes/{ORIGINAL}", json={"outcomes": ["voicemail", "reached"]}
        )
        assert script.status_code == 200
        first = (await client.post("/call", json=dial())).json()["id"]
        machine = await standin.wait_ended(first)
        second = (await client.post("/call", json=dial())).json()["id"]
        person = await standin.wait_ended(second)
        shown = (await client.get(f"/call/{second}")).json()

    assert first != second
    assert machine["endedReason"] == "voicemail"
    assert [m["role"] for m in machine["artifact"]["messages"]] == []
    assert (shown["status"], shown["endedReason"]) == ("ended", "assistant-forwarded-call")
    assert person["destination"]["number"] == "+15550100210"
    roles = [m["role"] for m in shown["artifact"]["messages"]]
    assert roles == ["bot", "user"]
    assert shown["artifact"]["messages"][0]["message"].startswith("Hello, this is a call back")
    assert summary(edge.received) == [
        "status-update ended voicemail",
        "tool-calls",
        "status-update forwarding",
        "status-update ended assistant-forwarded-call",
    ]
    escalation = edge.received[1]
    assert escalation["call"]["id"] == second
    assert escalation["call"]["assistantOverrides"]["variableValues"]["originalCallId"] == ORIGINAL
    arguments = json.loads(escalation["toolCallList"][0]["function"]["arguments"])
    assert (arguments["issue_category"], arguments["complexity_level"]) == ("technical", "advanced")
    assert [c["type"] for c in standin.controls] == ["transfer"]
    assert [entry["status"] for entry in standin.posted] == [200] * 4, standin.posted


async def test_transfer_destination_style_forwards_to_the_answered_destination_when_chosen() -> None:
    async with played([DESTINATION], style="transfer-destination-request") as (standin, edge, client):
        call_id = (await client.post("/call", json=dial())).json()["id"]
        ended = await standin.wait_ended(call_id)
    assert ended["endedReason"] == "assistant-forwarded-call"
    assert summary(edge.received) == [
        "transfer-destination-request",
        "status-update forwarding",
        "status-update ended assistant-forwarded-call",
    ]
    request = edge.received[0]
    assert request["artifact"]["messages"][-1]["role"] == "tool_calls"
    assert request["call"]["assistantOverrides"]["variableValues"]["originalCallId"] == ORIGINAL
    assert edge.received[1]["destination"] == DESTINATION


async def test_specialist_no_answer_escalates_again_and_forwards_to_the_next_when_scripted() -> None:
    async with played([DESTINATION, SECOND]) as (standin, edge, client):
        await client.put(f"/escalade/outcomes/{ORIGINAL}", json={"outcomes": ["specialist-no-answer"]})
        call_id = (await client.post("/call", json=dial())).json()["id"]
        ended = await standin.wait_ended(call_id)
    assert summary(edge.received) == [
        "tool-calls",
        "status-update forwarding",
        "transfer-update no-answer",
        "tool-calls",
        "status-update forwarding",
        "status-update ended assistant-forwarded-call",
    ]
    first, again = edge.received[0], edge.received[3]
    assert first["call"]["id"] == again["call"]["id"] == call_id
    assert first["toolCallList"][0]["id"] != again["toolCallList"][0]["id"]
    assert ended["destination"]["number"] == "+15550100220"


async def test_declined_escalation_ends_customer_ended_call_when_edge_gives_no_destination() -> None:
    async with played([None]) as (standin, edge, client):
        call_id = (await client.post("/call", json=dial())).json()["id"]
        ended = await standin.wait_ended(call_id)
    assert ended["endedReason"] == "customer-ended-call"
    assert summary(edge.received) == ["tool-calls", "status-update ended customer-ended-call"]
    assert [m["role"] for m in ended["artifact"]["messages"]] == ["bot", "user"]


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("no-answer", "customer-did-not-answer"),
        ("busy", "customer-busy"),
        ("customer-hangs-up", "customer-ended-call"),
    ],
)
async def test_unanswered_outcomes_end_with_vapi_reasons_when_scripted(outcome: str, reason: str) -> None:
    async with played([]) as (standin, edge, client):
        await client.put(f"/escalade/outcomes/{ORIGINAL}", json={"outcomes": [outcome]})
        call_id = (await client.post("/call", json=dial())).json()["id"]
        ended = await standin.wait_ended(call_id)
    assert ended["endedReason"] == reason
    assert summary(edge.received) == [f"status-update ended {reason}"]


async def test_played_messages_and_call_validate_against_sdk_models_when_posted() -> None:
    from vapi.types import Call, ServerMessage

    from tests.edge.test_provisioning import audit

    async with played([DESTINATION, SECOND]) as (standin, edge, client):
        await client.put(f"/escalade/outcomes/{ORIGINAL}", json={"outcomes": ["specialist-no-answer"]})
        call_id = (await client.post("/call", json=dial())).json()["id"]
        await standin.wait_ended(call_id)
        shown = (await client.get(f"/call/{call_id}")).json()
    assert audit(Call.model_validate(shown), shown) == []
    for message in edge.received:
        parsed = ServerMessage.model_validate({"message": message}).message
        assert audit(parsed, message) == [], message["type"]
