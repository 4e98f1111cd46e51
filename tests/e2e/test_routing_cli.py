"""`escalade` subprocesses end to end: routing serve on a free port, customers/agents import, agents
list/status, policy check/explain, readable one-line errors, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


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


def _wait_serving(address: str, proc: subprocess.Popen[str]) -> None:
    with grpc.insecure_channel(address) as channel:
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


class Cli:
    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env, self.cwd, self.exe = env, cwd, _escalade()

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.exe, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[Cli, str, subprocess.Popen[str]]]:
    port = _free_port()
    address = f"127.0.0.1:{port}"
    env = {
        **os.environ,
        "ESCALADE_DATABASE_URL": database_url,
        "ESCALADE_ROUTING_ADDRESS": address,
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }
    cli = Cli(env, tmp_path)
    proc = subprocess.Popen(
        [cli.exe, "routing", "serve", "--address", address, "--policy", str(EXAMPLES / "techcorp.yaml")],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_serving(address, proc)
        yield cli, address, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_manages_data_and_explains_decisions_when_the_service_runs(
    served: tuple[Cli, str, subprocess.Popen[str]],
) -> None:
    cli, address, proc = served
    imported = cli.run("customers", "import", str(EXAMPLES / "techcorp-customers.csv"))
    assert imported.returncode == 0, imported.stderr
    assert "imported 4 customers (4 new" in imported.stdout

    agents = cli.run("agents", "import", str(EXAMPLES / "techcorp-agents.yaml"))
    assert agents.returncode == 0, agents.stderr
    listed = cli.run("agents", "list", "--team", "technical")
    assert listed.returncode == 0 and "tech-1" in listed.stdout and "billing-1" not in listed.stdout

    offline = cli.run("agents", "status", "tech-1", "offline")
    assert offline.returncode == 0 and "tech-1: offline" in offline.stdout

    with grpc.insecure_channel(address) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        decision = stub.ResolveEscalation(
            pb.ResolveEscalationRequest(
                call_id="e2e-call",
                caller_number="+0987654321",
                issue_category="billing",
                complexity=pb.COMPLEXITY_BASIC,
            ),
            timeout=10,
        ).decision
    assert decision.team_id == "billing"
    explained = cli.run("policy", "explain", "e2e-call")
    assert explained.returncode == 0, explained.stderr
    assert "call e2e-call" in explained.stdout and "billing" in explained.stdout
    assert "trace" in explained.stdout and "rule" in explained.stdout

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")


def test_cli_errors_are_one_readable_line_when_input_or_ids_are_bad(
    served: tuple[Cli, str, subprocess.Popen[str]], tmp_path: Path
) -> None:
    cli, _, proc = served
    ghost = cli.run("agents", "status", "ghost", "busy")
    assert ghost.returncode == 1 and "NOT_FOUND" in ghost.stderr and "Traceback" not in ghost.stderr
    missing = cli.run("policy", "explain", "never-routed")
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr

    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("number,tier\nnot-a-number,premium\n")
    bad = cli.run("customers", "import", str(bad_csv))
    assert bad.returncode == 1 and "bad.csv" in bad.stderr and "number" in bad.stderr
    assert "Traceback" not in bad.stderr
    absent = cli.run("agents", "import", str(tmp_path / "nope.yaml"))
    assert absent.returncode == 1 and "Traceback" not in absent.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_policy_check_validates_and_dry_runs_sample_calls_when_given_calls(
    sqlite_url: str, tmp_path: Path
) -> None:
    cli = Cli(
        {**os.environ, "ESCALADE_DATABASE_URL": sqlite_url, "COLUMNS": "250", "NO_COLOR": "1"}, tmp_path
    )
    ok = cli.run(
        "policy",
        "check",
        str(EXAMPLES / "techcorp.yaml"),
        "--calls",
        str(EXAMPLES / "calls.jsonl"),
        "--customers",
        str(EXAMPLES / "techcorp-customers.csv"),
        "--agents",
        str(EXAMPLES / "techcorp-agents.yaml"),
    )
    assert ok.returncode == 0, ok.stderr
    assert "OK: policy 'techcorp'" in ok.stdout
    assert "enterprise-tier" in ok.stdout and "billing-and-account" in ok.stdout
    assert "transfer_agent (tech-1)" in ok.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "techcorp.yaml").read_text().replace('"+15550100300"', '"555-BILL"'))
    rejected = cli.run("policy", "check", str(bad))
    assert rejected.returncode == 1
    assert "teams.billing.destination.number" in rejected.stderr and "Traceback" not in rejected.stderr


def test_routing_serve_fails_readably_when_the_policy_is_bad(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [broken")
    cli = Cli({**os.environ, "ESCALADE_DATABASE_URL": sqlite_url}, tmp_path)
    result = cli.run("routing", "serve", "--address", f"127.0.0.1:{_free_port()}", "--policy", str(bad))
    assert result.returncode == 1
    assert "bad.yaml" in result.stderr and "Traceback" not in result.stderr


def test_routing_serve_reloads_the_policy_when_sent_sighup(sqlite_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text((EXAMPLES / "techcorp.yaml").read_text())
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "ESCALADE_DATABASE_URL": sqlite_url, "ESCALADE_POLICY_POLL_SECONDS": "3600"}
    proc = subprocess.Popen(
        [_escalade(), "routing", "serve", "--address", address, "--policy", str(policy)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_serving(address, proc)
        with grpc.insecure_channel(address) as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)

            def billing_number(call_id: str) -> str:
                request = pb.ResolveEscalationRequest(call_id=call_id, issue_category="billing", dry_run=True)
                return str(stub.ResolveEscalation(request, timeout=10).decision.destination.number)

            assert billing_number("before") == "+15550100300"
            policy.write_text(policy.read_text().replace('"+15550100300"', '"+15550100399"'))
            proc.send_signal(signal.SIGHUP)
            for _ in range(100):
                if billing_number("after") == "+15550100399":
                    break
                time.sleep(0.1)
            assert billing_number("after") == "+15550100399"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _call_event(address: str, call_id: str, kind: pb.CallEventKind.ValueType, reason: str = "") -> None:
    with grpc.insecure_channel(address) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        stub.RecordCallEvent(
            pb.RecordCallEventRequest(call_id=call_id, kind=kind, ended_reason=reason), timeout=10
        )


def test_agents_complete_and_activity_when_a_specialist_talks_then_wraps_up(
    served: tuple[Cli, str, subprocess.Popen[str]],
) -> None:
    cli, address, proc = served
    assert cli.run("agents", "import", str(EXAMPLES / "techcorp-agents.yaml")).returncode == 0
    with grpc.insecure_channel(address) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        decision = stub.ResolveEscalation(
            pb.ResolveEscalationRequest(
                call_id="talk-1",
                tool_call_id="t1",
                issue_category="technical",
                complexity=pb.COMPLEXITY_ADVANCED,
            ),
            timeout=10,
        ).decision
    specialist = decision.agent_id
    assert decision.kind == pb.DECISION_KIND_TRANSFER_AGENT and specialist
    early = cli.run("agents", "complete", "talk-1")
    assert early.returncode == 1 and "FAILED_PRECONDITION" in early.stderr and "not connected" in early.stderr
    assert "Traceback" not in early.stderr
    _call_event(address, "talk-1", pb.CALL_EVENT_KIND_FORWARDING)
    _call_event(address, "talk-1", pb.CALL_EVENT_KIND_ENDED, "assistant-forwarded-call")

    listed = cli.run("agents", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["agent_id"]: row for row in json.loads(listed.stdout)["agents"]}
    assert rows[specialist]["activity"] == "talking" and rows[specialist]["activity_since"]
    table = cli.run("agents", "list", "--team", "technical")
    assert table.returncode == 0 and "talking since" in table.stdout
    status = cli.run(
        "status", "--json", "--temporal", "none", "--edge", "http://127.0.0.1:9", "--timeout", "1"
    )
    shown = {row["agent_id"]: row for row in json.loads(status.stdout)["specialists"]}
    assert shown[specialist]["activity"] == "talking"
    screen = cli.run("status", "--temporal", "none", "--edge", "http://127.0.0.1:9", "--timeout", "1")
    assert "talking since" in screen.stdout and "Traceback" not in screen.stderr

    done = cli.run("agents", "complete", specialist, "--agent", "--note", "fixed the router")
    assert done.returncode == 0, done.stderr
    assert f"{specialist} on call talk-1: conversation completed; wrap-up until" in done.stdout
    again = cli.run("agents", "complete", "talk-1")
    assert again.returncode == 0 and "already completed" in again.stdout
    wrapping = {r["agent_id"]: r for r in json.loads(cli.run("agents", "list", "--json").stdout)["agents"]}
    assert wrapping[specialist]["activity"] == "wrap-up"
    freed = cli.run("agents", "complete", "talk-1", "--skip-wrap-up")
    assert freed.returncode == 0, freed.stderr
    after = {r["agent_id"]: r for r in json.loads(cli.run("agents", "list", "--json").stdout)["agents"]}
    assert (after[specialist]["activity"], after[specialist]["active_assignments"]) == ("available", 0)

    ghost = cli.run("agents", "complete", "never-called")
    assert ghost.returncode == 1 and "NOT_FOUND" in ghost.stderr and "Traceback" not in ghost.stderr
    nobody = cli.run("agents", "complete", "ghost", "--agent")
    assert nobody.returncode == 1 and "NOT_FOUND" in nobody.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
