"""`escalade simulate`: try Escalade without a phone. Sends the seed's scenarios (webhook_edge.scenarios) as
signed Vapi `transfer-destination-request` messages to a running edge and prints where each call went.

    escalade simulate                                   # every scenario against http://127.0.0.1:3000
    escalade simulate critical-outage web-call          # some of them
    escalade simulate --edge http://10.0.0.5:3000 --routing 10.0.0.5:50051

Each request is signed like Vapi's HMAC credential (`x-signature`/`x-timestamp` over `{timestamp}.{body}`)
with ESCALADE_VAPI_SECRET, else the dev secret in .escalade/webhook-secret. The team and the one-line reason
come from the routing service (`GetDecision`); "-" when it cannot be reached. After each scenario a signed
`status-update` (ended) releases the specialist it reserved, so runs can be repeated; `busy-specialists` marks
the technical specialists busy first and restores them (and cancels its simulated callback) afterwards.
Exit code 1 when the edge is unreachable or answers a non-2xx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import grpc
import httpx
import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.table import Table
from rich.text import Text

from escalade_cli.console import console, err_console, fail, literal
from routing_service.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from webhook_edge.auth import sign_hmac
from webhook_edge.scenarios import SCENARIOS, Scenario, ended_message, transfer_request

if TYPE_CHECKING:
    from routing_service.generated.escalade.routing.v1.routing_pb2_grpc import RoutingServiceAsyncStub

__all__ = ["EdgeUnreachable", "Outcome", "outcome_table", "register", "run_scenarios", "select_scenarios"]

DEFAULT_EDGE = "http://127.0.0.1:3000"
RPC_TIMEOUT = 3.0
KIND_NAMES = {
    pb.DECISION_KIND_TRANSFER_TEAM: "team",
    pb.DECISION_KIND_TRANSFER_AGENT: "specialist",
    pb.DECISION_KIND_CALLBACK: "callback",
    pb.DECISION_KIND_FALLBACK: "fallback",
}


class SimulateSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ESCALADE_", extra="ignore")

    vapi_secret: SecretStr | None = None
    routing_address: str = "127.0.0.1:50051"


class EdgeUnreachable(Exception):
    """The edge did not accept a connection (or did not answer in time)."""


@dataclass
class Outcome:
    """What happened to one scenario."""

    scenario: Scenario
    call_id: str
    status: int | None = None
    latency_ms: float | None = None
    destination: str = "-"
    mode: str = "-"
    team: str = "-"
    kind: str = ""
    reason: str = "-"
    error: str = ""
    notes: list[str] = field(default_factory=list)
    ended_status: int | None = None
    """HTTP status of the closing `status-update` (ended); None when it was not sent."""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def check(self) -> str:
        """OK / MISMATCH against the scenario's expected team (and kind); "-" when the team is unknown."""
        if not self.ok:
            return "MISMATCH"
        if self.team == "-":
            return "-"
        expected = self.scenario
        if self.team != expected.expected_team:
            return "MISMATCH"
        if expected.expected_kind is not None and self.kind != expected.expected_kind:
            return "MISMATCH"
        return "OK"


def select_scenarios(names: Sequence[str]) -> list[Scenario]:
    """The named scenarios (all when none); ValueError naming the unknown ones and the known ones."""
    if not names:
        return list(SCENARIOS.values())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return [SCENARIOS[n] for n in names]


def webhook_endpoint(edge: str) -> str:
    url = edge.strip().rstrip("/")
    if url.endswith(("/webhook/vapi", "/webhook/escalation")):
        return url
    return url + "/webhook/vapi"


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code") or "")[:200]
    return str(error or body)[:200]


