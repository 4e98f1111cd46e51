"""Logs of a real webhook request through the real edge and routing service: every line of the request
carries its call id (and the edge's lines its request id); numbers and the secret never appear in full."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.logs import configure_logging
from tests.edge.edge_support import SECRET, dumps, load_fixture, running_edge, signed_headers
from tests.ops.ops_support import CALLER, ENTERPRISE, ENTERPRISE_CALL, PREMIUM, Stack
from webhook_edge.settings import EdgeSettings

PREMIUM_CALLER = "+1111111111"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(json=True, level="info", stream=stream)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the test client's own request lines
    try:
        yield stream
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_escalade_handler", False)]:
            root.removeHandler(handler)
        root.setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        structlog.reset_defaults()


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def own_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Escalade's structlog lines (stdlib records of libraries carry a "message" key)."""
    return [line for line in lines_of(stream) if "message" not in line]


def assert_nothing_leaks(stream: io.StringIO, *numbers: str) -> None:
    text = stream.getvalue()
    for number in numbers:
        assert number not in text and number.lstrip("+") not in text
    assert SECRET not in text


async def test_call_id_and_request_id_are_on_every_line_when_a_callback_is_recorded(
    sqlite_stack: Stack, log_stream: io.StringIO
) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await sqlite_stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    doc = load_fixture(PREMIUM)
    call_id = doc["message"]["call"]["id"]
    body = dumps(doc)
    headers = {**signed_headers(body), "x-request-id": "req-ops-1"}
    log_stream.truncate(0)
    log_stream.seek(0)

    response = await sqlite_stack.edge.client.post("/webhook/vapi", content=body, headers=headers)

    assert response.status_code == 200
    lines = own_lines(log_stream)
    events = {line["event"] for line in lines}
    assert {"decision", "outbox_recorded"} <= events  # routing's line and the edge's line
    assert all(line.get("call_id") == call_id for line in lines), lines
    edge_lines = [line for line in lines if line["event"] != "decision"]
    assert edge_lines and all(line.get("request_id") == "req-ops-1" for line in edge_lines), edge_lines
    decision = next(line for line in lines if line["event"] == "decision")
    assert decision["caller"].startswith("+1") and decision["caller"].endswith("1111")
    assert_nothing_leaks(log_stream, PREMIUM_CALLER)


async def test_fallback_line_names_call_and_request_when_routing_is_down(
    tmp_path: Path, log_stream: io.StringIO
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    settings = EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=f"127.0.0.1:{dead}",
        routing_deadline_ms=2000,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
    )
    async with running_edge(settings) as edge:
        body = dumps(load_fixture(ENTERPRISE))
        headers = {**signed_headers(body), "x-request-id": "req-down"}
        response = await edge.client.post("/webhook/vapi", content=body, headers=headers)
    assert response.status_code == 200
    fallback = [line for line in own_lines(log_stream) if line["event"] == "fallback_destination"]
    assert len(fallback) == 1
    assert fallback[0]["call_id"] == ENTERPRISE_CALL and fallback[0]["request_id"] == "req-down"
    assert fallback[0]["level"] == "warning" and fallback[0]["grpc_code"] == "UNAVAILABLE"
    assert_nothing_leaks(log_stream, CALLER)


async def test_unauthorized_line_has_request_id_and_no_secret_when_signature_is_wrong(
    sqlite_stack: Stack, log_stream: io.StringIO
) -> None:
    body = dumps(load_fixture(ENTERPRISE))
    headers = {
        **signed_headers(body, "wrong-secret"),
        "x-request-id": "req-bad",
        "x-vapi-secret": SECRET[:-1],
    }
    response = await sqlite_stack.edge.client.post("/webhook/vapi", content=body, headers=headers)
    assert response.status_code == 401
    refused = [line for line in own_lines(log_stream) if line["event"] == "webhook_unauthorized"]
    assert len(refused) == 1 and refused[0]["request_id"] == "req-bad"
    assert_nothing_leaks(log_stream, CALLER)
    assert SECRET[:-1] not in log_stream.getvalue()
