"""`escalade simulate`: the scenario messages (checked against Vapi's SDK models and the edge's parser), their
signatures, and whole runs against the real edge and routing service with the TechCorp policy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from escalade_cli.console import console as cli_console
from escalade_cli.local_server import local_server
from escalade_cli.main import app
from escalade_cli.scenarios import (
    SCENARIOS,
    default_scenarios,
    request_call,
    status_update,
    transfer_request,
    transfer_update,
)
from escalade_cli.simulate import EdgeUnreachable, Outcome, outcome_table, run_scenarios, select_scenarios
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.test_provisioning import audit
from tests.support.routing import techcorp_routing
from webhook_edge.app import create_app
from webhook_edge.auth import AuthError, verify_request
from webhook_edge.settings import EdgeSettings
from webhook_edge.vapi_models import parse_body

SECRET = "simulate-test-secret-7c2e"


def row_cells(text: str, scenario: str) -> list[str]:
    """The cells of the table row of `scenario` in rendered rich output."""
    line = next(line for line in text.splitlines() if f" {scenario} " in line)
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ----------------------------------------------------------------------------------------------------
# The scenario messages
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario_message_validates_against_sdk_when_built(name: str) -> None:
    from vapi.types import (
        ServerMessage,
        ServerMessageStatusUpdate,
        ServerMessageTransferDestinationRequest,
        ServerMessageTransferUpdate,
    )

    doc = transfer_request(SCENARIOS[name])
    ServerMessage.model_validate(doc)
    message = doc["message"]
    assert audit(ServerMessageTransferDestinationRequest.model_validate(message), message) == []
    destination = {"type": "number", "number": "+15550100110", "transferPlan": {"mode": "blind-transfer"}}
    call = request_call(doc)
    forwarding = status_update(call, "forwarding", destination=destination)["message"]
    ended = status_update(call, "ended", ended_reason="assistant-forwarded-call")["message"]
    missed = transfer_update(call, destination, "no-answer")["message"]
    assert audit(ServerMessageStatusUpdate.model_validate(forwarding), forwarding) == []
    assert audit(ServerMessageStatusUpdate.model_validate(ended), ended) == []
    assert audit(ServerMessageTransferUpdate.model_validate(missed), missed) == []
    assert ended["call"]["id"] == forwarding["call"]["id"] == message["call"]["id"]
    assert (ended["call"]["status"], ended["endedReason"]) == ("ended", "assistant-forwarded-call")
    assert missed["artifact"]["transfers"][-1]["status"] == "no-answer"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_edge_parser_reads_scenario_arguments_when_given(name: str) -> None:
    scenario = SCENARIOS[name]
    message = parse_body(json.dumps(transfer_request(scenario)).encode())
    arguments = message.escalation_arguments()
    assert arguments.problem == ""
    assert arguments.issue_category == scenario.issue_category
    assert arguments.complexity_level == scenario.complexity_level
    assert arguments.customer_context == scenario.customer_context
    assert message.caller_number == (scenario.caller or "")


def test_each_run_gets_a_fresh_call_id_when_built_twice() -> None:
    scenario = SCENARIOS["enterprise-technical"]
    first, second = transfer_request(scenario), transfer_request(scenario)
    assert first["message"]["call"]["id"] != second["message"]["call"]["id"]


def test_web_call_has_no_customer_number_when_built() -> None:
    message = transfer_request(SCENARIOS["web-call"])["message"]
    assert message["call"]["type"] == "webCall"
    assert "customer" not in message
    assert "customer" not in message["call"]
    assert "phoneNumber" not in message


def test_unknown_scenario_lists_known_ones_when_selected() -> None:
    with pytest.raises(
        ValueError, match="unknown scenario nope; known: enterprise-technical, standard-billing"
    ):
        select_scenarios(["enterprise-technical", "nope"])


def test_default_selection_leaves_out_the_extended_lifecycle_scenarios_when_none_named() -> None:
    names = [s.name for s in select_scenarios([])]
    assert names == [s.name for s in default_scenarios()]
    assert "callback-voicemail" not in names and "transfer-no-answer" not in names
    assert "busy-specialists" not in names, "it leaves specialists busy: a second default run would differ"
    assert "fair-load" not in names, "it leaves seniors in cool-down: a second default run would differ"
    assert [s.name for s in select_scenarios(["callback-voicemail"])] == ["callback-voicemail"]


# ----------------------------------------------------------------------------------------------------
# Signing, against a stand-in edge that verifies with webhook_edge.auth
# ----------------------------------------------------------------------------------------------------
@dataclass
class Received:
    form: str | None
    error: str | None
    headers: dict[str, str]
    body: dict[str, Any]


@contextlib.asynccontextmanager
async def verifying_edge(secret: str) -> AsyncIterator[tuple[str, list[Received]]]:
    received: list[Received] = []

    async def webhook(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            result = verify_request(request.headers, raw, [secret.encode()])
        except AuthError as exc:
            received.append(Received(None, exc.reason, dict(request.headers), json.loads(raw)))
            return JSONResponse({"error": {"code": "unauthorized", "message": exc.reason}}, status_code=401)
        received.append(Received(result.form, None, dict(request.headers), json.loads(raw)))
        if json.loads(raw)["message"]["type"] != "transfer-destination-request":
            return JSONResponse({})
        return JSONResponse(
            {
                "destination": {
                    "type": "number",
                    "number": "+15550100500",
                    "message": "Connecting you.",
                    "transferPlan": {"mode": "warm-transfer-say-message", "message": "General."},
                }
            }
        )

    app = Starlette(routes=[Route("/webhook/vapi", webhook, methods=["POST"])])
    async with local_server(app, lifespan="auto", capture_signals=False) as served:
        yield served.url, received


async def test_requests_are_hmac_signed_when_secret_given() -> None:
    async with verifying_edge(SECRET) as (url, received):
        outcomes = await run_scenarios(
            select_scenarios(["standard-billing", "web-call"]),
            edge=url,
            secret=SECRET,
            routing_address=f"127.0.0.1:{free_port()}",
        )
    assert [r.form for r in received] == ["hmac"] * 6
    assert all(r.headers["content-type"] == "application/json" for r in received)
    assert all(abs(int(r.headers["x-timestamp"]) - time.time() * 1000) < 300_000 for r in received)
    steps = [(r.body["message"]["type"], r.body["message"].get("status")) for r in received]
    assert (
        steps
        == [
            ("transfer-destination-request", None),
            ("status-update", "forwarding"),
            ("status-update", "ended"),
        ]
        * 2
    )
    assert received[2].body["message"]["endedReason"] == "assistant-forwarded-call"
    assert [(o.status, o.destination, o.mode) for o in outcomes] == [
        (200, "+15550100500", "warm-transfer-say-message")
    ] * 2
    # routing unreachable: team and reason unknown, no verdict
    assert [(o.team, o.reason, o.check) for o in outcomes] == [("-", "-", "-")] * 2
    assert [o.ended_status for o in outcomes] == [200, 200]
    assert [o.trail for o in outcomes] == [[], []]  # routing unreachable: no decision, nothing completed


async def test_wrong_secret_gives_non_2xx_outcome_when_edge_rejects() -> None:
    async with verifying_edge(SECRET) as (url, received):
        outcomes = await run_scenarios(
            select_scenarios(["standard-billing"]),
            edge=url,
            secret="not-the-secret",
            routing_address=f"127.0.0.1:{free_port()}",
        )
    assert received[0].error == "x-signature does not match"
    assert outcomes[0].status == 401
    assert outcomes[0].error == "HTTP 401: x-signature does not match"
    assert outcomes[0].check == "MISMATCH"


async def test_unreachable_edge_raises_when_nothing_listens() -> None:
    port = free_port()
    with pytest.raises(EdgeUnreachable, match=f"http://127.0.0.1:{port}/webhook/vapi is not reachable"):
        await run_scenarios(
            select_scenarios(["web-call"]),
            edge=f"http://127.0.0.1:{port}",
            secret=SECRET,
            routing_address=f"127.0.0.1:{free_port()}",
        )


def test_cli_exits_1_with_readable_message_when_edge_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    result = CliRunner().invoke(
        app,
        ["simulate", "--edge", f"http://127.0.0.1:{free_port()}", "--routing", f"127.0.0.1:{free_port()}"],
    )
    assert result.exit_code == 1
    assert "is not reachable" in result.stderr
    assert "escalade edge serve" in result.stderr
    assert "Traceback" not in result.output


def test_cli_rejects_unknown_scenario_when_named() -> None:
    result = CliRunner().invoke(app, ["simulate", "enterprise", "web-call"])
    assert result.exit_code == 2
    assert "unknown scenario enterprise; known: enterprise-technical" in result.stderr


def test_table_shows_expected_team_and_check_when_rendered() -> None:
    from rich.console import Console

    ok = Outcome(
        SCENARIOS["standard-billing"],
        "c1",
        200,
        3.2,
        "+15550100301",
        "warm-transfer-say-summary",
        "billing",
        "specialist",
        "billing-and-account matched",
        trail=["offered billing-1", "talking", "completed"],
    )
    bad = Outcome(
        SCENARIOS["premium-technical"],
        "c2",
        200,
        4.0,
        "+15550100500",
        "warm-transfer-say-message",
        "general",
        "team",
        "general matched",
    )
    console = Console(width=250, record=True)
    console.print(outcome_table([ok, bad]))
    text = console.export_text()
    assert row_cells(text, "standard-billing") == [
        "standard-billing",
        "+15550100301",
        "billing",
        "warm-transfer-say-summary",
        "3.2",
        "billing-and-account matched",
        "offered billing-1 > talking > completed",
        "billing",
        "OK",
    ]
    assert row_cells(text, "premium-technical")[-2:] == ["technical", "MISMATCH"]


# ----------------------------------------------------------------------------------------------------
# Whole runs: real routing service (TechCorp policy, demo agents and customers) + real edge
# ----------------------------------------------------------------------------------------------------
@dataclass
class Stack:
    edge_url: str
    routing_address: str
    stub: Any


@pytest.fixture
async def stack(database_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """Routing on SQLite and (marked postgres) PostgreSQL; the edge's outbox on a SQLite file."""
    async with techcorp_routing(database_url) as routing:
        edge_settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            routing_deadline_ms=3000,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
        )
        async with local_server(create_app(edge_settings), lifespan="auto", capture_signals=False) as edge:
            yield Stack(edge.url, routing.address, routing.stub)