class _Routing:
    """The routing service, best effort: every call returns None when it cannot be reached."""

    def __init__(self, stub: RoutingServiceAsyncStub) -> None:
        self.stub = stub
        self.reachable = True

    async def call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self.reachable = False
            return None

    async def decision(self, call_id: str) -> pb.Decision | None:
        if not self.reachable:
            return None
        reply = await self.call("GetDecision", pb.GetDecisionRequest(call_id=call_id))
        return reply.decision if reply is not None and reply.HasField("decision") else None

    @asynccontextmanager
    async def busy(self, team_id: str, outcome: Outcome) -> AsyncIterator[None]:
        """Every available specialist of the team set BUSY for the block, then restored."""
        listed = await self.call("ListAgents", pb.ListAgentsRequest(team_id=team_id, page_size=1000))
        if listed is None:
            outcome.notes.append(f"could not make the {team_id} specialists busy (routing unreachable)")
            yield
            return
        changed = [a for a in listed.agents if a.status == pb.AGENT_STATUS_AVAILABLE]
        if not listed.agents:
            outcome.notes.append(f"{team_id} has no specialists on record (escalade agents import ...)")
        try:
            for agent in changed:
                await self.call(
                    "SetAgentStatus",
                    pb.SetAgentStatusRequest(agent_id=agent.agent_id, status=pb.AGENT_STATUS_BUSY),
                )
            yield
        finally:
            for agent in changed:
                await self.call(
                    "SetAgentStatus", pb.SetAgentStatusRequest(agent_id=agent.agent_id, status=agent.status)
                )


async def _post(
    client: httpx.AsyncClient, url: str, secret: str | None, doc: dict[str, Any]
) -> httpx.Response:
    body = json.dumps(doc, separators=(",", ":")).encode()
    headers = {"content-type": "application/json"}
    if secret:
        headers.update(sign_hmac(secret, body, int(time.time() * 1000)))
    try:
        return await client.post(url, content=body, headers=headers)
    except httpx.TransportError as exc:
        raise EdgeUnreachable(f"the edge at {url} is not reachable ({type(exc).__name__}: {exc})") from None


async def _run_one(
    scenario: Scenario, client: httpx.AsyncClient, url: str, secret: str | None, routing: _Routing
) -> Outcome:
    request = transfer_request(scenario)
    outcome = Outcome(scenario=scenario, call_id=request["message"]["call"]["id"])
    started = time.perf_counter()
    response = await _post(client, url, secret, request)
    outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.status = response.status_code
    if not outcome.ok:
        outcome.error = f"HTTP {response.status_code}: {_error_text(response)}"
        return outcome
    try:
        destination = response.json().get("destination") or {}
    except (ValueError, AttributeError):
        destination = {}
    outcome.destination = str(destination.get("number") or destination.get("sipUri") or "-")
    plan = destination.get("transferPlan") or {}
    outcome.mode = str(plan.get("mode") or ("blind-transfer" if destination else "-"))
    decision = await routing.decision(outcome.call_id)
    if decision is not None:
        outcome.team = decision.team_id or "-"
        outcome.kind = KIND_NAMES.get(decision.kind, "")
        outcome.reason = decision.reason or "-"
        if decision.kind == pb.DECISION_KIND_CALLBACK and scenario.busy_team:
            await routing.call(
                "FinishCallback",
                pb.FinishCallbackRequest(
                    call_id=outcome.call_id, state=pb.CALLBACK_STATE_CANCELLED, note="escalade simulate"
                ),
            )
    ended = await _post(client, url, secret, ended_message(request))
    outcome.ended_status = ended.status_code
    if not 200 <= ended.status_code < 300:
        outcome.notes.append(f"status-update (ended) got HTTP {ended.status_code}")
    return outcome


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    edge: str = DEFAULT_EDGE,
    secret: str | None,
    routing_address: str,
    http_timeout: float = 15.0,
) -> list[Outcome]:
    """Send each scenario to the edge, in order; raises EdgeUnreachable when the edge cannot be reached."""
    url = webhook_endpoint(edge)
    outcomes: list[Outcome] = []
    async with (
        httpx.AsyncClient(timeout=http_timeout) as client,
        grpc.aio.insecure_channel(routing_address) as channel,
    ):
        routing = _Routing(pb_grpc.RoutingServiceStub(channel))
        for scenario in scenarios:
            if scenario.busy_team:
                placeholder = Outcome(scenario=scenario, call_id="")
                async with routing.busy(scenario.busy_team, placeholder):
                    outcome = await _run_one(scenario, client, url, secret, routing)
                outcome.notes[:0] = placeholder.notes
            else:
                outcome = await _run_one(scenario, client, url, secret, routing)
            outcomes.append(outcome)
    return outcomes


