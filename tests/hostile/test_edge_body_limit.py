"""The body size limit is enforced before parsing and without reading what lies beyond it: a 10 MB webhook
gets a JSON 413 whether its length is declared or streamed in chunks, the app pulls at most the limit (plus
a chunk) of it, and over real HTTP the 413 comes back while the client has sent almost none of the body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from escalade_cli.local_server import local_server
from tests.edge.edge_support import SECRET, Edge, fake_routing_server, running_edge
from tests.hostile.hostile_support import assert_no_server_error
from webhook_edge.app import create_app
from webhook_edge.settings import EdgeSettings

pytestmark = pytest.mark.timeout(60)

TEN_MB = 10 * 1024 * 1024
CHUNK = 64 * 1024
LIMIT = 1024 * 1024


def settings_for(tmp_path: Path, routing_address: str) -> EdgeSettings:
    return EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=routing_address,
        routing_deadline_ms=500,
        max_body_bytes=LIMIT,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
    )


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    async with fake_routing_server() as fake, running_edge(settings_for(tmp_path, fake.address)) as running:
        yield running


class CountingBody:
    """A 10 MB JSON-looking body handed out in 64 KiB chunks, counting what the app pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"message": {"type": "transfer-destination-request", "pad": "'
        for _ in range(TEN_MB // CHUNK):
            self.pulled += CHUNK
            yield b"a" * CHUNK
        yield b'"}}'


def assert_413(response: httpx.Response) -> None:
    assert_no_server_error(response)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_streamed_10mb_body_gets_413_after_reading_at_most_the_limit(edge: Edge) -> None:
    body = CountingBody()
    response = await edge.client.post(
        "/webhook/vapi",
        content=body.__aiter__(),
        headers={"content-type": "application/json", "x-vapi-secret": SECRET},
    )
    assert "content-length" not in response.request.headers
    assert_413(response)
    assert body.pulled <= LIMIT + CHUNK, f"the app read {body.pulled} bytes of a {TEN_MB}-byte body"


async def test_declared_10mb_body_gets_413_before_any_of_it_is_read(edge: Edge) -> None:
    body = CountingBody()
    response = await edge.client.post(
        "/webhook/vapi",
        content=body.__aiter__(),
        headers={
            "content-type": "application/json",
            "x-vapi-secret": SECRET,
            "content-length": str(TEN_MB + 70),
        },
    )
    assert_413(response)
    assert body.pulled <= CHUNK


async def test_413_arrives_over_http_while_the_10mb_body_is_still_unsent(tmp_path: Path) -> None:
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
        writer.write(head.encode() + b'{"message": {"pad": "' + b"a" * 1000)
        await writer.drain()
        status_line = await reader.readline()  # answered with 9.99 MB of the body never sent
        writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