async def agents_state(stub: Any) -> dict[str, tuple[int, int]]:
    reply = await stub.ListAgents(pb.ListAgentsRequest(page_size=1000))
    return {a.agent_id: (a.status, a.active_assignments) for a in reply.agents}


async def test_every_scenario_reaches_its_expected_team_and_cleanup_undoes_them_when_run_against_real_stack(
    stack: Stack,
) -> None:
    before = await agents_state(stack.stub)
    outcomes = await run_scenarios(
        [*default_scenarios(), SCENARIOS["busy-specialists"]],
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
        cleanup=True,
    )
    by_name = {o.scenario.name: o for o in outcomes}
    assert {name: (o.team, o.check) for name, o in by_name.items()} == {
        "enterprise-technical": ("enterprise", "OK"),
        "standard-billing": ("billing", "OK"),
        "premium-technical": ("technical", "OK"),
        "critical-outage": ("enterprise", "OK"),
        "busy-specialists": ("technical", "OK"),
        "web-call": ("product", "OK"),
        "uncertain-category": ("billing", "OK"),
        "handoff-packet": ("billing", "OK"),
    }
    assert by_name["busy-specialists"].kind == "callback"
    assert by_name["busy-specialists"].destination == "+15550100600"  # the queue line
    assert by_name["web-call"].destination == "+15550100400"
    assert by_name["enterprise-technical"].mode == "warm-transfer-say-summary"
    assert by_name["standard-billing"].kind == "specialist"
    assert all(o.reason not in ("", "-") for o in outcomes)
    assert all(o.latency_ms is not None and o.latency_ms > 0 for o in outcomes)
    # statuses restored and every reservation released by the ended status-updates
    assert await agents_state(stack.stub) == before
    callbacks = await stack.stub.ListCallbacks(pb.ListCallbacksRequest())
    assert list(callbacks.callbacks) == []
    assert by_name["busy-specialists"].trail == ["callback", "callback cancelled"]


