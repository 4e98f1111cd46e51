"""`escalade simulate`: try Escalade without a phone. Sends the seed's scenarios (escalade_cli.scenarios) as
signed Vapi messages to a running edge, plays the rest of each call as Vapi would, and prints where each call
went and what the specialist's assignment went through.

    escalade simulate                                   # the quick scenarios against http://127.0.0.1:3000
    escalade simulate critical-outage web-call          # some of them
    escalade simulate busy-specialists                  # a callback left waiting (see below)
    escalade simulate transfer-no-answer handover-wrap-up callback-voicemail   # the lifecycle scenarios
    escalade simulate --edge http://10.0.0.5:3000 --routing 10.0.0.5:50051

Each request is signed like Vapi's HMAC credential (`x-signature`/`x-timestamp` over `{timestamp}.{body}`)
with ESCALADE_VAPI_SECRET, else the dev secret in .escalade/webhook-secret. The team and the one-line reason
come from the routing service (`GetDecision`); "-" when it cannot be reached. What follows the escalation
request is the scenario's flow (escalade_cli.scenarios.FLOWS), posted as Vapi posts it:

    route        `status-update` forwarding, `status-update` ended `assistant-forwarded-call` (the specialist
                 is now talking), then `CompleteAssignment` without wrap-up, as an agent desktop would, so
                 runs can be repeated
    no-answer    forwarding, `transfer-update` no-answer, the same call escalates again (new tool-call id):
                 the next specialist, then forwarded and completed
    wrap-up      forwarded (talking), `CompleteAssignment` with the team's wrap-up (the specialist is free
                 after it)
    what-if      routed as `route`; then the decision routing recorded (`GetDecision`) is replayed, as
                 `escalade policy check --replay` replays a period, under the routing policy (ESCALADE_POLICY)
                 with the call's category taken out of every rule: the table says where it would go instead
    handoff      routed as `route`; then the handoff packet is read back with `GetHandoffPacket` (as the
                 specialist's desktop would) and printed under the table: summary, reason, category and
                 complexity with their sources, entities, what was tried, confidence, tier and history
    confirm      the function tool (`tool-calls`): routing is unsure of the category and asks the assistant to
                 confirm it (the trail shows the question's choice); the caller confirms, the tool is called
                 again with confidence 1, and that decision is handed over and completed as in `route`
                 (simulated calls have no control URL, so the edge reports the transfer as not started)
    widening     the team's specialists qualified for the call busy (one under its complexity ceiling
                 stays free); the callback is queued and the notes list its widening steps (policy
                 `widening`: who may take it after how long) and routing's count of waiting callbacks by
                 step. Left waiting (the dev stack's worker claims again as each step starts: TechCorp's
                 Grace takes it after 5 minutes) unless --cleanup, which cancels it and restores them
    promise      every specialist of the team busy; the callback is queued and its promise read (the latest
                 time it should start, when it turns at risk); the specialists come back and the callback
                 is claimed as the worker would (ClaimCallback): started in time, the promise is kept; the
                 team's kept rate and the estimate's accuracy are read from GetQueueStatus. With the dev
                 stack its worker then dials the customer (the Vapi stand-in answers).
    callback     every specialist of the team busy; the callback is queued; the Vapi stand-in of
                 `escalade dev` is told (PUT /escalade/outcomes/{callId}) to play voicemail on the first
                 dial and a reached customer on the next; the specialists come back; simulate waits (up to
                 --callback-wait) until the callback call was handed to the specialist held for it. The
                 policy's retry spacing sets how long that takes.

    notice       routed; the transfer goes unanswered and the call ends; simulate receives the review's
                 notification on a local receiver (127.0.0.1:--notify-port, default 9470; start
                 `escalade dev` with the technical team's first contact's variable from the policy's
                 `review_notifications` set to http://127.0.0.1:9470/tech-supervisor, so that the worker
                 notifies it), shows what the supervisor got and the Temporal UI link,
                 then closes the review with the verdict `resolved`
    feedback     routed and completed as `route`; the end-of-call report says the call was about another
                 category; simulate waits (up to --callback-wait) for the dev stack's worker to find the
                 mismatch, gives the verdict `wrong-category` through Temporal (as `escalade reviews
                 complete` does), and escalates the same customer again: the call goes to the team the
                 verdict taught (policy `review_learning`), and the table's notes show the trace line.
                 Each run calls from a fresh number (a learning stays with its customer).

`busy-specialists` marks the available technical specialists busy and leaves them so, with its callback
waiting: it shows in the Temporal UI with `CallbackState = 'waiting'` and in `escalade callbacks list`, and
once a specialist is free again (`escalade agents status tech-1 available`) the dev stack's worker holds
them, dials, and the Vapi stand-in hands the customer over. `--cleanup` restores the specialists and
cancels the callback instead (what a repeatable run wants).

When routing lacks CompleteAssignment (UNIMPLEMENTED), the reservation is released with ReleaseAssignment
and the table says so. Exit code 1 when the edge is unreachable or answers a non-2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import grpc
import httpx
import typer
from rich.table import Table
from rich.text import Text

from escalade_cli.console import console, err_console, fail, literal, print_table, settings_or_fail
from escalade_cli.scenarios import (
    SCENARIOS,
    Scenario,
    default_scenarios,
    end_of_call_report,
    request_call,
    status_update,
    tool_calls_request,
    transfer_request,
    transfer_update,
)
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from escalade_platform.routing_channel import routing_channel
from escalade_platform.settings import RoutingClientSettings
from webhook_edge.auth import sign_hmac
from webhook_edge.settings import WebhookAuthSettings

if TYPE_CHECKING:
    from escalade_platform.generated.escalade.routing.v1.routing_pb2_grpc import RoutingServiceAsyncStub
    from routing_service.domain.models import Policy

__all__ = ["EdgeUnreachable", "Outcome", "outcome_table", "register", "run_scenarios", "select_scenarios"]

DEFAULT_EDGE = "http://127.0.0.1:3000"
STANDIN_URL_FILE = Path(".escalade") / "vapi-standin-url"
RPC_TIMEOUT = 3.0
ACTIVITY_NAMES = {
    pb.AGENT_ACTIVITY_AVAILABLE: "available",
    pb.AGENT_ACTIVITY_RESERVED: "reserved",
    pb.AGENT_ACTIVITY_TALKING: "talking",
    pb.AGENT_ACTIVITY_WRAP_UP: "wrap-up",
    pb.AGENT_ACTIVITY_AWAY: "away",
    pb.AGENT_ACTIVITY_UNAVAILABLE: "unavailable",
}
KIND_NAMES = {
    pb.DECISION_KIND_TRANSFER_TEAM: "team",
    pb.DECISION_KIND_TRANSFER_AGENT: "specialist",
    pb.DECISION_KIND_CALLBACK: "callback",
    pb.DECISION_KIND_FALLBACK: "fallback",
    pb.DECISION_KIND_CONFIRM_CATEGORY: "confirm",
}


DEFAULT_NOTIFY_PORT = 9470
"""Where review-notice receives the supervisor's notification unless --notify-port says otherwise."""

