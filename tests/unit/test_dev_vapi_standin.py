"""The Vapi API stand-in `escalade dev` runs without ESCALADE_VAPI_API_KEY: dials are recorded with the
number masked, and the call reports an ended reason the worker classifies as "not reached"."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from escalade_cli.dev_vapi import ENDED_REASON, build_app
from escalade_cli.vapi_standin import VapiStandin
from workflows.activities import classify_ended_reason
from workflows.payloads import DialOutcome

DIAL = {
    "assistantId": "escalade-dev-assistant",
    "phoneNumberId": "escalade-dev-phone-number",
    "customer": {"number": "+14155550123"},
    "name": "callback-c1-attempt-1",
    "assistantOverrides": {
        "variableValues": {"callbackAttemptKey": "callback-c1-attempt-1", "specialistId": "tech-1"}
    },
}


async def test_dial_is_recorded_masked_and_ends_not_reached_when_no_api_key_is_configured(
    tmp_path: Path,
) -> None:
    record = tmp_path / "logs" / "vapi-dials.jsonl"
    transport = httpx.ASGITransport(app=build_app(record))
    async with httpx.AsyncClient(transport=transport, base_url="http://vapi.test") as client:
        created = await client.post("/call", json=DIAL)
        assert created.status_code == 201
        call_id = created.json()["id"]
        shown = (await client.get(f"/call/{call_id}")).json()
        listed = (await client.get("/call")).json()
    assert shown["status"] == "ended" and shown["endedReason"] == ENDED_REASON
    assert classify_ended_reason(shown["endedReason"]) == DialOutcome.NOT_REACHED
    assert [c["name"] for c in listed] == ["callback-c1-attempt-1"]
    text = record.read_text()
    assert "4155550123" not in text
    entry = json.loads(text)
    assert (entry["attempt_key"], entry["specialist"]) == ("callback-c1-attempt-1", "tech-1")
    assert entry["customer"].endswith("0123")


async def test_bad_dial_bodies_get_400_when_not_a_json_object(tmp_path: Path) -> None:
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
