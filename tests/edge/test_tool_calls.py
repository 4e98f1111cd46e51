"""The function-tool path: `tool-calls` -> the routing decision -> the transfer through Live Call Control
(`call.monitor.controlUrl`, played here by a real local HTTP server) BEFORE the reply, and a tool result that
says what really happened: the caller's sentence when the transfer started, otherwise a note telling the
assistant to offer a callback or read out the fallback line; a queued callback is promised, not
transferred."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from escalade_cli.local_server import LocalServer, local_server
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import Edge, RunningFake, audit, load_fixture, make_decision, running_edge
from webhook_edge.settings import EdgeSettings
from webhook_edge.translate import CALLBACK_PROMISE

FIXTURE = "tool-calls.escalate-to-support.json"
CALL_ID = "7b1e4d2c-3a5f-4c6e-9d8b-1a2b3c4d5e6f"
TOOL_CALL_ID = "call_Hp3Vx8Kd2Lm5Nq7Rs9Tw1Yb"
SENTENCE = "Transferring you to our technical support specialists."
NOT_STARTED = "The transfer could not be started"
FALLBACK_SPOKEN = "+1 555 010 0900"


class ControlRecorder:
    """Vapi's control URL: records each POST, answers `status` after `delay` seconds."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.status = 200
        self.delay = 0.0

    async def control(self, request: Request) -> JSONResponse:
        self.received.append((request.url.path, json.loads(await request.body())))
        if self.delay:
            await asyncio.sleep(self.delay)
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


def assert_valid_reply(sdk: SimpleNamespace, body: dict[str, Any]) -> None:
    model = sdk.ToolCallsResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    assert problems == []


def only_result(response: Any) -> str:
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["toolCallId"] == TOOL_CALL_ID and result["name"] == "escalateToSupport"
    text: str = result["result"]
    return text


async def test_transfer_is_made_before_the_reply_and_the_result_is_the_callers_sentence(
    edge: Edge,
    fake_routing: RunningFake,
    vapi_control: tuple[ControlRecorder, LocalServer],
    vapi_sdk: SimpleNamespace,
) -> None:
    recorder, server = vapi_control
    response = await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control"))
    assert_valid_reply(vapi_sdk, response.json())
    assert only_result(response) == SENTENCE
    [request] = fake_routing.servicer.resolve_requests
    assert (request.call_id, request.tool_call_id, request.complexity) == (
        CALL_ID,
        TOOL_CALL_ID,
        pb.COMPLEXITY_ADVANCED,
    )
    [(path, sent)] = recorder.received  # already there when the reply came: no waiting
    assert path == f"/{CALL_ID}/control"
    model = vapi_sdk.ControlTransfer.model_validate(sent)
    problems: list[str] = []
    audit(model, sent, "$", problems)
    assert problems == []
    assert sent["type"] == "transfer" and sent["content"] == SENTENCE
    assert sent["destination"]["number"] == "+15550100200"
    assert sent["destination"]["message"] == ""  # the caller hears the sentence once, from `content`
    assert sent["destination"]["transferPlan"]["mode"] == "warm-transfer-say-message"
    assert sent["destination"]["transferPlan"]["fallbackPlan"]["endCallEnabled"] is False


@pytest.mark.parametrize("status", [200, 500])
async def test_redelivered_tool_call_gets_the_same_result_and_no_second_transfer(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer], status: int
) -> None:
    recorder, server = vapi_control
    recorder.status = status
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    first = await edge.post(doc)
    second = await edge.post(doc)
    assert first.json() == second.json()
    assert (only_result(first) == SENTENCE) is (status == 200)
    assert len(fake_routing.servicer.decisions) == 1
    assert len(recorder.received) == 1


