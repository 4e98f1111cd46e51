"""`run_worker` against a routing service that serves TLS and authorizes by role: with the routing CA and
the worker's token its availability relay opens the WatchAvailability stream; with another role's token
routing refuses the stream and the relay's other reads (PERMISSION_DENIED), and the relay keeps retrying."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs
from temporalio.client import Client

from routing_service.grpc.server import RoutingServer
from tests.service.security_support import TOKENS, issue, serving
from workflows.settings import WorkerSettings
from workflows.worker import run_worker


def _settings(server: RoutingServer, tmp_path: Path, ca: Path, token: str) -> WorkerSettings:
    return WorkerSettings(
        task_queue=f"tq-{uuid.uuid4()}",
        routing_address=f"127.0.0.1:{server.port}",
        routing_ca=ca,
        routing_token=SecretStr(token),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
        worker_metrics_address="",
        register_search_attributes=False,
        reconcile_seconds=0,
        relay_backoff_max_seconds=0.5,
        policy=None,
    )


@pytest.mark.parametrize("role", ["worker", "edge"])
async def test_the_workers_relay_watches_availability_only_with_the_worker_role(
    client: Client, sqlite_url: str, tmp_path: Path, role: str
) -> None:
    pki = issue(tmp_path / "pki", client_names=())
    security = {
        "routing_server_cert": pki.server_cert,
        "routing_server_key": pki.server_key,
        "routing_tokens": {"worker": TOKENS["worker"], "edge": TOKENS["edge"]},
    }
    with capture_logs() as logs:
        async with serving(sqlite_url, **security) as server:
            stop = asyncio.Event()
            worker = asyncio.create_task(
                run_worker(_settings(server, tmp_path, pki.ca, TOKENS[role]), stop=stop, client=client)
            )
            try:
                for _ in range(600):  # 30 s
                    if server.events.subscriber_count == 1 or any(
                        entry["event"] == "routing_call_refused" for entry in logs
                    ):
                        break
                    await asyncio.sleep(0.05)
                else:
                    pytest.fail("the relay neither opened the stream nor was refused")
            finally:
                stop.set()
                await asyncio.wait_for(worker, 30)
    refused = [entry for entry in logs if entry["event"] == "routing_call_refused"]
    if role == "worker":
        assert refused == []
        assert any(entry["event"] == "routing_started" for entry in logs)
    else:
        assert ("WatchAvailability", "PERMISSION_DENIED") in {(e["method"], e["code"]) for e in refused}
        assert {entry["code"] for entry in refused} == {"PERMISSION_DENIED"}