TemporalConnector = Callable[[], Awaitable[Any]]
"""Connects to Temporal when a flow needs it (the feedback flow gives a review's verdict)."""


class SimulateSettings(WebhookAuthSettings, RoutingClientSettings):
    """What `escalade simulate` reads: the webhook secret it signs with, routing's and the edge's address."""

    edge_url: str = DEFAULT_EDGE
    """Base URL of the running edge the scenarios are sent to (`--edge` wins)."""


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
    """HTTP status of the first failed follow-up (status-update, transfer-update), else the last one."""
    trail: list[str] = field(default_factory=list)
    """What the call and the specialist's assignment went through, e.g. `offered tech-1`, `talking`."""
    what_if: str = ""
    """What-if flow: where the replayed decision would go under the candidate policy."""
    flow_ok: bool | None = None
    """Whether the flow's own check held (next specialist differs, callback handed over); None: no check."""
    details: list[str] = field(default_factory=list)
    """Lines printed under the table for this scenario (the handoff flow's packet)."""

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
        if self.flow_ok is False:
            return "MISMATCH"
        return "OK"


def select_scenarios(names: Sequence[str]) -> list[Scenario]:
    """The named scenarios (the quick ones when none); ValueError naming the unknown and the known ones."""
    if not names:
        return default_scenarios()
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
        self.last_error: grpc.StatusCode | None = None

    async def call(self, method: str, request: Any) -> Any:
        self.last_error = None
        try:
            return await getattr(self.stub, method)(request, timeout=RPC_TIMEOUT)
        except grpc.aio.AioRpcError as exc:
            self.last_error = exc.code()
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self.reachable = False
            return None

    async def complete(self, call_id: str, outcome: Outcome, *, skip_wrap_up: bool) -> bool:
        """CompleteAssignment, as an agent desktop says the conversation is over; when routing does not
        implement it, ReleaseAssignment (noted) so the specialist is not left talking."""
        if not self.reachable:
            return False
        request = pb.CompleteAssignmentRequest(
            call_id=call_id, note="escalade simulate", skip_wrap_up=skip_wrap_up
        )
        reply = await self.call("CompleteAssignment", request)
        if reply is not None:
            outcome.trail.append("completed" if skip_wrap_up else "completed, wrap-up")
            return True
        if self.last_error is grpc.StatusCode.UNIMPLEMENTED:
            outcome.notes.append("routing lacks CompleteAssignment: released instead")
            await self.call(
                "ReleaseAssignment", pb.ReleaseAssignmentRequest(call_id=call_id, reason="escalade simulate")
            )
            outcome.trail.append("released")
        elif self.last_error is not None:
            outcome.notes.append(f"CompleteAssignment failed: {self.last_error.name}")
        return False

    async def activity(self, agent_id: str) -> str:
        """What the specialist is doing now (ListAgents), e.g. `talking`; "?" when unknown."""
        if not agent_id or not self.reachable:
            return "?"
        listed = await self.call("ListAgents", pb.ListAgentsRequest(page_size=1000))
        for agent in listed.agents if listed is not None else ():
            if agent.agent_id == agent_id:
                return ACTIVITY_NAMES.get(agent.activity, "?")
        return "?"

    async def decision(self, call_id: str) -> pb.Decision | None:
        if not self.reachable:
            return None
        reply = await self.call("GetDecision", pb.GetDecisionRequest(call_id=call_id))
        return reply.decision if reply is not None and reply.HasField("decision") else None

    async def make_busy(self, team_id: str, outcome: Outcome) -> list[pb.Agent]:
        """Every available specialist of the team set BUSY; returns them as they were (to restore)."""
        listed = await self.call("ListAgents", pb.ListAgentsRequest(team_id=team_id, page_size=1000))
        if listed is None:
            outcome.notes.append(f"could not make the {team_id} specialists busy (routing unreachable)")
            return []
        if not listed.agents:
            outcome.notes.append(f"{team_id} has no specialists on record (escalade agents import ...)")
        changed = [a for a in listed.agents if a.status == pb.AGENT_STATUS_AVAILABLE]
        for agent in changed:
            await self.call(
                "SetAgentStatus",
                pb.SetAgentStatusRequest(agent_id=agent.agent_id, status=pb.AGENT_STATUS_BUSY),
            )
        return changed

    async def restore(self, agents: Sequence[pb.Agent]) -> None:
        for agent in agents:
            await self.call(
                "SetAgentStatus", pb.SetAgentStatusRequest(agent_id=agent.agent_id, status=agent.status)
            )

    @asynccontextmanager
    async def busy(self, team_id: str, outcome: Outcome) -> AsyncIterator[None]:
        """Every available specialist of the team set BUSY for the block, then restored."""
        changed = await self.make_busy(team_id, outcome)
        try:
            yield
        finally:
            await self.restore(changed)


@dataclass
class _Edge:
    client: httpx.AsyncClient
    url: str
    secret: str | None

    async def post(self, doc: dict[str, Any]) -> httpx.Response:
        body = json.dumps(doc, separators=(",", ":")).encode()
        headers = {"content-type": "application/json"}
        if self.secret:
            headers.update(sign_hmac(self.secret, body, int(time.time() * 1000)))
        try:
            return await self.client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise EdgeUnreachable(
                f"the edge at {self.url} is not reachable ({type(exc).__name__}: {exc})"
            ) from None

    async def follow(self, doc: dict[str, Any], outcome: Outcome) -> None:
        """A follow-up message (status-update, transfer-update): its status is kept, a failure noted."""
        response = await self.post(doc)
        kind = doc["message"]["type"]
        if outcome.ended_status is None or 200 <= outcome.ended_status < 300:
            outcome.ended_status = response.status_code
        if not response.is_success:
            outcome.notes.append(f"{kind} got HTTP {response.status_code}")


