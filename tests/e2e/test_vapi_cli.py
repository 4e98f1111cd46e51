"""`escalade vapi provision` and `escalade simulate` as subprocesses: provisioning's dry run and readable
errors, and a simulation against `escalade routing serve` (subprocess) plus the edge app.

The create-then-update run against the local stand-in for Vapi's API is
`tests/edge/test_provisioning.py::test_cli_provisions_then_updates_when_run_twice`: the same command, in
process through typer's CliRunner, so the Vapi SDK's models (tens of seconds to import on a loaded 2-core
machine) are imported once per test worker rather than once per subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from tests.edge.vapi_api_standin import running_vapi, serve_in_thread
from webhook_edge.app import create_app
from webhook_edge.settings import EdgeSettings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SECRET = "e2e-webhook-secret-51d0"
API_KEY = "vapi-private-key-e2e"


def _escalade() -> str:
    path = Path(sysconfig.get_path("scripts")) / "escalade"
    found = str(path) if path.exists() else shutil.which("escalade")
    if found is None:
        pytest.fail("the escalade console script is not installed; run the README's test command")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cells(text: str, scenario: str) -> list[str]:
    line = next(line for line in text.splitlines() if f" {scenario} " in line)
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


class Cli:
    def __init__(self, cwd: Path, **env: str) -> None:
        self.cwd = cwd
        self.exe = _escalade()
        base = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
        self.env = {**base, "COLUMNS": "250", "NO_COLOR": "1", **env}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exe, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=140
        )


@pytest.fixture
def vapi_api() -> Iterator[Any]:
    with running_vapi(API_KEY) as stand_in:
        yield stand_in


@pytest.fixture
def cli(vapi_api: Any, tmp_path: Path) -> Cli:
    return Cli(
        tmp_path,
        ESCALADE_VAPI_API_URL=vapi_api.url,
        ESCALADE_VAPI_API_KEY=API_KEY,
        ESCALADE_VAPI_SECRET=SECRET,
        ESCALADE_POLICY=str(EXAMPLES / "techcorp.yaml"),
    )


# ----------------------------------------------------------------------------------------------------
# escalade vapi provision
# ----------------------------------------------------------------------------------------------------
def test_cli_import_does_not_load_vapi_sdk_when_started() -> None:
    code = "import sys, escalade_cli.main; print('vapi' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert result.stdout.strip() == "False", result.stderr


def test_dry_run_prints_json_and_sends_nothing_when_run(cli: Cli, vapi_api: Any) -> None:
    result = cli.run("vapi", "provision", "--dry-run", "--server-url", "https://edge.example.com")
    assert result.returncode == 0, result.stderr
    assert vapi_api.requests == []
    assert SECRET not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert list(shown) == ["credential", "structuredOutput", "tool", "assistant"]
    assert shown["tool"]["type"] == "function"
    issue = shown["tool"]["function"]["parameters"]["properties"]["issue_category"]
    assert issue["enum"] == ["technical", "billing", "account", "product"]  # from examples/techcorp.yaml
    assert shown["assistant"]["server"] == {
        "url": "https://edge.example.com/webhook/vapi",
        "timeoutSeconds": 20,
        "credentialId": "<id of the Escalade webhook credential>",
    }
    assert shown["credential"]["authenticationPlan"]["secretKey"] == "***"
    assert "dry run: nothing is sent" in result.stderr
    transfer = cli.run("vapi", "provision", "--dry-run", "--tool-style", "transfer")
    assert transfer.returncode == 0, transfer.stderr
    assert json.loads(transfer.stdout)["tool"]["type"] == "transferCall"


def test_missing_api_key_is_one_readable_line_when_not_dry_run(cli: Cli, vapi_api: Any) -> None:
    cli.env.pop("ESCALADE_VAPI_API_KEY")
    result = cli.run("vapi", "provision", "--server-url", "https://edge.example.com")
    assert result.returncode == 1
    assert "ESCALADE_VAPI_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert vapi_api.requests == []


def test_bad_policy_is_a_readable_error_when_given(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: broken\nteams: {}\n")
    result = cli.run("vapi", "provision", "--dry-run", "--policy", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith("error: bad policy:")
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr


# ----------------------------------------------------------------------------------------------------
# escalade simulate
# ----------------------------------------------------------------------------------------------------
def _wait_serving(address: str, proc: subprocess.Popen[str]) -> None:
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(300):
            if proc.poll() is not None:
                pytest.fail("routing serve exited early (see routing.log)")
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    pytest.fail("routing serve never became SERVING")


@pytest.fixture
def routing_and_edge(tmp_path: Path) -> Iterator[tuple[Cli, str, str]]:
    """`escalade routing serve` (subprocess, SQLite, TechCorp demo data) and the edge app in a thread."""
    address = f"127.0.0.1:{_free_port()}"
    cli = Cli(
        tmp_path,
        ESCALADE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'escalade.db'}",
        ESCALADE_ROUTING_ADDRESS=address,
        ESCALADE_VAPI_SECRET=SECRET,
    )
    log = (tmp_path / "routing.log").open("w")
    proc = subprocess.Popen(
        [cli.exe, "routing", "serve", "--address", address, "--policy", str(EXAMPLES / "techcorp.yaml")],
        env=cli.env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_serving(address, proc)
        for args in (
            ("customers", "import", str(EXAMPLES / "techcorp-customers.csv")),
            ("agents", "import", str(EXAMPLES / "techcorp-agents.yaml")),
        ):
            imported = cli.run(*args)
            assert imported.returncode == 0, imported.stderr
        settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=address,
            routing_deadline_ms=3000,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
        )
        with serve_in_thread(create_app(settings)) as edge_url:
            yield cli, edge_url, address
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


def test_simulate_routes_every_scenario_to_its_team_when_stack_runs(
    routing_and_edge: tuple[Cli, str, str],
) -> None:
    cli, edge_url, address = routing_and_edge
    expected = {
        "enterprise-technical": "enterprise",
        "standard-billing": "billing",
        "premium-technical": "technical",
        "critical-outage": "enterprise",
        "busy-specialists": "technical (callback)",
        "web-call": "product",
    }
    result = cli.run("simulate", "--edge", edge_url, "--routing", address, *expected)
    assert result.returncode == 0, result.stdout + result.stderr
    for scenario, team in expected.items():
        cells = _cells(result.stdout, scenario)
        assert cells[2] == team, cells
        assert cells[-1] == "OK", cells
    assert _cells(result.stdout, "busy-specialists")[1] == "+15550100600"
    assert SECRET not in result.stdout + result.stderr


def test_simulate_exits_1_when_secret_is_wrong(routing_and_edge: tuple[Cli, str, str]) -> None:
    cli, edge_url, address = routing_and_edge
    result = cli.run("simulate", "--edge", edge_url, "--routing", address, "--secret", "nope", "web-call")
    assert result.returncode == 1
    assert "non-2xx answer from the edge: HTTP 401" in result.stderr
    assert _cells(result.stdout, "web-call")[-1] == "MISMATCH"


def test_simulate_exits_1_with_readable_message_when_edge_is_down(tmp_path: Path) -> None:
    cli = Cli(tmp_path, ESCALADE_VAPI_SECRET=SECRET)
    result = cli.run("simulate", "--edge", f"http://127.0.0.1:{_free_port()}", "web-call")
    assert result.returncode == 1
    assert "is not reachable" in result.stderr
    assert "Traceback" not in result.stderr
