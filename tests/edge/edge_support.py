"""Helpers for the edge tests: Vapi fixtures, a controllable routing servicer, signing, and the Vapi
contract audit (the SDK model check plus the extra-key/enum/E.164 checks of validate_fixtures.py)."""

from __future__ import annotations

import asyncio
import json
import re
import time
import typing
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from fastapi import FastAPI
from google.protobuf import duration_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import SecretStr

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from tests.support.routing import techcorp_routing
from webhook_edge.app import create_app
from webhook_edge.auth import sign_hmac
from webhook_edge.settings import EdgeSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "vapi" / "fixtures"
LOCAL_FIXTURES = Path(__file__).with_name("fixtures")
SERVICE_NAME = "escalade.routing.v1.RoutingService"

SECRET = "edge-test-secret-4f1c"
PREVIOUS_SECRET = "edge-test-previous-secret-9a2b"
E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def fixture_dir() -> Path:
    """The shared Vapi fixtures when the checkout sits beside ../shared, else the copies in this folder."""
    if SHARED_FIXTURES.is_dir() and any(SHARED_FIXTURES.glob("*.json")):
        return SHARED_FIXTURES
    return LOCAL_FIXTURES


def fixture_names(prefix: str = "") -> list[str]:
    names = {p.name for p in fixture_dir().glob("*.json")} | {p.name for p in LOCAL_FIXTURES.glob("*.json")}
    return sorted(n for n in names if n.startswith(prefix))


def load_fixture(name: str) -> dict[str, Any]:
    path = fixture_dir() / name
    if not path.exists():
        path = LOCAL_FIXTURES / name
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def signed_headers(body: bytes, secret: str = SECRET, *, timestamp_ms: int | None = None) -> dict[str, str]:
    stamp = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {"content-type": "application/json", **sign_hmac(secret, body, stamp)}


# ------------------------------------------------------------------------------------------------------
# decisions
# ------------------------------------------------------------------------------------------------------
def make_decision(
    request: pb.ResolveEscalationRequest,
    *,
    kind: pb.DecisionKind.ValueType = pb.DECISION_KIND_TRANSFER_AGENT,
    number: str | None = "+15550100200",
    sip_uri: str | None = None,
    extension: str = "",
    mode: pb.TransferMode.ValueType = pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE,
    caller_message: str = "Transferring you to our technical support specialists.",
    handoff: str = "Technical advanced issue.",
    summary: tuple[tuple[str, str], ...] = (),
    team_id: str = "technical",
    team_name: str = "Technical Specialists",
) -> pb.Decision:
    destination = pb.Destination(extension=extension)
    if sip_uri is not None:
        destination.sip_uri = sip_uri
    elif number is not None:
        destination.number = number
    decision = pb.Decision(
        decision_id=f"d-{request.call_id}-{request.tool_call_id}",
        call_id=request.call_id,
        tool_call_id=request.tool_call_id,
        kind=kind,
        team_id=team_id,
        team_display_name=team_name,
        destination=destination,
        caller_message=caller_message,
        transfer_mode=mode,
        handoff_message=handoff,
        summary_messages=[pb.SummaryMessage(role=r, content=c) for r, c in summary],
        effective_complexity=request.complexity or pb.COMPLEXITY_BASIC,
        tier="enterprise",
        issue_category=request.issue_category or "general",
        caller_number=request.caller_number,
        reason="test decision",
    )
    if kind == pb.DECISION_KIND_CALLBACK:
        decision.callback.CopyFrom(
            pb.CallbackTicket(call_id=request.call_id, team_id=team_id, priority=7, position=1)
        )
        decision.estimated_wait.CopyFrom(duration_pb2.Duration(seconds=600))
    return decision


