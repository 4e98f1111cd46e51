"""The worker's Prometheus endpoint: the Temporal SDK's worker metrics and the reconciler's counter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from workflows.metrics import RECONCILED, metrics_runtime, reconciled_counter
from workflows.settings import WorkerSettings
from workflows.worker import run_worker


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def scrape_until(url: str, wanted: str, seconds: float = 10.0) -> str:
    """The exposition once it contains `wanted` (the exporter serves what has been recorded so far)."""
    text = ""
    async with httpx.AsyncClient(timeout=2.0) as http, asyncio.timeout(seconds):
        while wanted not in text:
            with contextlib.suppress(httpx.TransportError):
                text = (await http.get(url)).text
            if wanted not in text:
                await asyncio.sleep(0.1)
    return text


def sample(text: str, name: str) -> float:
    """The value of the one sample of metric `name` (labels ignored)."""
    [line] = [
        line for line in text.splitlines() if line.startswith(name + "{") or line.startswith(name + " ")
    ]
    return float(line.rsplit(" ", 1)[1])


async def test_reconciled_counter_is_served_when_the_reconciler_counts() -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = metrics_runtime(address)
    assert runtime is not None
    count = reconciled_counter(runtime)
    count()
    count()
    text = await scrape_until(f"http://{address}/metrics", f"{RECONCILED}{{")
    assert sample(text, RECONCILED) == 2
    assert f"# TYPE {RECONCILED} counter" in text


def test_no_metrics_when_the_address_is_empty_taken_or_invalid(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING, logger="workflows.metrics"):
            assert metrics_runtime(f"127.0.0.1:{port}") is None
    assert metrics_runtime("") is None
    assert metrics_runtime("not an address") is None
    assert "in use" in caplog.text


async def test_run_worker_serves_the_sdks_worker_metrics_when_it_connects_itself(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"
    settings = WorkerSettings(
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"tq-{uuid.uuid4()}",
        routing_address=f"127.0.0.1:{free_port()}",  # nothing there: the relay keeps retrying, harmlessly
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
        worker_metrics_address=address,
        register_search_attributes=False,
        reconcile_seconds=0,
        policy=None,
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop))
    try:
        text = await scrape_until(f"http://{address}/metrics", "temporal_", seconds=30)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    assert any(line.startswith("temporal_") for line in text.splitlines())
