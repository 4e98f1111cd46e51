"""`escalade dev` as a subprocess on free ports and a temporary state directory: the whole stack starts,
`escalade simulate` routes every scenario, the busy-specialists callback shows up as a `callback-<call id>`
workflow in Temporal's visibility store with its payloads encrypted (the stack's codec server decrypts them),
SIGTERM and SIGINT stop every child with exit code 0, and a second run reuses the state (no re-seeding, the
same secret and payload key)."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import time
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from tests.e2e.devstack import DevRun, clean_env, escalade_dev, escalade_script, is_alive, process_children

pytestmark = [pytest.mark.e2e, pytest.mark.temporal]


def _stop(run: DevRun, signum: signal.Signals) -> None:
    """Send `signum` to `escalade dev` alone and check it exits 0 with no child left behind."""
    children = process_children(run.process.pid)
    assert len(children) >= 5, children  # temporal, routing, edge, Vapi stand-in, worker
    run.process.send_signal(signum)
    assert run.process.wait(45) == 0, run.output
    deadline = time.monotonic() + 10
    while any(is_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [pid for pid in children if is_alive(pid)] == []
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
            [escalade_script(), "simulate", "--edge", edge, "--routing", routing, *named],
            env={**clean_env(), "ESCALADE_VAPI_SECRET": secret},
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
        _check_payloads_are_encrypted_and_the_codec_server_decrypts_them(run, ids[0])
        _stop(run, signal.SIGTERM)


def _check_payloads_are_encrypted_and_the_codec_server_decrypts_them(run: DevRun, workflow_id: str) -> None:
    """The stack encrypts with the key it keeps (mode 0600); its codec server opens the payloads for the
    UI's origin without a token."""
    assert (run.state_dir / "temporal-payload-keys.json").stat().st_mode & 0o777 == 0o600
    started = asyncio.run(_started_input(run.ports["temporal"], workflow_id))
    assert started.metadata["encoding"] == b"binary/encrypted"
    found = re.search(r"Codec server\s+(http://\S+)", run.output)
    assert found is not None, run.output
    ui = f"http://127.0.0.1:{run.ports['ui']}"
    response = httpx.post(
        f"{found.group(1)}/decode",
        json=json_format.MessageToDict(Payloads(payloads=[started])),
        headers={"Origin": ui},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ui
    [decoded] = json_format.ParseDict(response.json(), Payloads()).payloads
    data = json.loads(decoded.data)
    assert data["customer_number"].startswith("+") and "*" in data["masked_number"], data


async def _started_input(temporal_port: int, workflow_id: str) -> Payload:
    client = await Client.connect(f"127.0.0.1:{temporal_port}")
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    payload: Payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    return payload


def test_second_run_reuses_state_when_first_run_stopped_with_sigint(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with escalade_dev(state) as first:
        assert "Empty store" in first.output
        seeded = _agent_count(first.ports["routing"])
        assert seeded > 0
        secret = (state / "webhook-secret").read_text()
        key = (state / "temporal-payload-keys.json").read_text()
        _stop(first, signal.SIGINT)
    with escalade_dev(state) as second:
        assert "Empty store" not in second.output
        assert _agent_count(second.ports["routing"]) == seeded
        assert (state / "webhook-secret").read_text() == secret
        assert (state / "temporal-payload-keys.json").read_text() == key
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
        argv = [escalade_script(), "simulate", "--edge", edge, "--routing", routing, "--callback-wait", "240"]
        argv += ["--vapi-standin", f"http://127.0.0.1:{run.ports['vapi']}", "callback-voicemail"]
        result = subprocess.run(
            argv,
            env={**clean_env(), "ESCALADE_VAPI_SECRET": secret},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr + "\n" + run.output
        cells = _cells(result.stdout, "callback-voicemail")
        assert cells[-1] == "OK", result.stdout
        assert "dial voicemail" in cells[-3] and "dial assistant-forwarded-call" in cells[-3], cells
        # the callback's specialist gets the original call's handoff packet (edge, routing, worker, Temporal)
        assert "the specialist got the packet of call" in result.stdout, result.stdout
        dials = (state / "logs" / "vapi-dials.jsonl").read_text().splitlines()
        assert len(dials) == 2
        _stop(run, signal.SIGTERM)
