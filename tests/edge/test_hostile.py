"""Hostile input: whatever arrives, the answer is a JSON 4xx with a reason (or the fallback destination for a
transfer request), never a 5xx or a traceback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import (
    SECRET,
    Edge,
    RunningFake,
    dumps,
    load_fixture,
    running_edge,
    signed_headers,
)
from webhook_edge.routing_client import RoutingClient
from webhook_edge.settings import EdgeSettings
from webhook_edge.vapi_models import BadPayload, parse_body

ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"


def assert_json_4xx(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "Traceback" not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert isinstance(error["fields"], list)
    return error


def with_message(**changes: Any) -> dict[str, Any]:
    doc = load_fixture(ENTERPRISE)
    doc["message"].update(changes)
    return doc


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"\xff\xfe{not utf-8}", "body"),
        (b'{"message": {"type": "status-update", "x": "\xc3\x28"}}', "body"),
        (b"", "body"),
        (b"[]", "body"),
        (b'"just a string"', "body"),
        (b'{"message": []}', "message"),
        (b'{"message": {"status": "ended"}}', "message.type"),
        (b'{"message": {"type": 7}}', "message.type"),
        (b'{"type": ""}', "type"),
        (
            dumps({"message": {"type": "status-update", "status": "ended", "call": {"id": ["x"]}}}),
            "message.call.id",
        ),
        (
            dumps({"message": {"type": "tool-calls", "toolCallList": {"id": 1}, "call": {"id": "c"}}}),
            "message.toolCallList",
        ),
        (
            dumps({"message": {"type": "tool-calls", "toolCallList": [5], "call": {"id": "c"}}}),
            "message.toolCallList[0]",
        ),
    ],
    ids=[
        "invalid-utf8",
        "invalid-utf8-in-string",
        "empty",
        "array",
        "string",
        "message-array",
        "type-missing",
        "type-number",
        "type-empty",
        "status-call-id-list",
        "toolcalllist-object",
        "toolcall-number",
    ],
)
async def test_bad_body_gets_400_json_when_signed_correctly(
    edge: Edge, fake_routing: RunningFake, body: bytes, field: str
) -> None:
    error = assert_json_4xx(await edge.post(body), 400, "invalid_request")
    assert field in [f["field"] for f in error["fields"]]
    assert fake_routing.servicer.resolve_requests == []


@pytest.mark.parametrize(
    "body",
    [
        b'{"message": {"type": "transfer-destination-request",',
        b'{"message": {"type": "transfer-destination-request", "call": {"id": "c"}, "x": "\xc3\x28"}}',
        dumps(with_message(call={"id": 5})),
        dumps(with_message(call=[])),
        dumps(with_message(call={})),
        dumps(with_message(call={"id": ""})),
        dumps(with_message(call={"id": "c"}, customer={"number": 15550100})),
        dumps({"type": "transfer-destination-request"}),
    ],
    ids=[
        "truncated-json",
        "invalid-utf8",
        "call-id-number",
        "call-array",
        "call-id-missing",
        "call-id-empty",
        "customer-number-number",
        "flat-no-call",
    ],
)
async def test_unreadable_transfer_request_gets_the_fallback_line_not_a_4xx(
    edge: Edge, fake_routing: RunningFake, body: bytes, vapi_sdk: Any
) -> None:
    from structlog.testing import capture_logs

    with capture_logs() as logs:
        response = await edge.post(body)
    assert response.status_code == 200, response.text
    vapi_sdk.TransferResponse.model_validate(response.json())
    assert response.json()["destination"]["number"] == "+15550100900"
    assert response.json()["destination"]["transferPlan"]["fallbackPlan"]["endCallEnabled"] is False
    assert fake_routing.servicer.resolve_requests == []
    assert any(e["event"] == "fallback_destination" and e["reason"] == "unreadable_request" for e in logs)


async def test_unreadable_transfer_request_still_needs_credentials(edge: Edge) -> None:
    body = b'{"message": {"type": "transfer-destination-request",'
    response = await edge.post(body, headers={"content-type": "application/json"})
    assert_json_4xx(response, 401, "unauthorized")


async def test_deep_nesting_gets_400_when_10000_levels(edge: Edge) -> None:
    depth = 10_000
    body = b'{"message": {"type": "status-update", "deep": ' + b"[" * depth + b"]" * depth + b"}}"
    error = assert_json_4xx(await edge.post(body), 400, "invalid_request")
    assert "nest" in error["message"]


async def test_deep_nesting_in_tool_arguments_is_routed_when_arguments_are_a_string(
    edge: Edge, fake_routing: RunningFake
) -> None:
    doc = load_fixture(ENTERPRISE)
    doc["message"]["artifact"]["messages"][-1]["toolCalls"][0]["function"]["arguments"] = (
        "[" * 10_000 + "]" * 10_000
    )
    response = await edge.post(doc)
    assert response.status_code == 200 and "destination" in response.json()
    assert "not valid JSON" in fake_routing.servicer.resolve_requests[0].arguments_problem


async def test_oversized_body_gets_413_when_content_length_is_declared(edge: Edge) -> None:
    body = b'{"message": {"type": "x", "pad": "' + b"a" * (2 * 1024 * 1024) + b'"}}'
    assert_json_4xx(await edge.post(body), 413, "payload_too_large")


async def test_oversized_body_gets_413_when_streamed_without_content_length(edge: Edge) -> None:
    chunk = b"a" * 65_536
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"message": {"type": "x", "pad": "'
        for _ in range(32):  # 2 MiB
            sent += 1
            yield chunk
        yield b'"}}'

    response = await edge.client.post(
        "/webhook/vapi",
        content=stream(),
        headers={"content-type": "application/json", "x-vapi-secret": SECRET},
    )
    assert "content-length" not in response.request.headers
    assert_json_4xx(response, 413, "payload_too_large")


async def test_lying_content_length_on_a_transfer_request_gets_the_fallback_line(
    edge: Edge, fake_routing: RunningFake
) -> None:
    body = dumps(load_fixture(ENTERPRISE))
    headers = {**signed_headers(body), "content-length": str(50 * 1024 * 1024)}
    request = edge.client.build_request("POST", "/webhook/vapi", content=body, headers=headers)
    response = await edge.client.send(request)
    assert response.status_code == 200 and response.json()["destination"]["number"] == "+15550100900"
    assert fake_routing.servicer.resolve_requests == []


async def test_lying_content_length_on_another_body_gets_413(edge: Edge) -> None:
    body = dumps(load_fixture("status-update.ended.json"))
    headers = {**signed_headers(body), "content-length": str(50 * 1024 * 1024)}
    request = edge.client.build_request("POST", "/webhook/vapi", content=body, headers=headers)
    assert_json_4xx(await edge.client.send(request), 413, "payload_too_large")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_wrong_content_type_gets_415(edge: Edge, content_type: str) -> None:
    body = dumps(load_fixture(ENTERPRISE))
    headers = {**signed_headers(body), "content-type": content_type}
    assert_json_4xx(await edge.post(body, headers=headers), 415, "unsupported_media_type")


async def test_json_with_charset_is_accepted(edge: Edge) -> None:
    body = dumps(load_fixture("status-update.in-progress.json"))
    headers = {**signed_headers(body), "content-type": "application/json; charset=utf-8"}
    assert (await edge.post(body, headers=headers)).status_code == 200


async def test_get_on_webhook_gets_405_json(edge: Edge) -> None:
    assert_json_4xx(await edge.client.get("/webhook/vapi"), 405, "method_not_allowed")


async def test_unknown_path_gets_404_json(edge: Edge) -> None:
    assert_json_4xx(await edge.client.post("/webhook/other", content=b"{}"), 404, "not_found")


class ExplodingRouting(RoutingClient):
    """A routing client with a bug: every call raises something unexpected."""

    async def resolve(self, request: pb.ResolveEscalationRequest) -> pb.Decision:
        raise RuntimeError("bug in the client")

    async def record_call_event(self, request: pb.RecordCallEventRequest) -> pb.RecordCallEventResponse:
        raise RuntimeError("bug in the client")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (ENTERPRISE, "fallback"),
        ("status-update.ended.json", {}),
        ("transfer-update.no-answer.json", {}),
    ],
)
async def test_unexpected_exception_answers_fallback_or_ack_when_handler_breaks(
    edge_settings: EdgeSettings, fixture: str, expected: Any
) -> None:
    routing = ExplodingRouting.connect(edge_settings, deadline_seconds=0.3)
    try:
        async with running_edge(edge_settings, routing=routing) as edge:
            response = await edge.post(load_fixture(fixture))
    finally:
        await routing.close()
    assert response.status_code == 200
    if expected == "fallback":
        assert response.json()["destination"]["number"] == "+15550100900"
    else:
        assert response.json() == expected


# ------------------------------------------------------------------------- properties of the parser ------
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
_keys = st.sampled_from(
    [
        "type",
        "message",
        "call",
        "customer",
        "artifact",
        "functionCall",
        "toolCallList",
        "id",
        "number",
        "messages",
    ]
)
_vapiish = st.recursive(
    _json,
    lambda inner: st.dictionaries(_keys, inner, max_size=5) | st.lists(inner, max_size=3),
    max_leaves=30,
)


def _read_everything(raw: bytes) -> None:
    try:
        message = parse_body(raw)
        _ = (message.call_id_or_empty, message.transcript, message.escalation_arguments())
        _ = (message.caller_number, message.caller_sip_uri, message.control_url, message.status)
        _ = (message.ended_reason, message.tool_calls(), message.call_id)
    except BadPayload:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parser_raises_only_bad_payload_when_bytes_are_arbitrary(raw: bytes) -> None:
    _read_everything(raw)


@settings(max_examples=300, deadline=None)
@given(_vapiish, st.sampled_from(["transfer-destination-request", "tool-calls", "status-update", "x"]))
def test_parser_raises_only_bad_payload_when_json_is_arbitrary(doc: Any, kind: str) -> None:
    if isinstance(doc, dict) and isinstance(doc.get("message"), dict):
        doc["message"]["type"] = kind
    _read_everything(json.dumps(doc).encode())