def outcome_table(outcomes: Sequence[Outcome]) -> Table:
    """The rich table `escalade simulate` prints."""
    table = Table(title="Escalade simulation", show_lines=False)
    for column in ("Scenario", "Destination", "Team", "Mode", "Latency (ms)", "Reason", "Expected", "Check"):
        table.add_column(column, justify="right" if column.startswith("Latency") else "left", overflow="fold")
    for o in outcomes:
        team = f"{o.team} ({o.kind})" if o.kind in {"callback", "fallback"} else o.team
        reason = o.error or o.reason
        if o.notes:
            reason = f"{reason} [{'; '.join(o.notes)}]"
        latency = f"{o.latency_ms:.1f}" if o.latency_ms is not None else "-"
        style = {"OK": "green", "MISMATCH": "bold red"}.get(o.check, "dim")
        table.add_row(
            *literal(
                o.scenario.name,
                o.destination,
                team,
                o.mode,
                latency,
                reason,
                o.scenario.expectation,
                Text(o.check, style=style),
            )
        )
    return table


def simulate_command(
    scenarios: Annotated[
        list[str] | None, typer.Argument(help=f"Scenarios to run (default: all): {', '.join(SCENARIOS)}.")
    ] = None,
    edge: Annotated[str, typer.Option("--edge", help="Base URL of the running edge.")] = DEFAULT_EDGE,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret", help="Webhook secret (default ESCALADE_VAPI_SECRET, else .escalade/webhook-secret)."
        ),
    ] = None,
    routing: Annotated[
        str | None,
        typer.Option(
            "--routing", help="Routing service address (default ESCALADE_ROUTING_ADDRESS or 127.0.0.1:50051)."
        ),
    ] = None,
) -> None:
    """Send the seed's scenarios as signed Vapi messages to a running edge and show where each call went."""
    from escalade_cli.vapi import webhook_secret

    try:
        chosen = select_scenarios(scenarios or [])
    except ValueError as exc:
        fail(str(exc), 2)
    if not edge.startswith(("http://", "https://")):
        fail(f"--edge must be an http(s) URL (got {edge!r})", 2)
    settings = SimulateSettings()
    key = secret if secret else webhook_secret(settings.vapi_secret)
    if not key:
        err_console.print(
            "[yellow]note:[/] no webhook secret: sending unsigned requests (edge in --insecure-dev)"
        )
    try:
        outcomes = asyncio.run(
            run_scenarios(chosen, edge=edge, secret=key, routing_address=routing or settings.routing_address)
        )
    except EdgeUnreachable as exc:
        fail(f"{exc}; is `escalade edge serve` (or `escalade dev`) running?")
    console.print(outcome_table(outcomes))
    failed = [o for o in outcomes if not o.ok]
    mismatched = [o for o in outcomes if o.ok and o.check == "MISMATCH"]
    unended = [o for o in outcomes if o.ended_status is not None and not 200 <= o.ended_status < 300]
    if mismatched:
        err_console.print(f"{len(mismatched)} scenario(s) did not reach the expected team.", highlight=False)
    if failed:
        fail(f"{len(failed)} scenario(s) got a non-2xx answer from the edge: {failed[0].error}")
    if unended:
        fail(f"{len(unended)} closing status-update(s) got a non-2xx answer (HTTP {unended[0].ended_status})")


def register(app: typer.Typer) -> None:
    """Add `escalade simulate` to the `escalade` application."""
    app.command("simulate")(simulate_command)
