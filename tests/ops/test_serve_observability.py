"""`escalade routing serve` as a real process: /metrics on --metrics-port, and console tracing from
ESCALADE_OTEL_EXPORTER exporting the RPC spans when the service stops."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from tests.ops.ops_support import sample
from tests.support.routing import TECHCORP_POLICY

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(address: str, proc: subprocess.Popen[bytes]) -> None:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail("routing serve exited early")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    pytest.fail("routing serve never became SERVING")


def test_routing_serve_exposes_metrics_and_exports_spans_when_configured(
    sqlite_url: str, tmp_path: Path
) -> None:
    address, metrics_port = f"127.0.0.1:{free_port()}", free_port()
    env = {
        **os.environ,
        "ESCALADE_DATABASE_URL": sqlite_url,
        "ESCALADE_OTEL_EXPORTER": "console",
        "NO_COLOR": "1",
    }
    exe = str(Path(sysconfig.get_path("scripts")) / "escalade")
    policy = str(TECHCORP_POLICY)
    stdout = (tmp_path / "stdout.txt").open("wb")
    proc = subprocess.Popen(
        [
            exe,
            "routing",
            "serve",
            "--address",
            address,
            "--metrics-port",
            str(metrics_port),
            "--policy",
            policy,
        ],
        env=env,
        cwd=tmp_path,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(address, proc)
        with grpc.insecure_channel(address) as channel:
            stub = pb_grpc.RoutingServiceStub(channel)
            stub.GetQueueStatus(pb.GetQueueStatusRequest(), timeout=5)
            reply = stub.ReleaseAssignment(
                pb.ReleaseAssignmentRequest(call_id="never-routed", reason="test"), timeout=5
            )
        assert reply.released is False
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert scraped.status_code == 200
        text = scraped.text
        assert sample(text, "escalade_routing_releases_total", released="false") == 1
        assert (
            sample(text, "escalade_routing_decision_latency_seconds_count", method="ReleaseAssignment") == 1
        )
        assert "escalade_routing_waiting_callbacks" in text
        assert sample(text, "escalade_routing_free_specialists", team="enterprise") == 0  # no agents loaded
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stdout.close()
    spans = (tmp_path / "stdout.txt").read_text()
    assert '"name": "/escalade.routing.v1.RoutingService/ReleaseAssignment"' in spans
    assert '"name": "db.query' in spans
    assert "never-routed" not in spans  # request messages are not recorded