def _destination(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    destination = body.get("destination") if isinstance(body, dict) else None
    return destination if isinstance(destination, dict) else {}


async def _escalate(
    scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome, call_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], pb.Decision | None]:
    """Post the scenario's transfer-destination-request; (request, destination, decision)."""
    request = transfer_request(scenario, call_id=call_id)
    outcome.call_id = request["message"]["call"]["id"]
    started = time.perf_counter()
    response = await edge.post(request)
    if outcome.latency_ms is None:
        outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.status = response.status_code
    if not outcome.ok:
        outcome.error = f"HTTP {response.status_code}: {_error_text(response)}"
        return request, {}, None
    destination = _destination(response)
    outcome.destination = str(destination.get("number") or destination.get("sipUri") or "-")
    plan = destination.get("transferPlan") or {}
    outcome.mode = str(plan.get("mode") or ("blind-transfer" if destination else "-"))
    decision = await routing.decision(outcome.call_id)
    if decision is not None:
        outcome.team = decision.team_id or "-"
        outcome.kind = KIND_NAMES.get(decision.kind, "")
        outcome.reason = decision.reason or "-"
        outcome.trail.append(f"offered {decision.agent_id}" if decision.agent_id else f"{outcome.kind}")
    return request, destination, decision


async def _hand_over(
    edge: _Edge, request: dict[str, Any], destination: dict[str, Any], outcome: Outcome
) -> None:
    """Vapi transfers: `forwarding`, then its own call ends `assistant-forwarded-call`."""
    call = request_call(request)
    await edge.follow(status_update(call, "forwarding", destination=destination), outcome)
    await edge.follow(status_update(call, "ended", ended_reason="assistant-forwarded-call"), outcome)


async def _flow_route(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    request, destination, decision = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok:
        return
    await _hand_over(edge, request, destination, outcome)
    if decision is not None and decision.kind == pb.DECISION_KIND_CALLBACK:
        outcome.trail.append("callback waiting")
    elif decision is not None and decision.agent_id:
        outcome.trail.append(await routing.activity(decision.agent_id))
        await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)


def without_category(policy: Policy, category: str) -> Policy:
    """`policy` with `category` taken out of every rule's categories (a rule left with none is dropped)."""
    import dataclasses

    rules = []
    for rule in policy.rules:
        if rule.categories is None or category not in rule.categories:
            rules.append(rule)
        elif len(rule.categories) > 1:
            rules.append(dataclasses.replace(rule, categories=rule.categories - {category}))
    return dataclasses.replace(policy, name=f"{policy.name} without {category} rules", rules=tuple(rules))


async def _flow_what_if(
    scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome, *, policy: Policy | None
) -> None:
    await _flow_route(scenario, edge, routing, outcome)
    if not outcome.ok:
        return
    recorded = await routing.decision(outcome.call_id)
    if policy is None or recorded is None:
        outcome.notes.append("what-if skipped: " + ("no routing policy" if policy is None else "no decision"))
        outcome.flow_ok = False
        return
    from routing_service.domain.replay import compare
    from routing_service.grpc.mapping import decision_from_pb

    diff = compare(without_category(policy, scenario.issue_category), [decision_from_pb(recorded)])
    if not diff.replayed:
        outcome.notes.append(f"what-if: not replayable ({', '.join(diff.not_replayed)})")
        outcome.flow_ok = False
        return
    replayed = diff.replayed[0]
    outcome.what_if = f"{replayed.team_id or 'fallback'} (rule {replayed.rule_id or '-'})"
    outcome.notes.append(
        f"what-if without a rule for {scenario.issue_category}: {outcome.what_if} instead of "
        f"{recorded.team_id} (rule {recorded.rule_id or '-'})"
    )
    outcome.flow_ok = replayed.moved


async def _flow_handoff(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    """Routed as `route`, then the packet read back as an agent desktop would; the check: the packet holds
    what the assistant passed (summary, steps, the account and order), and the specialist's side of the
    transfer (handoff message or summary prompt) carries it."""
    from escalade_cli.decisions import packet_lines

    request, destination, decision = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok:
        return
    reply = await routing.call("GetHandoffPacket", pb.GetHandoffPacketRequest(call_id=outcome.call_id))
    if reply is None or not reply.HasField("packet"):
        outcome.notes.append("no handoff packet could be read")
        outcome.flow_ok = False
    else:
        packet = reply.packet
        given = dict(scenario.handoff)
        plan = destination.get("transferPlan") or {}
        told = json.dumps([plan.get("message", ""), (plan.get("summaryPlan") or {}).get("messages", [])])
        values = {(e.kind, e.value) for e in packet.entities}
        outcome.flow_ok = (
            packet.summary == given.get("summary", packet.summary)
            and list(packet.steps_tried) == list(given.get("steps_tried", packet.steps_tried))
            and ("account", given.get("account_id")) in values
            and ("order", given.get("order_id")) in values
            and packet.summary[:40] in told
        )
        outcome.details = [f"{scenario.name}: what the specialist is told", *packet_lines(reply)]
        if plan:
            outcome.details.append(f"(the {plan.get('mode', 'transfer')} prompt carries it)")
    await _hand_over(edge, request, destination, outcome)
    if decision is not None and decision.agent_id:
        outcome.trail.append(await routing.activity(decision.agent_id))
        await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)


async def _flow_busy(
    scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome, *, cleanup: bool
) -> None:
    """The route flow while every available specialist of `scenario.busy_team` is busy. They stay busy
    afterwards and the queued callback stays waiting (the dev stack's worker keeps the promise once one of
    them is free again); with `cleanup` they are restored and the callback is cancelled."""
    assert scenario.busy_team is not None
    changed = await routing.make_busy(scenario.busy_team, outcome)
    try:
        await _flow_route(scenario, edge, routing, outcome)
    finally:
        if cleanup:
            if outcome.kind == "callback":
                await routing.call(
                    "FinishCallback",
                    pb.FinishCallbackRequest(
                        call_id=outcome.call_id, state=pb.CALLBACK_STATE_CANCELLED, note="escalade simulate"
                    ),
                )
                if "callback waiting" in outcome.trail:
                    outcome.trail.remove("callback waiting")
                outcome.trail.append("callback cancelled")
            await routing.restore(changed)
    if cleanup:
        return
    team = scenario.busy_team
    if changed:
        ids = ", ".join(a.agent_id for a in changed)
        outcome.notes.append(
            f"{team} specialists left busy ({ids}): `escalade agents status ID available` frees one and the "
            "callback dials; --cleanup restores them and cancels the callback"
        )
    else:
        outcome.notes.append(f"every {team} specialist was busy already")


