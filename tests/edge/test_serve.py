"""The edge on real sockets: in-process uvicorn on an ephemeral port, and the `escalade edge serve`
command as a subprocess (refusal without a secret, serving, graceful shutdown on SIGTERM)."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from escalade_cli.local_server import local_server
from tests.edge.edge_support import SECRET, RunningFake, dumps, load_fixture, signed_headers
from webhook_edge.app import create_app
from webhook_edge.settings import EdgeSettings

ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"


def escalade() -> list[str]:
    script = Path(sysconfig.get_path("scripts")) / "escalade"
    return [str(script)] if script.exists() else [sys.executable, "-m", "escalade_cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_webhook_answers_over_real_socket_when_served_by_uvicorn(
    edge_settings: EdgeSettings, fake_routing: RunningFake
) -> None:
    async with (
        local_server(
            create_app(edge_settings.model_copy(update={"api_docs": True})), lifespan="on"
        ) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        body = dumps(load_fixture(ENTERPRISE))
        routed = await client.post("/webhook/vapi", content=body, headers=signed_headers(body))
        assert routed.status_code == 200
        assert routed.json()["destination"]["number"] == "+15550100200"

        async def two_mib() -> AsyncIterator[bytes]:
            yield b'{"message": {"type": "x", "pad": "'
            for _ in range(32):
                yield b"a" * 65_536
            yield b'"}}'

        too_big = await client.post(
            "/webhook/vapi",
            content=two_mib(),
            headers={"content-type": "application/json", "x-vapi-secret": SECRET},
        )
        assert too_big.status_code == 413
        assert too_big.json()["error"]["code"] == "payload_too_large"
        assert (await client.get("/readyz")).status_code == 200
        docs = (await client.get("/openapi.json")).json()
        webhook = docs["paths"]["/webhook/vapi"]["post"]
        assert "examples" in webhook["requestBody"]["content"]["application/json"]
        assert {"200", "400", "401", "413", "415"} <= set(webhook["responses"])


@pytest.mark.e2e
async def test_startup_heap_is_frozen_only_when_the_app_owns_its_process(
    edge_settings: EdgeSettings, fake_routing: RunningFake
) -> None:
    gc.unfreeze()
    try:
        async with local_server(create_app(edge_settings), lifespan="on"):
            assert gc.get_freeze_count() == 0, "an app embedded in another process leaves its heap alone"
        async with (
            local_server(create_app(edge_settings, freeze_heap=True), lifespan="on") as server,
            httpx.AsyncClient(base_url=server.url) as client,
        ):
            assert gc.get_freeze_count() > 10_000, "escalade edge serve: modules and models are frozen"
            body = dumps(load_fixture(ENTERPRISE))
            routed = await client.post("/webhook/vapi", content=body, headers=signed_headers(body))
            assert routed.json()["destination"]["number"] == "+15550100200"
    finally:
        gc.unfreeze()


def test_serve_refuses_to_start_when_no_secret_and_not_insecure_dev(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
    result = subprocess.run(
        [*escalade(), "edge", "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ESCALADE_VAPI_SECRET" in result.stderr and "--insecure-dev" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.e2e
def test_serve_answers_and_stops_gracefully_when_sigterm(tmp_path: Path, fake_routing: RunningFake) -> None:
    port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
    env |= {
        "ESCALADE_EDGE_METRICS_PORT": str(metrics_port),
        "ESCALADE_VAPI_SECRET": SECRET,
        "ESCALADE_ROUTING_ADDRESS": "127.0.0.1:9",  # nothing there: the edge must answer its fallback
        "ESCALADE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
        "ESCALADE_ROUTING_DEADLINE_MS": "300",
    }
    process = subprocess.Popen(
        [*escalade(), "edge", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("the edge did not start")
        body = dumps(load_fixture(ENTERPRISE))
        response = httpx.post(f"{base}/webhook/vapi", content=body, headers=signed_headers(body), timeout=10)
        assert response.status_code == 200
        assert response.json()["destination"]["number"] == "+15550100900"
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
        for public_only in ("/metrics", "/docs", "/openapi.json"):  # the public port serves Vapi only
            assert httpx.get(f"{base}{public_only}", timeout=5).status_code == 404
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert scraped.status_code == 200
        assert 'escalade_edge_fallbacks_total{cause="routing_unavailable"} 1.0' in scraped.text
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "Application shutdown complete" in output
    assert "+1234567890" not in output  # the caller's number never appears in full
