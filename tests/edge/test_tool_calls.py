"""The function-tool path: `tool-calls` -> the same routing decision -> a spoken result, then the transfer
through Live Call Control (`call.monitor.controlUrl`), received here by a real local HTTP server."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escalade_cli.local_server import LocalServer, local_server
from routing_service.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import Edge, RunningFake, audit, load_fixture

FIXTURE = "tool-calls.escalate-to-support.json"
CALL_ID = "7b1e4d2c-3a5f-4c6e-9d8b-1a2b3c4d5e6f"
TOOL_CALL_ID = "call_Hp3Vx8Kd2Lm5Nq7Rs9Tw1Yb"


class ControlRecorder:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self.arrived = asyncio.Event()

    async def control(self, request: Request) -> JSONResponse:
        self.received.append((request.url.path, json.loads(await request.body())))
        self.arrived.set()
        return JSONResponse({"ok": True}, status_code=self.status)


@pytest.fixture
async def vapi_control() -> AsyncIterator[tuple[ControlRecorder, LocalServer]]:
    recorder = ControlRecorder()
    app = Starlette(routes=[Route("/{call_id}/control", recorder.control, methods=["POST"])])
    async with local_server(app, lifespan="on") as server:
        yield recorder, server


def tool_calls_message(control_url: str | None) -> dict[str, Any]:
    doc = copy.deepcopy(load_fixture(FIXTURE))
    if control_url is None:
        del doc["message"]["call"]["monitor"]
    else:
        doc["message"]["call"]["monitor"]["controlUrl"] = control_url
    return doc


async def test_escalation_tool_gets_spoken_result_and_control_transfer(
    edge: Edge,
    fake_routing: RunningFake,
    vapi_control: tuple[ControlRecorder, LocalServer],
    vapi_sdk: SimpleNamespace,
) -> None:
    recorder, server = vapi_control
    response = await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control"))
    assert response.status_code == 200
    body = response.json()
    model = vapi_sdk.ToolCallsResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    assert problems == []
    [result] = body["results"]
    assert result == {
        "name": "escalateToSupport",
        "toolCallId": TOOL_CALL_ID,
        "result": "Transferring you to our technical support specialists.",
    }
    [request] = fake_routing.servicer.resolve_requests
    assert (request.call_id, request.tool_call_id, request.complexity) == (
        CALL_ID,
        TOOL_CALL_ID,
        pb.COMPLEXITY_ADVANCED,
    )
    await asyncio.wait_for(recorder.arrived.wait(), timeout=10)
    [(path, sent)] = recorder.received
    assert path == f"/{CALL_ID}/control"
    vapi_sdk.ControlTransfer.model_validate(sent)
    assert sent["type"] == "transfer"
    assert sent["destination"]["number"] == "+15550100200"
    assert sent["destination"]["transferPlan"]["mode"] == "warm-transfer-say-message"
    assert sent["destination"]["message"] == ""  # the assistant already spoke the result


async def test_duplicate_tool_call_gets_same_result_and_one_transfer(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    first = await edge.post(doc)
    second = await edge.post(doc)
    assert first.json() == second.json()
    assert len(fake_routing.servicer.decisions) == 1
    assert len(recorder.received) == 1


async def test_same_decision_on_both_paths_when_tool_call_id_matches(
    edge: Edge, fake_routing: RunningFake
) -> None:
    """The transfer-tool path and the function-tool path share routing's idempotency key."""
    doc = tool_calls_message(None)
    transfer = load_fixture("transfer-destination-request.premium-technical-advanced.json")
    transfer["message"]["call"]["id"] = CALL_ID
    tool_call = transfer["message"]["artifact"]["messages"][-1]["toolCalls"][-1]
    tool_call["id"] = TOOL_CALL_ID
    tool_result = (await edge.post(doc)).json()["results"][0]["result"]
    destination = (await edge.post(transfer)).json()["destination"]
    assert len(fake_routing.servicer.decisions) == 1
    assert destination["message"] == tool_result


async def test_transfer_is_skipped_with_log_when_no_control_url(
    edge: Edge, fake_routing: RunningFake
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        response = await edge.post(tool_calls_message(None))
    assert response.json()["results"][0]["toolCallId"] == TOOL_CALL_ID
    assert any(e["event"] == "control_transfer_skipped" for e in logs)


async def test_webhook_reply_is_unaffected_when_control_url_fails(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    recorder.status = 500
    response = await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control"))
    assert response.status_code == 200 and response.json()["results"][0]["result"]
    assert len(recorder.received) == 1


async def test_fallback_transfer_is_issued_when_routing_fails(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    fake_routing.servicer.behaviour = "error"
    response = await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control"))
    assert response.json()["results"][0]["result"] == (
        "I'll connect you with our general support team who can help you."
    )
    await asyncio.wait_for(recorder.arrived.wait(), timeout=10)
    assert recorder.received[0][1]["destination"]["number"] == "+15550100900"


async def test_mixed_tool_list_answers_each_entry(edge: Edge, fake_routing: RunningFake) -> None:
    doc = tool_calls_message(None)
    other = load_fixture("tool-calls.json")["message"]["toolCallList"][0]
    doc["message"]["toolCallList"].insert(0, other)
    results = (await edge.post(doc)).json()["results"]
    assert [r["name"] for r in results] == ["lookupTicketStatus", "escalateToSupport"]
    assert "error" in results[0] and "result" in results[1]


@pytest.mark.parametrize(
    "url", ["https://exa mple.com/\x00/control", "ftp://example.com/control", "http://127.0.0.1:9/control"]
)
async def test_reply_is_unaffected_when_control_url_is_unusable(
    edge: Edge, fake_routing: RunningFake, url: str
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        response = await edge.post(tool_calls_message(url))
    assert response.status_code == 200 and response.json()["results"][0]["result"]
    assert any(e["event"] in ("control_transfer_failed", "control_transfer_skipped") for e in logs)