async def _flow_no_answer(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    request, first, decision = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok or not first:
        return
    call = request_call(request)
    await edge.follow(status_update(call, "forwarding", destination=first), outcome)
    await edge.follow(transfer_update(call, first, "no-answer"), outcome)
    outcome.trail.append("no-answer")
    first_number, first_agent = outcome.destination, decision.agent_id if decision else ""
    again, second, retry = await _escalate(scenario, edge, routing, outcome, call_id=outcome.call_id)
    if not outcome.ok or not second:
        outcome.flow_ok = False
        return
    next_agent = retry.agent_id if retry is not None else ""
    outcome.flow_ok = outcome.destination != first_number and (not first_agent or next_agent != first_agent)
    if not outcome.flow_ok:
        outcome.notes.append(f"the second escalation went to the same destination {outcome.destination}")
    await _hand_over(edge, again, second, outcome)
    if next_agent:
        outcome.trail.append(await routing.activity(next_agent))
        await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)


async def _tool_call(
    edge: _Edge, routing: _Routing, call: dict[str, Any], arguments: dict[str, Any], outcome: Outcome
) -> tuple[str, pb.Decision | None]:
    """Post a `tool-calls` escalation; (the tool result the assistant reads, routing's decision)."""
    started = time.perf_counter()
    response = await edge.post(tool_calls_request(call, arguments))
    if outcome.latency_ms is None:
        outcome.latency_ms = (time.perf_counter() - started) * 1000
    outcome.status = response.status_code
    if not outcome.ok:
        outcome.error = f"HTTP {response.status_code}: {_error_text(response)}"
        return "", None
    try:
        results = response.json().get("results") or [{}]
    except (ValueError, AttributeError):
        results = [{}]
    result = str(results[0].get("result") or results[0].get("error") or "")
    return result, await routing.decision(outcome.call_id)


async def _flow_confirm(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    request = transfer_request(scenario)  # only for its call object and conversation
    call = request_call(request)
    outcome.call_id = call["id"]
    result, asked = await _tool_call(edge, routing, call, scenario.arguments(), outcome)
    if not outcome.ok:
        return
    if asked is None or asked.kind != pb.DECISION_KIND_CONFIRM_CATEGORY:
        outcome.notes.append("routing did not ask to confirm the category (is the policy's uncertainty set?)")
        outcome.flow_ok = False
    else:
        outcome.trail.append(f"asked: {asked.issue_category} or {scenario.confirmed_category}?")
        outcome.notes.append(f"the assistant read: {result}")
        outcome.flow_ok = True
    confirmed = {**scenario.arguments(), "issue_category": scenario.confirmed_category, "confidence": 1.0}
    _, decision = await _tool_call(edge, routing, call, confirmed, outcome)
    if not outcome.ok or decision is None:
        return
    outcome.team = decision.team_id or "-"
    outcome.kind = KIND_NAMES.get(decision.kind, "")
    outcome.reason = decision.reason or "-"
    target = decision.destination
    number = target.number if target.WhichOneof("target") == "number" else target.sip_uri
    outcome.destination = number or "-"
    outcome.mode = pb.TransferMode.Name(decision.transfer_mode).removeprefix("TRANSFER_MODE_").lower()
    outcome.mode = outcome.mode.replace("_", "-")
    if not decision.agent_id:
        outcome.trail.append(outcome.kind)
        return
    outcome.trail.append(f"offered {decision.agent_id}")
    destination = {"type": "number", "number": number} if target.number else {"type": "sip", "sipUri": number}
    await _hand_over(edge, request, destination, outcome)
    outcome.trail.append(await routing.activity(decision.agent_id))
    await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)


FAIR_LOAD_STAGE = "fair-load"


def _fair_load_steps(decision: pb.Decision | None, outcome: int) -> list[pb.TraceStep]:
    """The decision's fair-load trace steps with this outcome."""
    if decision is None:
        return []
    return [s for s in decision.trace if s.stage == FAIR_LOAD_STAGE and s.outcome == outcome]


async def _flow_fair_load(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    # 1. a critical call taken and completed: its senior is in cool-down from now on
    request, destination, first = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok or first is None or not first.agent_id:
        outcome.flow_ok = False
        return
    await _hand_over(edge, request, destination, outcome)
    await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)
    held: list[str] = []
    # 2. the next critical call passes over that senior while another qualifies
    request, destination, second = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok or second is None:
        outcome.flow_ok = False
        return
    skipped = _fair_load_steps(second, pb.TRACE_OUTCOME_SKIPPED)
    for step in skipped:
        outcome.trail.append(f"{step.subject} skipped")
        outcome.notes.append(f"{step.subject}: {step.detail}")
    if second.agent_id:
        await _hand_over(edge, request, destination, outcome)
        held.append(outcome.call_id)
    # 3. one more while the second senior is on the phone: nobody under their caps is free
    request, destination, third = await _escalate(scenario, edge, routing, outcome)
    over = _fair_load_steps(third, pb.TRACE_OUTCOME_CHOSEN)
    for step in over:
        outcome.trail.append(f"{step.subject} over cap")
        outcome.notes.append(f"{step.subject}: {step.detail}")
    if outcome.ok and third is not None and third.agent_id:
        await _hand_over(edge, request, destination, outcome)
        held.append(outcome.call_id)
    outcome.flow_ok = bool(skipped) and bool(over)
    if not outcome.flow_ok:
        outcome.notes.append(
            "no senior was skipped and then taken over a cap (is the policy's fair_load set, and were the"
            " seniors free and out of cool-down?)"
        )
    for call_id in held:
        await routing.complete(call_id, outcome, skip_wrap_up=True)


