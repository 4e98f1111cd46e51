"""`escalade routing serve` with TLS and tokens from the environment, and the CLI commands that call it
(`agents`, `customers`, `status`) with ESCALADE_ROUTING_CA and ESCALADE_ROUTING_TOKEN: the right role
works, a missing token or the wrong role is one readable line (exit 1), a bad client setting exits 2, and
no token reaches the server's or the CLI's output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from escalade_platform.routing_channel import blocking_routing_channel
from escalade_platform.settings import RoutingClientSettings
from tests.e2e.test_routing_cli import EXAMPLES, Cli, _free_port
from tests.service.security_support import TOKENS, Pki, issue

pytestmark = pytest.mark.e2e

_SERVER_TOKENS = {"admin": TOKENS["admin"], "reader": TOKENS["reader"], "agent": TOKENS["agent"]}


@dataclass
class Served:
    address: str
    pki: Pki
    proc: subprocess.Popen[str]
    base_env: dict[str, str]
    tmp_path: Path

    def cli(self, **routing_env: str) -> Cli:
        """The CLI with ESCALADE_ROUTING_CA set and `routing_env` (e.g. ESCALADE_ROUTING_TOKEN) added."""
        env = {**self.base_env, "ESCALADE_ROUTING_CA": str(self.pki.ca), **routing_env}
        return Cli(env, self.tmp_path)


def _wait_serving(settings: RoutingClientSettings, proc: subprocess.Popen[str]) -> None:
    with blocking_routing_channel(settings) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail(f"routing serve exited early:\n{proc.stderr.read() if proc.stderr else ''}")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    pytest.fail("routing serve never became SERVING")


@pytest.fixture
def served(sqlite_url: str, tmp_path: Path) -> Iterator[Served]:
    pki = issue(tmp_path / "pki", client_names=())
    address = f"127.0.0.1:{_free_port()}"
    base_env = {
        key: value for key, value in os.environ.items() if not key.startswith("ESCALADE_ROUTING_")
    } | {
        "ESCALADE_DATABASE_URL": sqlite_url,
        "ESCALADE_ROUTING_ADDRESS": address,
        "ESCALADE_METRICS_PORT": "0",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    server_env = base_env | {
        "ESCALADE_ROUTING_SERVER_CERT": str(pki.server_cert),
        "ESCALADE_ROUTING_SERVER_KEY": str(pki.server_key),
        "ESCALADE_ROUTING_TOKENS": json.dumps(_SERVER_TOKENS),
    }
    cli = Cli(server_env, tmp_path)
    proc = subprocess.Popen(
        [cli.exe, "routing", "serve", "--policy", str(EXAMPLES / "techcorp.yaml")],
        env=server_env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_serving(RoutingClientSettings(routing_address=address, routing_ca=pki.ca), proc)
        yield Served(address, pki, proc, base_env, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_commands_call_a_tls_routing_service_with_their_token_and_role(served: Served) -> None:
    admin = served.cli(ESCALADE_ROUTING_TOKEN=TOKENS["admin"])
    imported = admin.run("agents", "import", str(EXAMPLES / "techcorp-agents.yaml"))
    assert imported.returncode == 0, imported.stderr
    customers = admin.run("customers", "import", str(EXAMPLES / "techcorp-customers.csv"))
    assert customers.returncode == 0, customers.stderr

    agent = served.cli(ESCALADE_ROUTING_TOKEN=TOKENS["agent"])
    offline = agent.run("agents", "status", "tech-1", "offline")
    assert offline.returncode == 0 and "tech-1: offline" in offline.stdout

    reader = served.cli(ESCALADE_ROUTING_TOKEN=TOKENS["reader"])
    listed = reader.run("agents", "list", "--team", "technical")
    assert listed.returncode == 0 and "tech-1" in listed.stdout
    status = reader.run("status", "--json", "--temporal", "none", "--edge", "http://127.0.0.1:1")
    report = json.loads(status.stdout)
    routing = {probe["name"]: probe for probe in report["services"] if probe["name"].startswith("routing")}
    assert routing["routing"]["up"] is True and "routing data" not in routing, routing
    assert report["specialists"], "status read the specialists over TLS with the reader token"

    denied = reader.run("agents", "import", str(EXAMPLES / "techcorp-agents.yaml"))
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    assert "role reader may not call UpsertAgent" in denied.stderr and "Traceback" not in denied.stderr

    anonymous = served.cli().run("agents", "list")
    assert anonymous.returncode == 1 and "UNAUTHENTICATED" in anonymous.stderr
    assert "ESCALADE_ROUTING_TOKEN" in anonymous.stderr and "Traceback" not in anonymous.stderr

    wrong = served.cli(ESCALADE_ROUTING_TOKEN="not-the-token-of-anyone-here").run("agents", "list")
    assert wrong.returncode == 1 and "not one this server accepts" in wrong.stderr

    plaintext = Cli(served.base_env | {"ESCALADE_ROUTING_TOKEN": TOKENS["admin"]}, served.tmp_path)
    unreachable = plaintext.run("agents", "list")
    assert unreachable.returncode == 1 and "not reachable" in unreachable.stderr

    missing_ca = served.cli(ESCALADE_ROUTING_CA=str(served.tmp_path / "absent.pem")).run("agents", "list")
    assert missing_ca.returncode == 2 and "ESCALADE_ROUTING_CA" in missing_ca.stderr
    assert "Traceback" not in missing_ca.stderr

    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=30) == 0
    output = served.proc.stdout.read() if served.proc.stdout else ""
    assert "routing_call_refused" in output and "access='by role'" in output and "tls=on" in output
    everything = output + "".join(
        result.stdout + result.stderr
        for result in (imported, customers, offline, listed, status, denied, anonymous, wrong, unreachable)
    )
    for token in (*TOKENS.values(), "not-the-token-of-anyone-here"):
        assert token not in everything
