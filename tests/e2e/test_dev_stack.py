"""`escalade dev` as a subprocess on free ports and a temporary state directory: the whole stack starts,
`escalade simulate` routes every scenario, the busy-specialists callback shows up as a
`callback-<call id>` workflow in Temporal's visibility store, SIGTERM and SIGINT stop every child with
exit code 0, and a second run reuses the state (no re-seeding)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from temporalio.client import Client

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.temporal]

START_WITHIN = 60.0


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


def _children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class DevRun:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    state_dir: Path
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def _env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
    return {**base, "COLUMNS": "250", "NO_COLOR": "1"}


@contextmanager
def escalade_dev(state_dir: Path, **extra_env: str) -> Iterator[DevRun]:
    """Start `escalade dev`, wait for "Escalade is running"; kill it (and its children) if left running."""
    ports = {name: _free_port() for name in ("edge", "routing", "temporal", "ui", "vapi")}
    argv = [_escalade(), "dev", "--state-dir", str(state_dir), "--edge-port", str(ports["edge"])]
    argv += ["--routing-address", f"127.0.0.1:{ports['routing']}", "--temporal-port", str(ports["temporal"])]
    argv += ["--ui-port", str(ports["ui"]), "--vapi-standin-port", str(ports["vapi"])]
    process = subprocess.Popen(
        argv,
        env={**_env(), **extra_env},
        cwd=state_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = DevRun(process, ports, state_dir)
    running = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            run.lines.append(line.rstrip("\n"))
            if "Escalade is running" in line:
                running.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_WITHIN
        while not running.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"escalade dev did not start (code {process.poll()}):\n{run.output}")
        yield run
    finally:
        if process.poll() is None:
            leftovers = _children(process.pid)
            process.kill()
            process.wait()
            for pid in leftovers:
                _kill_quietly(pid)
        reader.join(5)


def _kill_quietly(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _stop(run: DevRun, signum: signal.Signals) -> None:
    """Send `signum` to `escalade dev` alone and check it exits 0 with no child left behind."""
    children = _children(run.process.pid)
    assert len(children) >= 5, children  # temporal, routing, edge, Vapi stand-in, worker
    run.process.send_signal(signum)
    assert run.process.wait(45) == 0, run.output
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in children if _alive(pid)] == []
    assert "Stopping Escalade" in run.output


def _agent_count(routing_port: int) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{routing_port}") as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        reply = stub.ListAgents(pb.ListAgentsRequest(page_size=1000), timeout=10)
        return len(reply.agents)


def _cells(text: str, scenario: str) -> list[str]:
    line = next(line for line in text.splitlines() if f" {scenario} " in line)
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


async def _callback_ids(temporal_port: int) -> list[str]:
    client = await Client.connect(f"127.0.0.1:{temporal_port}")
    query = "WorkflowType = 'QueueCallbackWorkflow'"
    return [execution.id async for execution in client.list_workflows(query)]


def test_simulated_callback_appears_in_temporal_when_dev_stack_runs_then_sigterm_stops_all(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with escalade_dev(state) as run:
        secret = (state / "webhook-secret").read_text().strip()
        edge, routing = f"http://127.0.0.1:{run.ports['edge']}", f"127.0.0.1:{run.ports['routing']}"
        scenarios = ("enterprise-technical", "standard-billing", "premium-technical", "critical-outage")
        named = (*scenarios, "busy-specialists", "web-call")
        result = subprocess.run(
            [_escalade(), "simulate", "--edge", edge, "--routing", routing, *named],
            env={**_env(), "ESCALADE_VAPI_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        for scenario in named:
            assert _cells(result.stdout, scenario)[-1] == "OK", result.stdout
        ids: list[str] = []
        deadline = time.monotonic() + 30
        while not ids and time.monotonic() < deadline:
            ids = asyncio.run(_callback_ids(run.ports["temporal"]))
            time.sleep(0.3)
        assert len(ids) == 1 and ids[0].startswith("callback-"), ids
        assert "Traceback" not in (state / "logs" / "edge.log").read_text()
        _stop(run, signal.SIGTERM)


def test_second_run_reuses_state_when_first_run_stopped_with_sigint(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with escalade_dev(state) as first:
        assert "Empty store" in first.output
        seeded = _agent_count(first.ports["routing"])
        assert seeded > 0
        secret = (state / "webhook-secret").read_text()
        _stop(first, signal.SIGINT)
    with escalade_dev(state) as second:
        assert "Empty store" not in second.output
        assert _agent_count(second.ports["routing"]) == seeded
        assert (state / "webhook-secret").read_text() == secret
        _stop(second, signal.SIGTERM)


@pytest.mark.timeout(400)
def test_callback_meets_voicemail_then_is_handed_to_its_held_specialist_when_dev_stack_plays_it(
    tmp_path: Path,
) -> None:
    """The Vapi stand-in of `escalade dev` plays the callback: voicemail on the first dial, then a reached
    customer whose escalation (tool-calls with originalCallId) is transferred to the specialist held for
    the callback. Retry spacing is cut to 6 s in a copy of the TechCorp policy."""
    policy = tmp_path / "techcorp-fast-retry.yaml"
    text = (Path(__file__).parents[2] / "examples" / "techcorp.yaml").read_text()
    policy.write_text(text.replace("retry_spacing_minutes: 10", "retry_spacing_minutes: 0.1"))
    state = tmp_path / "state"
    env = {"ESCALADE_POLICY": str(policy), "ESCALADE_VAPI_POLL_SECONDS": "0.5"}
    with escalade_dev(state, **env) as run:
        secret = (state / "webhook-secret").read_text().strip()
        edge, routing = f"http://127.0.0.1:{run.ports['edge']}", f"127.0.0.1:{run.ports['routing']}"
        assert (state / "vapi-standin-url").read_text().strip() == f"http://127.0.0.1:{run.ports['vapi']}"
        argv = [_escalade(), "simulate", "--edge", edge, "--routing", routing, "--callback-wait", "240"]
        argv += ["--vapi-standin", f"http://127.0.0.1:{run.ports['vapi']}", "callback-voicemail"]
        result = subprocess.run(
            argv,
            env={**_env(), "ESCALADE_VAPI_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr + "\n" + run.output
        cells = _cells(result.stdout, "callback-voicemail")
        assert cells[-1] == "OK", result.stdout
        assert "dial voicemail" in cells[-3] and "dial assistant-forwarded-call" in cells[-3], cells
        dials = (state / "logs" / "vapi-dials.jsonl").read_text().splitlines()
        assert len(dials) == 2
        _stop(run, signal.SIGTERM)
