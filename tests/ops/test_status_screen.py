"""`escalade status` (a real subprocess) against a running routing service and edge in this process (real
gRPC on 127.0.0.1:0, the edge on a real HTTP port), and with services stopped."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import sysconfig
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from escalade_cli.local_server import LocalServer, local_server
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import load_fixture
from tests.ops.ops_support import PREMIUM, Stack, running_stack

PREMIUM_CALLER = "+1111111111"


@dataclass
class Served:
    stack: Stack
    http: LocalServer


def team_row(screen: str, title: str, team_id: str) -> str:
    """The row of `team_id` in the screen's table titled `title`."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    return next(line for line in lines[start:] if line.strip("│ ").startswith(team_id))


@pytest.fixture
async def served(sqlite_url: str) -> AsyncIterator[Served]:
    async with running_stack(sqlite_url) as stack, local_server(stack.edge.app, own_logging=False) as http:
        yield Served(stack, http)


def dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


async def status(*args: str, edge_metrics_port: int = 0) -> tuple[int, str, str]:
    """`escalade status ARGS` in a clean environment (the edge's metrics port: none, unless given)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "escalade_cli.main",
        "status",
        "--timeout",
        "2",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "ESCALADE_EDGE_METRICS_PORT": str(edge_metrics_port)},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def service(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in doc["services"] if s["name"] == name)


async def test_status_shows_teams_specialists_callbacks_and_outbox_when_the_stack_runs(
    served: Served,
) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await served.stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    doc = load_fixture(PREMIUM)
    assert (await served.stack.edge.post(doc)).status_code == 200

    code, out, err = await status(
        "--json",
        "--edge",
        served.http.url,
        "--routing",
        served.stack.routing_address,
        "--temporal",
        "none",
        edge_metrics_port=served.stack.edge.app.state.metrics_endpoint.port,  # on the --edge host
    )

    assert code == 0, err
    report = json.loads(out)
    assert report["healthy"] is True
    assert {s["name"]: s["up"] for s in report["services"]} == {
        "edge": True,
        "edge ready": True,
        "routing": True,
    }
    teams = {t["team_id"]: t for t in report["teams"]}
    assert teams["technical"]["waiting_callbacks"] == 1
    assert teams["technical"]["free_specialists"] == 0
    assert teams["technical"]["oldest_waiting_seconds"] is not None
    assert teams["technical"]["closed_until"] is None, "TechCorp's teams have no business hours"
    free = {a["agent_id"] for a in report["free_specialists"]}
    assert {"ent-1", "ent-2"} <= free and not {"tech-1", "tech-2"} & free
    [waiting] = report["waiting_callbacks"]
    assert waiting["call_id"] == doc["message"]["call"]["id"] and waiting["team_id"] == "technical"
    assert waiting["caller"].endswith("1111") and PREMIUM_CALLER not in out
    assert report["outbox_depth"] == {"callback": 1, "review": 0}


async def test_status_screen_renders_every_section_when_the_stack_runs(served: Served) -> None:
    metrics_port = served.stack.edge.app.state.metrics_endpoint.port
    code, out, err = await status(
        "--edge",
        served.http.url,
        "--edge-metrics",
        f"http://127.0.0.1:{metrics_port}/metrics",
        "--routing",
        served.stack.routing_address,
        "--temporal",
        "none",
    )
    assert code == 0, err
    for heading in (
        "Services",
        "Teams",
        "Free specialists",
        "Waiting callbacks",
        "Outbox",
        "all services up",
    ):
        assert heading in out
    assert "enterprise" in out and "DOWN" not in out


async def test_status_shows_down_and_exits_1_when_routing_and_temporal_are_stopped(served: Served) -> None:
    await served.stack.server.stop(0)

    code, out, err = await status(
        "--json",
        "--edge",
        served.http.url,
        "--routing",
        served.stack.routing_address,
        "--temporal",
        dead_address(),
    )

    assert code == 1
    report = json.loads(out)
    assert report["healthy"] is False
    assert service(report, "edge")["up"] is True
    assert service(report, "edge ready")["up"] is False
    assert service(report, "routing")["up"] is False and "UNAVAILABLE" in service(report, "routing")["detail"]
    assert service(report, "temporal")["up"] is False
    assert report["teams"] == [] and "Traceback" not in err


async def test_status_screen_says_down_without_traceback_when_nothing_runs() -> None:
    code, out, err = await status(
        "--edge", f"http://{dead_address()}", "--routing", dead_address(), "--temporal", dead_address()
    )
    assert code == 1
    assert out.count("DOWN") == 4 + 1 and "some services are DOWN" in out  # four rows and the verdict
    assert "Traceback" not in out + err


@pytest.mark.temporal
async def test_status_shows_temporal_up_when_a_temporal_server_answers(served: Served) -> None:
    from temporalio.testing import WorkflowEnvironment

    binary = Path(sysconfig.get_path("scripts")) / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(binary))
    try:
        target = env.client.service_client.config.target_host
        code, out, err = await status(
            "--json",
            "--edge",
            served.http.url,
            "--routing",
            served.stack.routing_address,
            "--temporal",
            target,
        )
    finally:
        await env.shutdown()
    assert code == 0, err
    assert service(json.loads(out), "temporal") == {
        "name": "temporal",
        "target": target,
        "up": True,
        "detail": "reachable",
    }


def test_hours_column_says_open_or_when_a_closed_team_opens() -> None:
    from escalade_cli.status import _hours

    assert _hours(None) == "open"
    assert _hours("2026-01-05T14:00:00+00:00") == "closed until Mon 14:00 UTC"


async def test_status_counts_the_last_hours_uncertain_decisions_and_second_transfers(served: Served) -> None:
    doc = load_fixture(PREMIUM)  # technical; the customer context below speaks only of a refund
    doc["message"]["artifact"]["transcript"] = "User: I was charged twice and want a refund"
    tool_call = doc["message"]["artifact"]["messages"][-1]["toolCalls"][-1]
    tool_call["function"]["arguments"] = json.dumps(
        {"issue_category": "technical", "complexity_level": "intermediate", "customer_context": "refund"}
    )
    assert (await served.stack.edge.post(doc)).status_code == 200
    tool_call["id"] = "asked-again"  # the same call escalates again
    assert (await served.stack.edge.post(doc)).status_code == 200

    code, out, err = await status(
        "--json", "--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none"
    )
    screen_code, screen, _ = await status(
        "--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none"
    )

    assert code == 0, err
    report = json.loads(out)
    teams = {t["team_id"]: t for t in report["teams"]}
    technical = teams["technical"]
    # both decisions were uncertain (the assistant still said technical); the first needed another
    assert (technical["uncertain_last_hour"], technical["uncertain_second_transfers_last_hour"]) == (2, 1)
    assert report["uncertainty_counts_capped"] is False
    assert screen_code == 0
    assert "uncertain 1h (2nd transfer)" in screen
    # the Teams table's row (the widening table after it has rows of the team too)
    technical_row = team_row(screen, "Teams: decisions, load and promises", "technical")
    assert "2 (1)" in technical_row


async def test_status_shows_waiting_callbacks_by_widening_step(served: Served) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await served.stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    assert (await served.stack.edge.post(load_fixture(PREMIUM))).status_code == 200
    args = ("--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none")

    code, out, err = await status("--json", *args)
    screen_code, screen, _ = await status(*args)

    assert code == 0, err
    teams = {t["team_id"]: t for t in json.loads(out)["teams"]}
    assert [(c["step"], c["waiting_callbacks"]) for c in teams["technical"]["widening_steps"]] == [
        (0, 1),
        (1, 0),
        (2, 0),
    ]
    assert teams["product"]["widening_steps"] == []
    assert screen_code == 0
    assert "Waiting callbacks by widening step" in screen
    rows = [line for line in screen.splitlines() if "overflow to team enterprise after 10 min" in line]
    assert len(rows) == 1 and rows[0].rstrip(" │").endswith("0")


def test_promise_columns_read_as_shares_and_signed_durations() -> None:
    from escalade_cli.status import _accuracy, _kept

    team = {
        "promises_kept_last_hour": 1.0,
        "promises_kept_last_day": 0.75,
        "promise_error_median_seconds": 90.0,
        "promise_error_p90_seconds": -30.0,
        "promise_error_samples": 4,
    }
    assert _kept(team) == "100% / 75%"
    assert _accuracy(team) == "+1m30s / -30s"
    assert _kept({"promises_kept_last_hour": None, "promises_kept_last_day": None}) == "- / -"
    assert _accuracy({"promise_error_samples": 0}) == "-"


async def test_status_shows_the_kept_rate_and_accuracy_of_callback_promises(served: Served) -> None:
    stub = served.stack.stub
    for agent_id in ("tech-1", "tech-2"):
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY))
    doc = load_fixture(PREMIUM)
    assert (await served.stack.edge.post(doc)).status_code == 200
    call_id = doc["message"]["call"]["id"]
    await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="tech-1", status=pb.AGENT_STATUS_AVAILABLE))
    claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id=call_id))
    assert claimed.callback.promise_state == pb.PROMISE_STATE_KEPT

    code, out, err = await status(
        "--json", "--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none"
    )
    screen_code, screen, _ = await status(
        "--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none"
    )
    assert code == 0 and screen_code == 0, err
    technical = {t["team_id"]: t for t in json.loads(out)["teams"]}["technical"]
    assert (technical["promises_kept_last_hour"], technical["promises_kept_last_day"]) == (1.0, 1.0)
    assert technical["promise_error_samples"] == 1 and technical["promise_error_median_seconds"] > 0
    assert "kept 1h / 24h" in screen and "quoted-actual p50 / p90" in screen
    technical_row = team_row(screen, "Teams: decisions, load and promises", "technical")
    assert "100% / 100%" in technical_row


async def test_status_shows_verdicts_per_rule_and_uncertain_calls_a_review_found_miscategorised(
    served: Served,
) -> None:
    doc = load_fixture(PREMIUM)
    doc["message"]["artifact"]["transcript"] = "User: I was charged twice and want a refund"
    tool_call = doc["message"]["artifact"]["messages"][-1]["toolCalls"][-1]
    tool_call["function"]["arguments"] = json.dumps(
        {"issue_category": "technical", "complexity_level": "intermediate", "customer_context": "refund"}
    )
    assert (await served.stack.edge.post(doc)).status_code == 200
    call_id = doc["message"]["call"]["id"]
    stub = served.stack.stub
    await stub.RecordReviewOutcome(
        pb.RecordReviewOutcomeRequest(call_id=call_id, finding_rules=["category_mismatch"])
    )
    await stub.RecordReviewOutcome(
        pb.RecordReviewOutcomeRequest(
            call_id=call_id,
            finding_rules=["category_mismatch"],
            verdict="wrong-category",
            actual_category="billing",
        )
    )
    decision = (await stub.GetDecision(pb.GetDecisionRequest(call_id=call_id))).decision

    code, out, err = await status(
        "--json", "--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none"
    )
    _, screen, _ = await status(
        "--edge", served.http.url, "--routing", served.stack.routing_address, "--temporal", "none"
    )

    assert code == 0, err
    report = json.loads(out)
    assert report["review_outcomes"] == [
        {
            "team_id": decision.team_id,
            "rule_id": decision.rule_id,
            "confirmed": 0,
            "overturned": 1,
            "uncertain_category_wrong": 1,
        }
    ]
    teams = {t["team_id"]: t for t in report["teams"]}
    assert teams[decision.team_id]["uncertain_category_wrong_7d"] == 1
    assert "Review outcomes (7d)" in screen and "uncertain, wrong category 7d" in " ".join(screen.split())
    [row] = [line for line in screen.splitlines() if decision.rule_id and f" {decision.rule_id} " in line]
    assert "100%" in row
