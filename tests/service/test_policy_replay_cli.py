"""`escalade policy check CANDIDATE --replay` and `export-decisions` over decisions a real routing server
made and stored (SQLite file): the diff printed must be the one the candidate really causes."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner, Result

from escalade_cli.main import app
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.masking import mask_number
from routing_service.grpc.server import RoutingServer
from tests.service.grpc_helpers import TECHCORP, add_agent, add_customer, resolve, routing_settings

PREMIUM_CALLER = "+15551230042"


def candidate_file(tmp_path: Path) -> Path:
    """TechCorp with account calls sent to the general team, and "down" no longer a critical keyword."""
    text = TECHCORP.read_text()
    changed = text.replace("categories: [billing, account]}", "categories: [billing]}").replace(
        "critical: [down, outage, critical, urgent, emergency]",
        "critical: [outage, critical, urgent, emergency]",
    )
    assert changed.count("\n") == text.count("\n") and changed != text
    path = tmp_path / "candidate.yaml"
    path.write_text(changed)
    return path


@pytest.fixture
async def recorded(sqlite_url: str) -> AsyncIterator[str]:
    """Six decisions made by the routing server; the store URL."""
    server = RoutingServer(routing_settings(sqlite_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            await add_customer(stub, PREMIUM_CALLER, "premium", account="Acme")
            await add_agent(stub, "bea", teams=("billing",), capacity=5)
            basic = pb.COMPLEXITY_BASIC
            made = [
                await resolve(stub, "call-1", caller="+15551230001", category="account", complexity=basic),
                await resolve(stub, "call-2", caller=PREMIUM_CALLER, category="account", complexity=basic),
                await resolve(stub, "call-3", category="billing", complexity=basic),
                await resolve(
                    stub,
                    "call-4",
                    category="technical",
                    complexity=pb.COMPLEXITY_INTERMEDIATE,
                    context="our API integration fails",
                ),
                await resolve(
                    stub,
                    "call-5",
                    caller="+15551230005",
                    category="technical",
                    complexity=basic,
                    reason="the portal is down",
                ),
                await resolve(stub, "call-6", category="product", complexity=basic),
            ]
    finally:
        await server.stop(0.5)
    assert [(d.team_id, d.rule_id) for d in made] == [
        ("billing", "billing-and-account"),
        ("billing", "billing-and-account"),
        ("billing", "billing-and-account"),
        ("technical", "technical-specialists"),
        ("enterprise", "critical-complexity"),
        ("product", "product"),
    ]
    yield sqlite_url


def table_rows(text: str) -> list[list[str]]:
    """Every table row of rich output, as its stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.count("│") >= 2
    ]


async def invoke(*args: str) -> Result:
    # The CLI runs its own event loop: give it a thread.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


def assert_candidate_diff(output: str) -> None:
    assert "3 of 6 call(s) would go to a different team (50.0%)" in output, output
    rows = table_rows(output)
    assert ["billing", "general", "2"] in rows
    assert ["enterprise", "general", "1"] in rows
    assert ["general", "0", "3", "+3"] in rows
    assert ["billing-and-account", "3", "1", "-2"] in rows
    assert ["critical-complexity", "1", "0", "-1"] in rows
    examples = {row[1]: row for row in rows if row and row[1:2] and row[1].startswith("call-")}
    assert set(examples) == {"call-1", "call-2", "call-5"}
    assert examples["call-2"][2:6] == [mask_number(PREMIUM_CALLER), "premium", "account", "basic"]
    assert examples["call-5"][5:] == ["basic", "enterprise (critical-complexity)", "general (general)"]
    assert "+15551230042" not in output and "+15551230005" not in output


async def test_replay_from_the_store_prints_what_the_candidate_would_change(
    recorded: str, tmp_path: Path
) -> None:
    result = await invoke(
        "policy",
        "check",
        str(candidate_file(tmp_path)),
        "--replay",
        "--since",
        "1h",
        "--database-url",
        recorded,
    )
    assert result.exit_code == 0, result.output
    assert_candidate_diff(result.stdout)
    team_rows = {row[0]: row for row in table_rows(result.stdout) if len(row) == 11}
    # general: +3 calls at the policy's 8 minutes each (no conversation has ended yet); nobody on record.
    assert team_rows["general"][1:9] == ["0", "3", "3", "0", "8 min", "+24 min", "0", "?"]
    # billing: one specialist for the hour replayed: 3 x 8 min recorded, 1 x 8 min under the candidate.
    assert team_rows["billing"][1:9] == ["3", "1", "0", "2", "8 min", "-16 min", "1", "40% -> 13%"]


