"""Helpers of the hostile-input suite: the real edge app served by uvicorn on 127.0.0.1:<ephemeral> in a
thread of its own (with the edge tests' controllable routing servicer), so synchronous property tests
(schemathesis, hypothesis) can hit it over real HTTP; and the checks every answer must pass."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from escalade_cli.local_server import local_server
from tests.edge.edge_support import PREVIOUS_SECRET, SECRET, RunningFake, fake_routing_server
from webhook_edge.app import create_app
from webhook_edge.settings import EdgeSettings


@dataclass
class LiveEdge:
    url: str
    fake: RunningFake
    settings: EdgeSettings


@contextmanager
def live_edge(tmp_path: Path) -> Iterator[LiveEdge]:
    """The edge (secret configured, 1 MiB body limit) on a real port, routing answered by the fake."""
    ready = threading.Event()
    found: dict[str, Any] = {}

    async def main() -> None:
        async with fake_routing_server() as fake:
            settings = EdgeSettings(
                vapi_secret=SecretStr(SECRET),
                vapi_previous_secret=SecretStr(PREVIOUS_SECRET),
                routing_address=fake.address,
                routing_deadline_ms=2000,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
                log_level="warning",
                api_docs=True,  # the fuzzer reads the schema the edge serves
            )
            async with local_server(create_app(settings), lifespan="on") as http:
                stop = asyncio.Event()
                found.update(
                    edge=LiveEdge(http.url, fake, settings), loop=asyncio.get_running_loop(), stop=stop
                )
                ready.set()
                await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced to the test below instead of dying in the thread
            found["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="live-edge", daemon=True)
    thread.start()
    if not ready.wait(60) or "error" in found:
        raise RuntimeError(f"the edge did not start: {found.get('error')!r}")
    try:
        yield found["edge"]
    finally:
        found["loop"].call_soon_threadsafe(found["stop"].set)
        thread.join(30)


def assert_no_server_error(response: httpx.Response) -> None:
    """Below 500; a rejection is JSON carrying a code and a reason, never a traceback."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert response.headers.get("content-type", "").startswith("application/json"), response.text[:200]
        error = response.json()["error"]
        assert error["code"] and error["message"], response.text[:500]


def usable_destination(response: httpx.Response) -> str:
    """The number or SIP URI of a 200 transfer answer (fails when neither is there)."""
    assert response.status_code == 200, response.text[:500]
    destination = response.json()["destination"]
    target = destination.get("number") or destination.get("sipUri")
    assert isinstance(target, str) and target, response.text[:500]
    return target
