"""Body limits are enforced while streaming and without reading what lies beyond them (see
`webhook_edge.decoding`, "Body limits"): a 10 MB transfer request is answered with the fallback line and a
10 MB anything-else with a JSON 413, each after pulling at most the limit (plus a chunk), whether the length
is declared or streamed; an end-of-call-report is read on up to `max_report_bytes` and recorded; over real
HTTP the answer comes back while the client has sent only a little of the body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from escalade_cli.local_server import local_server
from tests.edge.edge_support import (
    SECRET,
    Edge,
    RunningFake,
    fake_routing_server,
    load_fixture,
    running_edge,
    signed_headers,
)
from tests.hostile.hostile_support import assert_no_server_error
from webhook_edge.app import create_app
from webhook_edge.decoding import message_kind
from webhook_edge.settings import EdgeSettings
from workflows.inputs import EscalationReviewInput

pytestmark = pytest.mark.timeout(60)

TEN_MB = 10 * 1024 * 1024
CHUNK = 64 * 1024
LIMIT = 1024 * 1024
REPORT_LIMIT = 12 * 1024 * 1024
FALLBACK = "+15550100900"
CALL_ID = "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"


def settings_for(tmp_path: Path, routing_address: str) -> EdgeSettings:
    return EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=routing_address,
        routing_deadline_ms=500,
        max_body_bytes=LIMIT,
        max_report_bytes=REPORT_LIMIT,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
    )


@pytest.fixture
async def routing() -> AsyncIterator[RunningFake]:
    async with fake_routing_server() as fake:
        yield fake


@pytest.fixture
async def edge(tmp_path: Path, routing: RunningFake) -> AsyncIterator[Edge]:
    async with running_edge(settings_for(tmp_path, routing.address)) as running:
        yield running


class CountingBody:
    """A ~10 MB JSON body of the given type handed out in 64 KiB chunks, counting what the app pulled."""

    def __init__(self, kind: str = "transfer-destination-request", size: int = TEN_MB) -> None:
        self.pulled = 0
        self.kind = kind
        self.size = size

    def head(self) -> bytes:
        return f'{{"message": {{"type": "{self.kind}", "call": {{"id": "{CALL_ID}"}}, "pad": "'.encode()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.head()
        for _ in range(self.size // CHUNK):
            self.pulled += CHUNK
            yield b"a" * CHUNK
        yield b'"}}'


def assert_413(response: httpx.Response) -> None:
    assert_no_server_error(response)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "payload_too_large"


def assert_fallback(response: httpx.Response) -> None:
    assert_no_server_error(response)
    assert response.status_code == 200, response.text[:300]
    assert response.json()["destination"]["number"] == FALLBACK


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "declared"])
async def test_10mb_transfer_request_gets_the_fallback_line_after_reading_at_most_the_limit(
    edge: Edge, routing: RunningFake, declared: bool
) -> None:
    body = CountingBody()
    headers = {"content-type": "application/json", "x-vapi-secret": SECRET}
    if declared:
        headers["content-length"] = str(len(body.head()) + TEN_MB + 3)
    response = await edge.client.post("/webhook/vapi", content=body.__aiter__(), headers=headers)
    assert ("content-length" in response.request.headers) is declared
    assert_fallback(response)
    assert body.pulled <= LIMIT + CHUNK, f"the app read {body.pulled} bytes of a {TEN_MB}-byte body"
    assert routing.servicer.resolve_requests == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-vapi-secret": "wrong"}, {"authorization": "Bearer wrong"}],
    ids=["no-credentials", "wrong-secret", "wrong-bearer"],
)
async def test_10mb_transfer_request_gets_401_when_its_header_credentials_fail(
    edge: Edge, headers: dict[str, str]
) -> None:
    body = CountingBody()
    response = await edge.client.post(
        "/webhook/vapi", content=body.__aiter__(), headers={"content-type": "application/json", **headers}
    )
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert body.pulled <= LIMIT + CHUNK


@pytest.mark.parametrize("kind", ["status-update", "tool-calls", "some-future-event"])
@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "declared"])
async def test_10mb_other_body_gets_413_after_reading_at_most_the_limit(
    edge: Edge, kind: str, declared: bool
) -> None:
    body = CountingBody(kind)
    headers = {"content-type": "application/json", "x-vapi-secret": SECRET}
    if declared:
        headers["content-length"] = str(len(body.head()) + TEN_MB + 3)
    response = await edge.client.post("/webhook/vapi", content=body.__aiter__(), headers=headers)
    assert_413(response)
    assert body.pulled <= LIMIT + CHUNK


def big_report(size: int) -> bytes:
    report = load_fixture("end-of-call-report.escalated.json")
    report["message"]["artifact"]["transcript"] = "User: hello. AI: hello. " * (size // 24)
    return json.dumps(report).encode()


@pytest.mark.parametrize("declared", [False, True], ids=["streamed", "declared"])
async def test_10mb_end_of_call_report_is_accepted_and_recorded(edge: Edge, declared: bool) -> None:
    await edge.post(load_fixture("transfer-destination-request.enterprise-technical-advanced.json"))
    raw = big_report(TEN_MB)
    assert LIMIT < len(raw) < REPORT_LIMIT

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), CHUNK):
            yield raw[start : start + CHUNK]

    headers = signed_headers(raw)
    response = await edge.client.post("/webhook/vapi", content=raw if declared else chunks(), headers=headers)
    assert response.status_code == 200 and response.json() == {}, response.text[:300]
    entry = await edge.outbox.get(f"review-{CALL_ID}")
    assert entry is not None
    review = entry.input()
    assert isinstance(review, EscalationReviewInput) and review.transcript.endswith("AI: hello. ")
    assert review.transfer_statuses == ["connected"]


async def test_end_of_call_report_above_the_report_limit_gets_413(edge: Edge) -> None:
    body = CountingBody("end-of-call-report", size=REPORT_LIMIT + 4 * CHUNK)
    response = await edge.client.post(
        "/webhook/vapi",
        content=body.__aiter__(),
        headers={"content-type": "application/json", "x-vapi-secret": SECRET},
    )
    assert_413(response)
    assert str(REPORT_LIMIT) in response.json()["error"]["message"]
    assert body.pulled <= REPORT_LIMIT + CHUNK


async def test_declared_report_above_the_report_limit_gets_413_after_reading_the_body_limit(
    edge: Edge,
) -> None:
    body = CountingBody("end-of-call-report", size=REPORT_LIMIT + 4 * CHUNK)
    headers = {
        "content-type": "application/json",
        "x-vapi-secret": SECRET,
        "content-length": str(len(body.head()) + body.size + 3),
    }
    response = await edge.client.post("/webhook/vapi", content=body.__aiter__(), headers=headers)
    assert_413(response)
    assert body.pulled <= LIMIT + CHUNK


async def test_other_body_named_a_report_in_its_first_bytes_is_judged_by_the_body_limit(edge: Edge) -> None:
    """Read on because it looked like a report; parsed as a status-update it is too large after all."""
    pad = "a" * (2 * LIMIT)
    raw = (
        json.dumps(
            {
                "message": {
                    "type": "status-update",
                    "call": {"id": "c"},
                    "note": {"type": "end-of-call-report"},
                }
            }
        ).encode()[:-2]
        + f', "pad": "{pad}"}}}}'.encode()
    )
    assert_413(await edge.post(raw))


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        (b'{"message": {"timestamp": 1, "type" : "end-of-call-report", "artifact": {', "end-of-call-report"),
        (b'{"message":{"type":"transfer-destination-request","call":{', "transfer-destination-request"),
        (b'{"message": {"call": {"type": "inboundPhoneCall"}, "type": "status-update"', None),
        (b'{"message": {"type": "status-update", "t": "say \\"type\\": \\"end-of-call-report\\""', None),
    ],
    ids=["report", "transfer", "other", "inside-a-string"],
)
def test_message_kind_is_read_from_the_first_bytes(prefix: bytes, kind: str | None) -> None:
    assert message_kind(prefix) == kind


@pytest.mark.parametrize(
    ("kind", "status"), [("status-update", b"413"), ("transfer-destination-request", b"200")]
)
async def test_answer_arrives_over_http_while_the_10mb_body_is_still_unsent(
    tmp_path: Path, kind: str, status: bytes
) -> None:
    async with (
        fake_routing_server() as fake,
        local_server(create_app(settings_for(tmp_path, fake.address)), lifespan="on") as http,
        asyncio.timeout(20),
    ):
        host, port = http.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (
            "POST /webhook/vapi HTTP/1.1\r\n"
            f"host: {host}\r\n"
            "content-type: application/json\r\n"
            f"x-vapi-secret: {SECRET}\r\n"
            f"content-length: {TEN_MB}\r\n\r\n"
        )
        writer.write(head.encode() + f'{{"message": {{"type": "{kind}", "pad": "'.encode())
        for _ in range(LIMIT // CHUNK + 2):  # just past the limit; 8.9 MB never sent
            writer.write(b"a" * CHUNK)
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 " + status), status_line