async def test_concurrent_redeliveries_share_one_transfer(
    edge: Edge, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    recorder.delay = 0.3
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    replies = await asyncio.gather(*(edge.post(doc) for _ in range(3)))
    assert {only_result(r) for r in replies} == {SENTENCE}
    assert len(recorder.received) == 1


async def test_new_tool_call_in_the_same_call_transfers_again(
    edge: Edge, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    await edge.post(doc)
    doc["message"]["toolCallList"][0]["id"] = "call_second_attempt"
    doc["message"]["toolWithToolCallList"][0]["toolCall"]["id"] = "call_second_attempt"
    response = await edge.post(doc)
    assert response.json()["results"][0]["toolCallId"] == "call_second_attempt"
    assert len(recorder.received) == 2


async def test_result_says_the_transfer_could_not_start_when_there_is_no_control_url(
    edge: Edge, fake_routing: RunningFake, vapi_sdk: SimpleNamespace
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        response = await edge.post(tool_calls_message(None))
    assert_valid_reply(vapi_sdk, response.json())
    result = only_result(response)
    assert result.startswith(NOT_STARTED) and "call them back" in result and FALLBACK_SPOKEN in result
    assert "Transferring" not in result
    assert any(e["event"] == "control_transfer_skipped" for e in logs)
    assert any(e["event"] == "tool_transfer_not_started" and e["outcome"] == "no_control_url" for e in logs)


async def test_result_says_the_transfer_could_not_start_when_the_control_url_refuses(
    edge: Edge, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    recorder.status = 500
    result = only_result(await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control")))
    assert result.startswith(NOT_STARTED) and FALLBACK_SPOKEN in result
    assert len(recorder.received) == 1


async def test_reply_comes_within_the_control_timeout_when_the_control_url_hangs(
    edge_settings: EdgeSettings, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    recorder.delay = 5.0
    settings = edge_settings.model_copy(update={"control_timeout_seconds": 0.5})
    async with running_edge(settings) as edge:
        started = time.monotonic()
        response = await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control"))
        elapsed = time.monotonic() - started
    assert only_result(response).startswith(NOT_STARTED)
    assert elapsed < 2.5, f"the reply took {elapsed:.1f} s with a 0.5 s control timeout"


async def test_fallback_number_in_the_result_is_the_configured_one(edge_settings: EdgeSettings) -> None:
    settings = edge_settings.model_copy(update={"fallback_number": "+442079460018"})
    async with running_edge(settings) as edge:
        result = only_result(await edge.post(tool_calls_message(None)))
    assert "+44 207 946 0018" in result and FALLBACK_SPOKEN not in result


@pytest.mark.parametrize(
    "url", ["https://exa mple.com/\x00/control", "ftp://example.com/control", "http://127.0.0.1:9/control"]
)
async def test_result_says_the_transfer_could_not_start_when_the_control_url_is_unusable(
    edge: Edge, fake_routing: RunningFake, url: str
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        result = only_result(await edge.post(tool_calls_message(url)))
    assert result.startswith(NOT_STARTED)
    assert any(e["event"] in ("control_transfer_failed", "control_transfer_skipped") for e in logs)


async def test_fallback_line_is_transferred_when_routing_fails(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    fake_routing.servicer.behaviour = "error"
    result = only_result(await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control")))
    assert result == "I'll connect you with our general support team who can help you."
    [(_, sent)] = recorder.received
    assert sent["destination"]["number"] == "+15550100900" and sent["content"] == result


def callback_decision(request: pb.ResolveEscalationRequest) -> pb.Decision:
    return make_decision(
        request,
        kind=pb.DECISION_KIND_CALLBACK,
        number="+15550100600",
        caller_message="All specialists are busy. You're number 2 in our priority queue. "
        "Expect our call within about 10 minutes.",
    )


async def test_queued_callback_is_promised_and_nothing_is_transferred(
    edge: Edge,
    fake_routing: RunningFake,
    vapi_control: tuple[ControlRecorder, LocalServer],
    vapi_sdk: SimpleNamespace,
) -> None:
    recorder, server = vapi_control
    fake_routing.servicer.decide = callback_decision
    response = await edge.post(tool_calls_message(f"{server.url}/{CALL_ID}/control"))
    assert_valid_reply(vapi_sdk, response.json())
    result = only_result(response)
    assert result.startswith("All specialists are busy. You're number 2 in our priority queue.")
    assert result.endswith(CALLBACK_PROMISE)
    assert recorder.received == []
    entry = await edge.outbox.get(f"callback-{CALL_ID}")
    assert entry is not None and entry.payload["customer_number"] == "+1111111111"


async def test_callback_without_a_number_to_call_goes_to_the_queue_line(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    fake_routing.servicer.decide = callback_decision
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    del doc["message"]["customer"], doc["message"]["call"]["customer"]
    result = only_result(await edge.post(doc))
    assert CALLBACK_PROMISE not in result and result.startswith("All specialists are busy.")
    [(_, sent)] = recorder.received
    assert sent["destination"]["number"] == "+15550100600"
    assert await edge.outbox.get(f"callback-{CALL_ID}") is None


async def test_same_decision_on_both_paths_when_tool_call_id_matches(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    """The transfer-tool path and the function-tool path share routing's idempotency key."""
    _, server = vapi_control
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    transfer = load_fixture("transfer-destination-request.premium-technical-advanced.json")
    transfer["message"]["call"]["id"] = CALL_ID
    tool_call = transfer["message"]["artifact"]["messages"][-1]["toolCalls"][-1]
    tool_call["id"] = TOOL_CALL_ID
    tool_result = only_result(await edge.post(doc))
    destination = (await edge.post(transfer)).json()["destination"]
    assert len(fake_routing.servicer.decisions) == 1
    assert destination["message"] == tool_result


async def test_mixed_tool_list_answers_each_entry(edge: Edge, fake_routing: RunningFake) -> None:
    doc = tool_calls_message(None)
    other = load_fixture("tool-calls.json")["message"]["toolCallList"][0]
    doc["message"]["toolCallList"].insert(0, other)
    results = (await edge.post(doc)).json()["results"]
    assert [r["name"] for r in results] == ["lookupTicketStatus", "escalateToSupport"]
    assert "error" in results[0] and "result" in results[1]


async def test_second_escalation_in_one_message_is_refused_not_routed(
    edge: Edge, fake_routing: RunningFake, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    doc = tool_calls_message(f"{server.url}/{CALL_ID}/control")
    again = copy.deepcopy(doc["message"]["toolCallList"][0])
    again["id"] = "call_again"
    doc["message"]["toolCallList"].append(again)
    first, second = (await edge.post(doc)).json()["results"]
    assert first["result"] == SENTENCE
    assert second["toolCallId"] == "call_again" and "Only one escalation" in second["error"]
    assert len(fake_routing.servicer.resolve_requests) == 1 and len(recorder.received) == 1