@dataclass
class FakeRouting(pb_grpc.RoutingServiceServicer):
    """A routing servicer whose behaviour each test sets: decide, sleep past the deadline, or fail."""

    behaviour: str = "decide"  # decide | sleep | error
    sleep_seconds: float = 5.0
    error_code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    fail_next: int = 0
    abort_status: grpc.Status | None = None
    decide: Callable[[pb.ResolveEscalationRequest], pb.Decision] = make_decision
    resolve_requests: list[pb.ResolveEscalationRequest] = field(default_factory=list)
    releases: list[pb.ReleaseAssignmentRequest] = field(default_factory=list)
    call_events: list[pb.RecordCallEventRequest] = field(default_factory=list)
    decisions: dict[tuple[str, str], pb.Decision] = field(default_factory=dict)

    async def _misbehave(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            await context.abort(self.error_code, "test servicer transient failure")
        if self.abort_status is not None:
            await context.abort_with_status(self.abort_status)
        if self.behaviour == "sleep":
            await asyncio.sleep(self.sleep_seconds)
        elif self.behaviour == "error":
            await context.abort(self.error_code, "test servicer failure")

    async def ResolveEscalation(
        self, request: pb.ResolveEscalationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ResolveEscalationResponse:
        self.resolve_requests.append(request)
        await self._misbehave(context)
        key = (request.call_id, request.tool_call_id)
        if key in self.decisions:
            replay = pb.Decision()
            replay.CopyFrom(self.decisions[key])
            replay.replayed = True
            return pb.ResolveEscalationResponse(decision=replay)
        decision = self.decide(request)
        self.decisions[key] = decision
        return pb.ResolveEscalationResponse(decision=decision)

    async def ReleaseAssignment(
        self, request: pb.ReleaseAssignmentRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReleaseAssignmentResponse:
        self.releases.append(request)
        await self._misbehave(context)
        held = any(call_id == request.call_id for call_id, _ in self.decisions)
        return pb.ReleaseAssignmentResponse(released=held, agent_id="agent-1" if held else "")

    async def RecordCallEvent(
        self, request: pb.RecordCallEventRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.RecordCallEventResponse:
        self.call_events.append(request)
        await self._misbehave(context)
        decision = next((d for (c, _), d in self.decisions.items() if c == request.call_id), None)
        if decision is None:
            return pb.RecordCallEventResponse(changed=False)
        stage = {
            pb.CALL_EVENT_KIND_FORWARDING: pb.ASSIGNMENT_STAGE_OFFERED,
            pb.CALL_EVENT_KIND_ENDED: pb.ASSIGNMENT_STAGE_CONNECTED
            if request.ended_reason == "assistant-forwarded-call"
            else pb.ASSIGNMENT_STAGE_MISSED,
            pb.CALL_EVENT_KIND_TRANSFER_UPDATE: pb.ASSIGNMENT_STAGE_MISSED
            if request.transfer_status in ("busy", "no-answer", "voicemail", "failed", "cancelled")
            else pb.ASSIGNMENT_STAGE_OFFERED,
        }.get(request.kind, pb.ASSIGNMENT_STAGE_RESERVED)
        assignment = pb.Assignment(call_id=request.call_id, agent_id="agent-1", purpose="live", stage=stage)
        return pb.RecordCallEventResponse(assignment=assignment, changed=True)

    async def GetDecision(
        self, request: pb.GetDecisionRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.GetDecisionResponse:
        await self._misbehave(context)
        for (call_id, _), decision in self.decisions.items():
            if call_id == request.call_id:
                return pb.GetDecisionResponse(decision=decision)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no decision for call {request.call_id}")
        raise AssertionError  # unreachable


@dataclass
class RunningFake:
    servicer: FakeRouting
    health: health.aio.HealthServicer
    address: str
    server: grpc.aio.Server


@asynccontextmanager
async def fake_routing_server() -> AsyncIterator[RunningFake]:
    server = grpc.aio.server()
    servicer = FakeRouting()  # type: ignore[abstract]  # only the RPCs used; the rest answer UNIMPLEMENTED
    pb_grpc.add_RoutingServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield RunningFake(servicer, health_servicer, f"127.0.0.1:{port}", server)
    finally:
        await server.stop(None)


@dataclass
class Edge:
    app: FastAPI
    client: httpx.AsyncClient
    settings: EdgeSettings

    async def post(
        self,
        doc: Any,
        *,
        path: str = "/webhook/vapi",
        headers: dict[str, str] | None = None,
        secret: str = SECRET,
    ) -> httpx.Response:
        body = doc if isinstance(doc, bytes) else dumps(doc)
        return await self.client.post(path, content=body, headers=headers or signed_headers(body, secret))

    @property
    def outbox(self) -> Any:
        return self.app.state.webhook.state.outbox


@asynccontextmanager
async def running_edge(settings: EdgeSettings, **deps: Any) -> AsyncIterator[Edge]:
    """`create_app(settings)` with its lifespan entered, behind an httpx ASGI client."""
    app = create_app(settings, **deps)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            yield Edge(app, client, settings)


# ------------------------------------------------------------------------------------------------------
# Vapi contract audit (after validate_fixtures.py)
# ------------------------------------------------------------------------------------------------------
@dataclass
class RealStack:
    """The real edge in front of the REAL routing service: `edge` answers webhooks, `stub` is routing's."""

    edge: Edge
    stub: pb_grpc.RoutingServiceAsyncStub


def stack_edge_settings(routing_address: str, database_url: str, **overrides: Any) -> EdgeSettings:
    """The settings of an edge in front of a real routing server: the test secret, a 5 s routing deadline,
    its outbox on `database_url`, and `overrides`."""
    return EdgeSettings(
        vapi_secret=SecretStr(SECRET),
        routing_address=routing_address,
        routing_deadline_ms=5000,
        database_url=database_url,
        **overrides,
    )


@asynccontextmanager
async def real_routing_stack(database_url: str) -> AsyncIterator[RealStack]:
    """A real routing server on 127.0.0.1:0 (a real store on `database_url`, the TechCorp policy, its demo
    agents and customers) and the edge in front of it, its outbox on the same database as by default."""
    async with (
        techcorp_routing(database_url) as routing,
        running_edge(stack_edge_settings(routing.address, database_url)) as edge,
    ):
        yield RealStack(edge, routing.stub)


async def decision_of(stack: RealStack, call_id: str) -> pb.Decision:
    """The decision routing stored for `call_id`."""
    return (await stack.stub.GetDecision(pb.GetDecisionRequest(call_id=call_id))).decision


async def active(stack: RealStack) -> dict[str, int]:
    """Each specialist with active assignments, and how many."""
    reply = await stack.stub.ListAgents(pb.ListAgentsRequest(page_size=1000))
    return {a.agent_id: a.active_assignments for a in reply.agents if a.active_assignments}


def literal_values(annotation: Any) -> tuple[set[Any], bool]:
    found: set[Any] = set()
    has_any = False

    def walk(a: Any) -> None:
        nonlocal has_any
        if a is typing.Any:
            has_any = True
            return
        origin = typing.get_origin(a)
        if origin is typing.Literal:
            found.update(typing.get_args(a))
        elif origin in (typing.Union, typing.Annotated) or str(origin) == "<class 'types.UnionType'>":
            for arg in typing.get_args(a):
                walk(arg)

    walk(annotation)
    return found, has_any


def audit(value: Any, raw: Any, path: str, problems: list[str]) -> None:
    """Extra keys (incl. snake_case spellings) and strings outside an SDK open enum, into `problems`."""
    import pydantic

    if isinstance(value, pydantic.BaseModel) and isinstance(raw, dict):
        by_alias = {(f.alias or n): n for n, f in type(value).model_fields.items()}
        for key, raw_child in raw.items():
            p = f"{path}.{key}"
            name = by_alias.get(key)
            if name is None:
                problems.append(f"unknown key {p}")
                continue
            child = getattr(value, name, None)
            if isinstance(child, str):
                lits, is_open = literal_values(type(value).model_fields[name].annotation)
                if lits and is_open and child not in lits:
                    problems.append(f"{p}={child!r} not in SDK enum")
            audit(child, raw_child, p, problems)
    elif isinstance(value, list | tuple) and isinstance(raw, list):
        for i, (item, raw_item) in enumerate(zip(value, raw, strict=False)):
            audit(item, raw_item, f"{path}[{i}]", problems)
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, item in value.items():
            if isinstance(item, pydantic.BaseModel | list):
                audit(item, raw.get(key), f"{path}.{key}", problems)


def check_destination_numbers(destination: dict[str, Any], problems: list[str]) -> None:
    if destination.get("type") == "number" and not E164.match(str(destination.get("number"))):
        problems.append(f"destination.number {destination.get('number')!r} is not E.164")
    if destination.get("type") == "sip" and not str(destination.get("sipUri", "")).startswith(
        ("sip:", "sips:")
    ):
        problems.append("destination.sipUri must start with sip:")