async def test_busy_specialists_leaves_its_callback_waiting_and_the_team_busy_when_not_cleaned_up(
    stack: Stack,
) -> None:
    before = await agents_state(stack.stub)
    (outcome,) = await run_scenarios(
        select_scenarios(["busy-specialists"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert (outcome.team, outcome.kind, outcome.check) == ("technical", "callback", "OK")
    assert outcome.trail == ["callback", "callback waiting"]
    assert "technical specialists left busy (tech-1, tech-2)" in outcome.notes[0], outcome.notes
    after = await agents_state(stack.stub)
    assert {a for a, (status, _) in after.items() if status != before[a][0]} == {"tech-1", "tech-2"}
    assert {after[a][0] for a in ("tech-1", "tech-2")} == {pb.AGENT_STATUS_BUSY}
    callbacks = (await stack.stub.ListCallbacks(pb.ListCallbacksRequest())).callbacks
    assert [(c.call_id, c.state) for c in callbacks] == [(outcome.call_id, pb.CALLBACK_STATE_WAITING)]


async def test_second_run_routes_the_same_when_repeated(stack: Stack) -> None:
    first = await run_scenarios(
        default_scenarios(), edge=stack.edge_url, secret=SECRET, routing_address=stack.routing_address
    )
    second = await run_scenarios(
        default_scenarios(), edge=stack.edge_url, secret=SECRET, routing_address=stack.routing_address
    )
    assert [(o.team, o.kind, o.check) for o in first] == [(o.team, o.kind, o.check) for o in second]
    # The same destinations, but for the critical outage: the senior who took it in the first run is in
    # the cool-down after a critical call (TechCorp's fair_load), so the other senior takes it.
    changed = {o.scenario.name: (o.destination, p.destination) for o, p in zip(first, second, strict=True)}
    moved = {name: pair for name, pair in changed.items() if pair[0] != pair[1]}
    assert set(moved) == {"critical-outage"}
    assert set(moved["critical-outage"]) == {"+15550100101", "+15550100102"}
    [earlier, outage] = [o for o in first + second if o.scenario.name == "critical-outage"]
    before = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=earlier.call_id))).decision
    decision = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=outage.call_id))).decision
    assert any(
        s.stage == "fair-load" and s.subject == before.agent_id and "cool-down" in s.detail
        for s in decision.trace
    )
    assert len({o.call_id for o in first + second}) == 2 * len(default_scenarios())