async def test_the_unchanged_policy_moves_nothing(recorded: str) -> None:
    result = await invoke("policy", "check", str(TECHCORP), "--replay", "--database-url", recorded)
    assert result.exit_code == 0, result.output
    assert "0 of 6 call(s) would go to a different team (0.0%)" in result.stdout


async def test_export_then_replay_file_gives_the_same_diff_without_full_numbers(
    recorded: str, tmp_path: Path
) -> None:
    exported = await invoke("policy", "export-decisions", "--since", "1h", "--database-url", recorded)
    assert exported.exit_code == 0, exported.output
    lines = exported.stdout.splitlines()
    assert len(lines) == 6 and all(json.loads(line)["body"] for line in lines)
    assert "1555123" not in exported.stdout
    export = tmp_path / "export.jsonl"
    export.write_text(exported.stdout)
    result = await invoke("policy", "check", str(candidate_file(tmp_path)), "--replay-file", str(export))
    assert result.exit_code == 0, result.output
    assert_candidate_diff(result.stdout)


async def test_team_filter_and_period(recorded: str, tmp_path: Path) -> None:
    candidate = str(candidate_file(tmp_path))
    only = await invoke(
        "policy", "check", candidate, "--replay", "--team", "enterprise", "--database-url", recorded
    )
    assert "1 of 1 call(s) would go to a different team" in only.stdout, only.output
    before = await invoke(
        "policy", "check", candidate, "--replay", "--since", "2020-01-01", "--until", "2020-01-02",
        "--database-url", recorded,
    )  # fmt: skip
    assert before.exit_code == 0 and "0 of 0 call(s)" in before.stdout, before.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replay", "--since", "yesterday"], "--since: expected a duration such as 24h"),
        (["--replay", "--team", "nobody"], "--team: no team 'nobody'"),
        (["--since", "1h"], "--since, --until, --team and --baseline need --replay"),
    ],
)
async def test_bad_replay_options_are_readable(recorded: str, args: list[str], message: str) -> None:
    result = await invoke("policy", "check", str(TECHCORP), *args, "--database-url", recorded)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


async def test_a_bad_export_line_is_named(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    export.write_text('{"decision_id": "d1"}\n')
    result = await invoke("policy", "check", str(TECHCORP), "--replay-file", str(export))
    assert result.exit_code == 2
    assert f"{export}:1: not a recorded decision" in result.stderr


async def test_a_missing_sqlite_store_is_named_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    for args in (
        ["policy", "check", str(TECHCORP), "--replay"],
        ["policy", "export-decisions"],
    ):
        result = await invoke(*args, "--database-url", f"sqlite+aiosqlite:///{missing}")
        assert result.exit_code == 2, result.output
        assert f"no routing store at {missing}" in result.stderr
    assert not missing.exists()


async def test_baseline_compares_with_another_policy_instead_of_what_was_recorded(
    recorded: str, tmp_path: Path
) -> None:
    candidate = str(candidate_file(tmp_path))
    same = await invoke(
        "policy", "check", candidate, "--replay", "--baseline", candidate, "--database-url", recorded
    )
    assert same.exit_code == 0, same.output
    assert "0 of 6 call(s) would go to a different team" in same.stdout
    back = await invoke(
        "policy", "check", str(TECHCORP), "--replay", "--baseline", candidate, "--database-url", recorded
    )
    assert "3 of 6 call(s) would go to a different team (50.0%)" in back.stdout, back.output
    rows = table_rows(back.stdout)
    assert ["general", "billing", "2"] in rows and ["general", "enterprise", "1"] in rows
    assert re.search(r"┃ rule +┃ baseline +┃ candidate +┃ change", back.stdout), back.stdout