async def _flow_wrap_up(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    request, destination, decision = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok or decision is None or not decision.agent_id:
        return
    await _hand_over(edge, request, destination, outcome)
    talking = await routing.activity(decision.agent_id)
    outcome.trail.append(talking)
    if await routing.complete(outcome.call_id, outcome, skip_wrap_up=False):
        after = await routing.activity(decision.agent_id)
        outcome.trail.append(after)
        outcome.flow_ok = talking == "talking" and after == "wrap-up"


async def _standin_calls(client: httpx.AsyncClient, standin: str, original: str) -> list[dict[str, Any]]:
    """The stand-in's callback calls of `original`, oldest first."""
    try:
        response = await client.get(f"{standin}/call")
    except httpx.TransportError:
        return []
    calls = response.json() if response.is_success else []
    return [
        c
        for c in calls
        if isinstance(c, dict)
        and ((c.get("assistantOverrides") or {}).get("variableValues") or {}).get("originalCallId")
        == original
    ]


async def _flow_widening(
    scenario: Scenario,
    edge: _Edge,
    routing: _Routing,
    outcome: Outcome,
    *,
    policy: Policy | None,
    cleanup: bool,
) -> None:
    """The team's specialists qualified for the call set busy (those under its complexity ceiling stay as
    they are), the escalation queues a callback, and the notes say which widening step lets whom take it
    and when (the routing policy's `widening`, routing's queue status by step). By default the callback and
    the busy specialists stay: the dev stack's worker claims again at each step, so a free specialist under
    the ceiling takes it after the first step (watch `CallbackWidening` in the Temporal UI or `escalade
    callbacks show`); `--cleanup` cancels it and restores them."""
    from routing_service.domain.models import Complexity
    from routing_service.domain.widening import step_label

    team_id = scenario.expected_team
    level = Complexity.parse(scenario.complexity_level)
    listed = await routing.call("ListAgents", pb.ListAgentsRequest(team_id=team_id, page_size=1000))
    members = list(listed.agents) if listed is not None else []
    qualified = [a for a in members if a.status == pb.AGENT_STATUS_AVAILABLE and a.max_complexity >= level]
    for agent in qualified:
        await routing.call(
            "SetAgentStatus", pb.SetAgentStatusRequest(agent_id=agent.agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    try:
        await _escalate(scenario, edge, routing, outcome)
        steps = policy.widening.steps.get(team_id, ()) if policy is not None else ()
        if not steps:
            outcome.notes.append(f"the routing policy does not widen team {team_id} (no `widening` steps)")
            outcome.flow_ok = False
            return
        status = await routing.call("GetQueueStatus", pb.GetQueueStatusRequest(team_id=team_id))
        counts = list(status.teams[0].widening_steps) if status is not None and status.teams else []
        waiting = ", ".join(f"step {c.step}: {c.waiting_callbacks}" for c in counts)
        outcome.notes.append(f"{team_id} callbacks waiting by widening step now: {waiting or 'unknown'}")
        for index, step in enumerate(steps, start=1):
            floor = Complexity(max(Complexity.BASIC, level - step.relax_complexity_levels))
            lower = [
                a.agent_id
                for a in members
                if step.relax_complexity_levels and floor <= a.max_complexity < level
            ]
            who = f" ({', '.join(lower)} then qualifies)" if lower else ""
            outcome.notes.append(step_label(index, step) + who)
        outcome.flow_ok = outcome.kind == "callback" and bool(counts) and counts[0].waiting_callbacks >= 1
        outcome.trail.append("callback waiting at step 0")
    finally:
        if cleanup:
            if outcome.kind == "callback":
                await routing.call(
                    "FinishCallback",
                    pb.FinishCallbackRequest(
                        call_id=outcome.call_id, state=pb.CALLBACK_STATE_CANCELLED, note="escalade simulate"
                    ),
                )
                outcome.trail.append("callback cancelled")
            await routing.restore(qualified)
    if not cleanup and qualified:
        ids = ", ".join(a.agent_id for a in qualified)
        outcome.notes.append(
            f"{ids} left busy and the callback waiting: the dev stack's worker claims again as each step "
            "starts (`escalade callbacks show CALL_ID`); --cleanup cancels it and restores them"
        )


async def _flow_callback(
    scenario: Scenario,
    edge: _Edge,
    routing: _Routing,
    outcome: Outcome,
    *,
    standin: str | None,
    wait: float,
) -> None:
    if not standin:
        outcome.notes.append(
            "no Vapi stand-in (escalade dev without ESCALADE_VAPI_API_KEY, or --vapi-standin)"
        )
        outcome.flow_ok = False
        return
    assert scenario.busy_team is not None
    async with routing.busy(scenario.busy_team, outcome):
        request, destination, _ = await _escalate(scenario, edge, routing, outcome)
        if not outcome.ok:
            return
        await _hand_over(edge, request, destination, outcome)
        try:
            scripted = await edge.client.put(
                f"{standin}/escalade/outcomes/{outcome.call_id}", json={"outcomes": ["voicemail", "reached"]}
            )
        except httpx.TransportError as exc:
            outcome.notes.append(f"the Vapi stand-in at {standin} is not reachable ({type(exc).__name__})")
            outcome.flow_ok = False
            return
        if not scripted.is_success:
            outcome.notes.append(f"the Vapi stand-in answered HTTP {scripted.status_code} to the script")
            outcome.flow_ok = False
            return
    # the specialists are back: the callback claims one and dials
    deadline = time.monotonic() + wait
    seen: list[str] = []
    handed_over: dict[str, Any] | None = None
    while time.monotonic() < deadline and handed_over is None:
        calls = await _standin_calls(edge.client, standin, outcome.call_id)
        seen = [str(c.get("endedReason") or c.get("status")) for c in calls]
        handed_over = next((c for c in calls if c.get("endedReason") == "assistant-forwarded-call"), None)
        if handed_over is None:
            await asyncio.sleep(1.0)
    outcome.trail += [f"dial {reason}" for reason in seen]
    if handed_over is None:
        outcome.notes.append(f"the callback was not handed over within {wait:.0f} s")
        outcome.flow_ok = False
        return
    new_call = str(handed_over["id"])
    linked = await routing.decision(new_call)
    held = linked.agent_id if linked is not None else ""
    # the specialist of the callback gets the original call's handoff packet (carried over by routing)
    carried = (
        linked is not None
        and linked.HasField("handoff")
        and linked.handoff.earlier_call_id == outcome.call_id
    )
    if carried and linked is not None:
        outcome.notes.append(
            f"the specialist got the packet of call {outcome.call_id} (decision "
            f"{linked.handoff.earlier_decision_id}): {linked.handoff.summary or '(no summary)'}"
        )
    else:
        outcome.notes.append("the callback call's decision does not carry the original call's packet")
    outcome.flow_ok = (
        linked is not None and linked.callback_of_call_id == outcome.call_id and bool(held) and carried
    )
    outcome.trail.append(f"connected {held or '?'}")
    if held:
        await routing.complete(new_call, outcome, skip_wrap_up=True)


_PROMISE_STATES = {
    pb.PROMISE_STATE_ON_TRACK: "on track",
    pb.PROMISE_STATE_AT_RISK: "at risk",
    pb.PROMISE_STATE_BREACHED: "breached",
    pb.PROMISE_STATE_KEPT: "kept",
}


def _clock(stamp: Any) -> str:
    return f"{stamp.ToDatetime(tzinfo=UTC):%H:%M:%S} UTC"


async def _flow_promise(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    """Queue a callback with every specialist of the team busy, read its promise, bring them back, claim it
    before the promised time and read the team's kept rate (see the module docstring)."""
    assert scenario.busy_team is not None
    async with routing.busy(scenario.busy_team, outcome):
        _, _, decision = await _escalate(scenario, edge, routing, outcome)
        if not outcome.ok or decision is None or not decision.callback.HasField("promised_by"):
            outcome.notes.append("routing queued no callback with a promise")
            outcome.flow_ok = False
            return
        ticket = decision.callback
        outcome.trail.append(f"promised by {_clock(ticket.promised_by)}")
        outcome.notes.append(
            f"the caller heard: {decision.caller_message!r}; the callback should start by "
            f"{_clock(ticket.promised_by)} and is at risk from {_clock(ticket.promise_at_risk_at)}"
        )
    # the specialists are back: claim as the callback workflow would (with the dev stack its worker may
    # have claimed already; the answer is then its reservation)
    claim = await routing.call("ClaimCallback", pb.ClaimCallbackRequest(call_id=outcome.call_id))
    if claim is None:
        outcome.flow_ok = False
        return
    state = _PROMISE_STATES.get(claim.callback.promise_state, "unknown")
    holder = claim.agent.agent_id or claim.callback.agent_id or "nobody"
    outcome.trail.append(f"claimed {holder}: promise {state}")
    outcome.flow_ok = claim.callback.promise_state == pb.PROMISE_STATE_KEPT
    status = await routing.call("GetQueueStatus", pb.GetQueueStatusRequest(team_id=scenario.busy_team))
    if status is not None and status.teams:
        team = status.teams[0]
        rate = f"{team.promises_kept_last_hour:.0%}" if team.HasField("promises_kept_last_hour") else "-"
        early = team.promise_error_median.ToTimedelta().total_seconds()
        outcome.notes.append(
            f"{team.team_id}: {rate} of the last hour's promises kept; callbacks start a median "
            f"{early / 60:.1f} min before the time promised ({team.promise_error_samples} started)"
        )


async def _review_awaiting(client: Any, call_id: str, wait: float) -> Any:
    """The call's review once it awaits a verdict (None when it does not within `wait` seconds)."""
    from workflows.client import review_findings

    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            status = await review_findings(client, call_id)
        except Exception:  # not started yet: the edge's relay delivers the start shortly
            status = None
        if status is not None and status.state.awaits_verdict:
            return status
        if status is not None and not status.state.awaits_verdict and status.state != "gathering":
            return status
        await asyncio.sleep(0.5)
    return None


def notice_contact_hint(policy: Policy | None, team_id: str, port: int) -> str:
    """How to point the worker at the receiver: the variable (`url_env`) the policy's
    `review_notifications` names for the team's first contact, set to the receiver's URL."""
    team = policy.review_notifications.for_team(team_id) if policy is not None else None
    first = team.contacts[0] if team is not None and team.contacts else None
    if first is None or not first.url_env:
        return f"give {team_id}'s first contact in review_notifications the url http://127.0.0.1:{port}/{team_id}"
    return f"start `escalade dev` with {first.url_env}=http://127.0.0.1:{port}/{first.name}"


async def _unanswered_call(scenario: Scenario, edge: _Edge, routing: _Routing, outcome: Outcome) -> None:
    """Escalate; Vapi forwards, nobody answers, the call ends, and the end-of-call report says so."""
    request, destination, decision = await _escalate(scenario, edge, routing, outcome)
    if not outcome.ok or decision is None:
        return
    call = request_call(request)
    await edge.follow(status_update(call, "forwarding", destination=destination), outcome)
    await edge.follow(transfer_update(call, destination, "no-answer"), outcome)
    await edge.follow(status_update(call, "ended", ended_reason="call.forwarding.no-answer"), outcome)
    outcome.trail.append("transfer no-answer, call ended")
    report = end_of_call_report(
        call,
        ended_reason="call.forwarding.no-answer",
        transfers=[{"destination": destination, "status": "no-answer"}],
        summary="The caller was to be transferred to a technical specialist; nobody answered.",
    )
    await edge.follow(report, outcome)


async def _flow_notice(
    scenario: Scenario,
    edge: _Edge,
    routing: _Routing,
    outcome: Outcome,
    *,
    temporal: TemporalConnector | None,
    wait: float,
    notify_port: int,
    policy: Policy | None,
) -> None:
    """Route, let the transfer go unanswered, end the call, and receive the review's notification on a local
    receiver (the dev stack's worker pointed at it through the policy's `review_notifications`)."""
    from escalade_cli.notice_receiver import notice_receiver

    fresh = replace(scenario, caller=f"+1415555{uuid.uuid4().int % 10_000:04d}")
    try:
        async with notice_receiver(notify_port) as receiver:
            await _unanswered_call(fresh, edge, routing, outcome)
            if not outcome.ok:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(receiver.arrived.wait(), wait)
    except OSError as exc:
        outcome.notes.append(
            f"cannot receive notifications on 127.0.0.1:{notify_port}: {exc.strerror or exc}"
        )
        outcome.flow_ok = False
        return
    mine = [
        (path, body)
        for path, body in receiver.received
        if isinstance(body, dict) and body.get("call_id") == outcome.call_id
    ]
    if not mine:
        hint = notice_contact_hint(policy, scenario.expected_team, notify_port)
        outcome.notes.append(f"no notification within {wait:.0f} s: {hint}")
        outcome.flow_ok = False
        return
    path, body = mine[0]
    rules = ", ".join(str(f.get("rule")) for f in body.get("findings") or [])
    outcome.trail.append(f"notified {path}: {body.get('event')} ({rules})")
    outcome.notes.append(f"supervisor's link: {body.get('link')}")
    outcome.flow_ok = "transfer_failed" in rules
    if temporal is not None:
        from workflows.client import complete_review
        from workflows.inputs import Verdict

        client = await temporal()
        done = await complete_review(client, outcome.call_id, Verdict.RESOLVED, "escalade simulate")
        outcome.trail.append(f"verdict {done.verdict}")


async def _flow_feedback(
    scenario: Scenario,
    edge: _Edge,
    routing: _Routing,
    outcome: Outcome,
    *,
    temporal: TemporalConnector | None,
    wait: float,
) -> None:
    """Route, end the call as Vapi reports it (about `actual_category`), give the review's verdict, and
    route the customer's next call: it goes to the team the verdict taught."""
    from workflows.client import complete_review
    from workflows.inputs import Verdict

    if temporal is None:
        outcome.notes.append("no Temporal to give the review's verdict in (ESCALADE_TEMPORAL_ADDRESS)")
        outcome.flow_ok = False
        return
    # A fresh caller each run: what a verdict teaches stays with the customer (30 days in TechCorp's policy).
    fresh = replace(scenario, caller=f"+1415555{uuid.uuid4().int % 10_000:04d}")
    request, destination, first = await _escalate(fresh, edge, routing, outcome)
    if not outcome.ok or first is None:
        return
    await _hand_over(edge, request, destination, outcome)
    await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)
    first_call, first_team = outcome.call_id, first.team_id
    transfers = [{"destination": destination, "status": "connected"}]
    outputs = {"out-1": {"name": "issue_category", "result": scenario.actual_category}}
    report = end_of_call_report(
        request_call(request),
        ended_reason="assistant-forwarded-call",
        transfers=transfers,
        structured_outputs=outputs,
        summary=f"The caller's issue turned out to be about {scenario.actual_category}.",
    )
    await edge.follow(report, outcome)
    client = await temporal()
    review = await _review_awaiting(client, first_call, wait)
    if review is None or not review.state.awaits_verdict:
        state = review.state if review is not None else "not started"
        outcome.notes.append(
            f"the review of {first_call} did not await a verdict within {wait:.0f} s ({state})"
        )
        outcome.flow_ok = False
        return
    outcome.trail.append("review: " + ", ".join(f.rule for f in review.findings))
    done = await complete_review(client, first_call, Verdict.WRONG_CATEGORY, "escalade simulate supervisor")
    outcome.trail.append(f"verdict wrong-category: {done.outcome or '?'}")
    outcome.trail += [f"learned {line}" for line in done.learned]
    outcome.reason = "-"
    request, destination, second = await _escalate(fresh, edge, routing, outcome)
    if not outcome.ok or second is None:
        return
    await _hand_over(edge, request, destination, outcome)
    await routing.complete(outcome.call_id, outcome, skip_wrap_up=True)
    learned = [step.detail for step in second.trace if step.stage == "learned"]
    outcome.trail.append(f"next call: {second.team_id} instead of {first_team}")
    outcome.notes += learned
    outcome.flow_ok = second.team_id != first_team and bool(learned)


async def _run_one(
    scenario: Scenario,
    edge: _Edge,
    routing: _Routing,
    *,
    standin: str | None,
    callback_wait: float,
    cleanup: bool,
    policy: Policy | None = None,
    temporal: TemporalConnector | None = None,
    notify_port: int = DEFAULT_NOTIFY_PORT,
) -> Outcome:
    outcome = Outcome(scenario=scenario, call_id="")
    if scenario.flow == "what-if":
        await _flow_what_if(scenario, edge, routing, outcome, policy=policy)
    elif scenario.flow == "no-answer":
        await _flow_no_answer(scenario, edge, routing, outcome)
    elif scenario.flow == "wrap-up":
        await _flow_wrap_up(scenario, edge, routing, outcome)
    elif scenario.flow == "confirm":
        await _flow_confirm(scenario, edge, routing, outcome)
    elif scenario.flow == "fair-load":
        await _flow_fair_load(scenario, edge, routing, outcome)
    elif scenario.flow == "widening":
        await _flow_widening(scenario, edge, routing, outcome, policy=policy, cleanup=cleanup)
    elif scenario.flow == "promise":
        await _flow_promise(scenario, edge, routing, outcome)
    elif scenario.flow == "handoff":
        await _flow_handoff(scenario, edge, routing, outcome)
    elif scenario.flow == "callback":
        await _flow_callback(scenario, edge, routing, outcome, standin=standin, wait=callback_wait)
    elif scenario.flow == "notice":
        await _flow_notice(
            scenario,
            edge,
            routing,
            outcome,
            temporal=temporal,
            wait=callback_wait,
            notify_port=notify_port,
            policy=policy,
        )
    elif scenario.flow == "feedback":
        await _flow_feedback(scenario, edge, routing, outcome, temporal=temporal, wait=callback_wait)
    elif scenario.busy_team:
        await _flow_busy(scenario, edge, routing, outcome, cleanup=cleanup)
    else:
        await _flow_route(scenario, edge, routing, outcome)
    return outcome


async def run_scenarios(
    scenarios: Sequence[Scenario],
    *,
    edge: str = DEFAULT_EDGE,
    secret: str | None,
    routing_address: str,
    http_timeout: float = 15.0,
    standin: str | None = None,
    callback_wait: float = 900.0,
    cleanup: bool = False,
    routing_client: RoutingClientSettings | None = None,
    policy: Policy | None = None,
    temporal: TemporalConnector | None = None,
    notify_port: int = DEFAULT_NOTIFY_PORT,
) -> list[Outcome]:
    """Send each scenario to the edge, in order; raises EdgeUnreachable when the edge cannot be reached.
    `cleanup`: undo what a scenario leaves behind (the specialists busy-specialists made busy, its
    callback). `routing_client`: the TLS and token routing is called with (default: from the environment).
    `policy`: the routing policy a what-if scenario replays its decision under (changed)."""
    url = webhook_endpoint(edge)
    outcomes: list[Outcome] = []
    async with (
        httpx.AsyncClient(timeout=http_timeout) as client,
        routing_channel(routing_client or RoutingClientSettings(), address=routing_address) as channel,
    ):
        routing = _Routing(pb_grpc.RoutingServiceStub(channel))
        target = _Edge(client, url, secret)
        for scenario in scenarios:
            outcomes.append(
                await _run_one(
                    scenario,
                    target,
                    routing,
                    standin=standin.rstrip("/") if standin else None,
                    callback_wait=callback_wait,
                    cleanup=cleanup,
                    policy=policy,
                    temporal=temporal,
                    notify_port=notify_port,
                )
            )
    return outcomes


def outcome_table(outcomes: Sequence[Outcome]) -> Table:
    """The rich table `escalade simulate` prints."""
    table = Table(title="Escalade simulation", show_lines=False)
    columns = (
        "Scenario",
        "Destination",
        "Team",
        "Mode",
        "Latency (ms)",
        "Reason",
        "Lifecycle",
        "Expected",
        "Check",
    )
    for column in columns:
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
                " > ".join(o.trail) or "-",
                o.scenario.expectation,
                Text(o.check, style=style),
            )
        )
    return table


def standin_url(path: Path = STANDIN_URL_FILE) -> str | None:
    """The Vapi stand-in's URL `escalade dev` keeps in .escalade/vapi-standin-url, else None."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return text or None


def simulate_command(
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Scenarios to run (default, repeatable: {', '.join(s.name for s in default_scenarios())}; "
            f"only when named: {', '.join(n for n, s in SCENARIOS.items() if s.extended)})."
        ),
    ] = None,
    edge: Annotated[
        str | None,
        typer.Option(
            "--edge", help=f"Base URL of the running edge (default ESCALADE_EDGE_URL or {DEFAULT_EDGE})."
        ),
    ] = None,
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
    vapi_standin: Annotated[
        str | None,
        typer.Option(
            "--vapi-standin",
            help="URL of escalade dev's Vapi stand-in, for callback-voicemail (default: the URL escalade dev "
            "keeps in .escalade/vapi-standin-url).",
        ),
    ] = None,
    callback_wait: Annotated[
        float,
        typer.Option("--callback-wait", help="Seconds to wait for a callback to be handed over.", min=1),
    ] = 900.0,
    notify_port: Annotated[
        int,
        typer.Option(
            "--notify-port",
            help="Port of the local receiver review-notice starts for the supervisor's notification (point "
            "the dev stack's worker at it: the technical team's first contact in the policy's "
            "review_notifications, e.g. its url_env variable set to http://127.0.0.1:PORT/tech-supervisor).",
            min=1,
            max=65535,
        ),
    ] = DEFAULT_NOTIFY_PORT,
    cleanup: Annotated[
        bool,
        typer.Option(
            "--cleanup",
            help="Undo what a scenario leaves behind: busy-specialists restores the specialists it made busy "
            "and cancels its callback. By default both stay, so the callback can be watched waiting "
            "(Temporal UI: CallbackState = 'waiting') and then kept once a specialist is free again.",
        ),
    ] = False,
) -> None:
    """Send the seed's scenarios as signed Vapi messages to a running edge and show where each call went."""
    from escalade_cli.vapi import webhook_secret

    try:
        chosen = select_scenarios(scenarios or [])
    except ValueError as exc:
        fail(str(exc), 2)
    settings = settings_or_fail(SimulateSettings)
    edge = edge or settings.edge_url
    if not edge.startswith(("http://", "https://")):
        fail(f"--edge must be an http(s) URL (got {edge!r})", 2)
    key = secret if secret else webhook_secret(settings.vapi_secret)
    if not key:
        err_console.print(
            "[yellow]note:[/] no webhook secret: sending unsigned requests (edge in --insecure-dev)"
        )
    standin = vapi_standin or standin_url()
    policy = _routing_policy() if any(s.flow in ("what-if", "widening", "notice") for s in chosen) else None
    temporal = _temporal_connector() if any(s.flow in ("feedback", "notice") for s in chosen) else None
    try:
        outcomes = asyncio.run(
            run_scenarios(
                chosen,
                edge=edge,
                secret=key,
                routing_address=routing or settings.routing_address,
                routing_client=settings,
                standin=standin,
                callback_wait=callback_wait,
                cleanup=cleanup,
                policy=policy,
                temporal=temporal,
                notify_port=notify_port,
            )
        )
    except EdgeUnreachable as exc:
        fail(f"{exc}; is `escalade edge serve` (or `escalade dev`) running?")
    print_table(outcome_table(outcomes))
    for outcome in outcomes:
        for line in outcome.details:
            console.print(line, markup=False, highlight=False)
    failed = [o for o in outcomes if not o.ok]
    mismatched = [o for o in outcomes if o.ok and o.check == "MISMATCH"]
    unended = [o for o in outcomes if o.ended_status is not None and not 200 <= o.ended_status < 300]
    if mismatched:
        err_console.print(f"{len(mismatched)} scenario(s) did not reach the expected team.", highlight=False)
    if failed:
        fail(f"{len(failed)} scenario(s) got a non-2xx answer from the edge: {failed[0].error}")
    if unended:
        fail(f"{len(unended)} follow-up message(s) got a non-2xx answer (HTTP {unended[0].ended_status})")


def _temporal_connector() -> TemporalConnector:
    """Connects (once asked) to the Temporal of the `ESCALADE_TEMPORAL_*` settings, for the feedback flow's
    verdict."""
    from escalade_cli.temporal import temporal_data_converter_or_fail
    from escalade_platform.settings import TemporalConnectionSettings
    from escalade_platform.temporal_client import connect_temporal

    settings = settings_or_fail(TemporalConnectionSettings)
    converter = temporal_data_converter_or_fail(settings)

    async def connect() -> Any:
        return await connect_temporal(settings, data_converter=converter)

    return connect


def _routing_policy() -> Policy:
    """The policy the routing service reads (ESCALADE_POLICY), for the what-if scenarios."""
    from routing_service.policy.errors import PolicyError
    from routing_service.policy.loader import load_policy
    from routing_service.settings import RoutingSettings

    path = settings_or_fail(RoutingSettings).policy
    try:
        return load_policy(path)
    except PolicyError as exc:
        fail(f"the what-if scenarios replay under the routing policy, which is rejected:\n{exc}", 2)


def register(app: typer.Typer) -> None:
    """Add `escalade simulate` to the `escalade` application."""
    app.command("simulate")(simulate_command)