async def test_cli_prints_table_with_expected_teams_when_stack_runs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    # Without a terminal rich assumes 80 columns and would fold every cell: the table is printed at its
    # natural width instead, so a narrow console must not matter.
    monkeypatch.setattr(cli_console, "width", 40)
    args = ["simulate", "--edge", stack.edge_url, "--routing", stack.routing_address, "standard-billing"]
    # the CLI runs its own event loop: give it a thread so the stack keeps serving in this one
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    cells = row_cells(result.stdout, "standard-billing")
    assert cells[1:4] == ["+15550100301", "billing", "warm-transfer-say-summary"]
    assert cells[-2:] == ["billing", "OK"]


async def test_lifecycle_trail_shows_talking_then_completed_when_route_flow_runs(stack: Stack) -> None:
    (outcome,) = await run_scenarios(
        select_scenarios(["standard-billing"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert outcome.trail == ["offered billing-1", "talking", "completed"], outcome.notes
    assert outcome.notes == []
    assert outcome.ended_status == 200


async def test_unanswered_transfer_goes_to_the_next_specialist_when_the_call_escalates_again(
    stack: Stack,
) -> None:
    before = await agents_state(stack.stub)
    (outcome,) = await run_scenarios(
        select_scenarios(["transfer-no-answer"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert outcome.check == "OK", (outcome.trail, outcome.notes)
    offered = [step for step in outcome.trail if step.startswith("offered")]
    assert len(offered) == 2 and offered[0] != offered[1]
    assert outcome.trail[1] == "no-answer"
    assert outcome.trail[-2:] == ["talking", "completed"]
    decision = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=outcome.call_id))).decision
    assert offered[0].removeprefix("offered ") in decision.missed_agent_ids
    after = await agents_state(stack.stub)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}


async def test_uncertain_category_is_confirmed_with_the_caller_before_the_transfer(stack: Stack) -> None:
    (outcome,) = await run_scenarios(
        select_scenarios(["uncertain-category"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )

    assert outcome.check == "OK", (outcome.trail, outcome.notes)
    assert outcome.trail == ["asked: technical or billing?", "offered billing-1", "talking", "completed"]
    assert "is it technical, or billing?" in outcome.notes[0]
    assert (outcome.destination, outcome.kind) == ("+15550100301", "specialist")
    decision = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=outcome.call_id))).decision
    # the confirmed category agrees with the call: a confident decision, no widening
    assert any(s.stage == "uncertainty" and "confidence 1.00" in s.detail for s in decision.trace)


async def test_completed_hand_over_enters_wrap_up_when_the_desktop_completes_it(stack: Stack) -> None:
    (outcome,) = await run_scenarios(
        select_scenarios(["handover-wrap-up"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert outcome.trail == ["offered billing-1", "talking", "completed, wrap-up", "wrap-up"], outcome.notes
    assert outcome.check == "OK"


async def test_callback_scenario_says_what_is_missing_when_no_vapi_standin(stack: Stack) -> None:
    (outcome,) = await run_scenarios(
        select_scenarios(["callback-voicemail"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert outcome.check == "MISMATCH"
    assert "no Vapi stand-in" in outcome.notes[0]


async def test_what_if_scenario_replays_its_recorded_decision_under_the_policy_without_its_rule(
    stack: Stack,
) -> None:
    from routing_service.policy.loader import load_policy
    from tests.service.grpc_helpers import TECHCORP

    (outcome,) = await run_scenarios(
        select_scenarios(["what-if-account"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
        policy=load_policy(TECHCORP),
    )
    assert (outcome.team, outcome.check) == ("billing", "OK"), outcome
    assert outcome.what_if == "general (rule general)"
    assert outcome.notes == [
        "what-if without a rule for account: general (rule general) "
        "instead of billing (rule billing-and-account)"
    ]
    # Without the policy the replay cannot run, and the table says so.
    (unchecked,) = await run_scenarios(
        select_scenarios(["what-if-account"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert unchecked.check == "MISMATCH" and unchecked.notes == ["what-if skipped: no routing policy"]


async def test_fair_load_skips_the_senior_in_cooldown_then_takes_one_over_the_cap(stack: Stack) -> None:
    before = await agents_state(stack.stub)
    (outcome,) = await run_scenarios(
        select_scenarios(["fair-load"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )

    assert outcome.check == "OK", (outcome.trail, outcome.notes)
    offered = [step.removeprefix("offered ") for step in outcome.trail if step.startswith("offered ")]
    first, second, third = offered
    assert second != first
    assert f"{first} skipped" in outcome.trail
    assert outcome.trail[-3:] == [f"{third} over cap", "completed", "completed"]
    assert any("critical cool-down until" in note for note in outcome.notes)
    assert any("taken over cap (critical cool-down" in note for note in outcome.notes)
    assert (outcome.team, outcome.kind) == ("enterprise", "specialist")
    # every call handed over was completed: nobody is left reserved
    after = await agents_state(stack.stub)
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}


async def test_widening_scenario_queues_a_callback_and_lists_the_steps_it_will_take(stack: Stack) -> None:
    from routing_service.policy.loader import load_policy
    from tests.service.grpc_helpers import TECHCORP

    before = await agents_state(stack.stub)
    (outcome,) = await run_scenarios(
        select_scenarios(["widening"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
        policy=load_policy(TECHCORP),
    )
    assert (outcome.team, outcome.kind, outcome.check) == ("technical", "callback", "OK"), outcome
    assert outcome.notes[:3] == [
        "technical callbacks waiting by widening step now: step 0: 1, step 1: 0, step 2: 0",
        "step 1: complexity ceiling relaxed by 1 level after 5 min (tech-2 then qualifies)",
        "step 2: overflow to team enterprise after 10 min",
    ]
    assert "tech-1 left busy and the callback waiting" in outcome.notes[3]
    after = await agents_state(stack.stub)
    # only the advanced specialist was made busy; Grace (intermediate) stays free, yet did not get the call
    assert {a for a, (status, _) in after.items() if status != before[a][0]} == {"tech-1"}
    assert after["tech-2"] == before["tech-2"]
    callbacks = (await stack.stub.ListCallbacks(pb.ListCallbacksRequest())).callbacks
    assert [(c.call_id, c.state) for c in callbacks] == [(outcome.call_id, pb.CALLBACK_STATE_WAITING)]

    (cleaned,) = await run_scenarios(
        select_scenarios(["widening"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
        policy=load_policy(TECHCORP),
        cleanup=True,
    )
    assert cleaned.trail[-1] == "callback cancelled"
    # Without the policy the steps cannot be listed, and the table says so.
    (unchecked,) = await run_scenarios(
        select_scenarios(["widening"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
        cleanup=True,
    )
    assert unchecked.check == "MISMATCH"
    assert unchecked.notes[0] == "the routing policy does not widen team technical (no `widening` steps)"


async def test_kept_promise_scenario_shows_the_promise_the_claim_keeping_it_and_the_kept_rate(
    stack: Stack,
) -> None:
    before = await agents_state(stack.stub)
    (outcome,) = await run_scenarios(
        select_scenarios(["kept-promise"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert (outcome.team, outcome.kind, outcome.check) == ("technical", "callback", "OK"), outcome.notes
    promised, claimed = outcome.trail[-2:]
    assert promised.startswith("promised by ") and promised.endswith(" UTC")
    assert claimed.startswith("claimed tech-") and claimed.endswith(": promise kept")
    assert "the callback should start by" in outcome.notes[0] and "at risk from" in outcome.notes[0]
    assert "technical: 100% of the last hour's promises kept" in outcome.notes[1], outcome.notes
    ticket = (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=outcome.call_id))).decision.callback
    assert ticket.HasField("promised_by")
    # the specialists came back (one now held for the callback until the worker dials)
    after = await agents_state(stack.stub)
    assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}


async def test_handoff_packet_scenario_shows_what_the_specialist_is_told_and_the_cli_reads_it_back(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    (outcome,) = await run_scenarios(
        select_scenarios(["handoff-packet"]),
        edge=stack.edge_url,
        secret=SECRET,
        routing_address=stack.routing_address,
    )
    assert outcome.check == "OK", (outcome.trail, outcome.notes, outcome.details)
    assert outcome.trail[-2:] == ["talking", "completed"]
    details = "\n".join(outcome.details)
    assert "summary     Double charge on order TC-000555" in details
    assert "  - resent the receipt" in details
    assert "account     AC-20417" in details and "(assistant)" in details
    assert "+1111111111" not in details  # the caller's number is masked
    # the command an operator (or a desktop's support engineer) runs
    args = ["decisions", "packet", outcome.call_id, "--address", stack.routing_address]
    result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    assert "order       TC-000555" in result.stdout
    assert "category    billing (assistant)" in result.stdout
    as_json = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    assert '"summary": "Double charge on order TC-000555' in as_json.stdout
    missing = await asyncio.to_thread(
        CliRunner().invoke, app, ["decisions", "packet", "no-such-call", "--address", stack.routing_address]
    )
    assert missing.exit_code == 1 and "no decision for call 'no-such-call'" in missing.output
