"""Hostile gRPC input: every RPC fed invalid numbers, unknown enum values, empty ids, oversized strings,
negative sizes and malformed page tokens answers INVALID_ARGUMENT with a google.rpc.BadRequest naming the
field, and random requests (hypothesis) never surface as UNKNOWN or INTERNAL. A real RoutingServer on
127.0.0.1:0 with a real store (SQLite file and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import pytest
from google.protobuf import duration_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from routing_service.grpc.server import RoutingServer
from tests.service.grpc_helpers import add_agent, field_violations, resolve, routing_settings

pytestmark = pytest.mark.timeout(120)

MEGABYTE = "x" * (1024 * 1024)
# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "pb_grpc.RoutingServiceAsyncStub"
Call = Callable[[Stub], Awaitable[Any]]


@pytest.fixture
async def channel(database_url: str) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to a real RoutingServer holding one specialist and one decided call."""
    server = RoutingServer(routing_settings(database_url), watch_policy=False, run_sweeps=False)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = pb_grpc.RoutingServiceStub(channel)
        await add_agent(stub, "tech-1")
        await resolve(stub, "known-call")
        yield channel
    finally:
        await channel.close()
        await server.stop(0.5)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    return pb_grpc.RoutingServiceStub(channel)


def agent(**changes: Any) -> pb.Agent:
    values: dict[str, Any] = {
        "agent_id": "hostile-1",
        "display_name": "Hostile",
        "number": "+15550100299",
        "team_ids": ["technical"],
        "max_complexity": pb.COMPLEXITY_ADVANCED,
        "capacity": 1,
    }
    values.update(changes)
    return pb.Agent(**values)


def escalation(**changes: Any) -> pb.ResolveEscalationRequest:
    values: dict[str, Any] = {"call_id": "hostile-call", "tool_call_id": "t-1", "issue_category": "technical"}
    values.update(changes)
    return pb.ResolveEscalationRequest(**values)


# (id, call, field the violation must name)
CASES: list[tuple[str, Call, str]] = [
    ("resolve-empty-call-id", lambda s: s.ResolveEscalation(escalation(call_id="")), "call_id"),
    ("resolve-complexity-99", lambda s: s.ResolveEscalation(escalation(complexity=99)), "complexity"),
    ("resolve-complexity-negative", lambda s: s.ResolveEscalation(escalation(complexity=-3)), "complexity"),
    ("resolve-huge-call-id", lambda s: s.ResolveEscalation(escalation(call_id=MEGABYTE)), "call_id"),
    (
        "resolve-huge-tool-call-id",
        lambda s: s.ResolveEscalation(escalation(tool_call_id=MEGABYTE)),
        "tool_call_id",
    ),
    ("upsert-agent-missing", lambda s: s.UpsertAgent(pb.UpsertAgentRequest()), "agent"),
    (
        "upsert-agent-empty-id",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(agent_id=""))),
        "agent_id",
    ),
    (
        "upsert-agent-negative-capacity",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(capacity=-1))),
        "capacity",
    ),
    (
        "upsert-agent-zero-capacity",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(capacity=0))),
        "capacity",
    ),
    (
        "upsert-agent-invalid-number",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(number="555-CALL-ME"))),
        "number",
    ),
    (
        "upsert-agent-short-number",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(number="+1"))),
        "number",
    ),
    (
        "upsert-agent-bad-sip",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(sip_uri="http://x"))),
        "sip_uri",
    ),
    (
        "upsert-agent-complexity-99",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(max_complexity=99))),
        "max_complexity",
    ),
    (
        "upsert-agent-status-42",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(status=42))),
        "status",
    ),
    (
        "upsert-agent-huge-name",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(display_name=MEGABYTE))),
        "display_name",
    ),
    (
        "upsert-agent-huge-id",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(agent_id=MEGABYTE))),
        "agent_id",
    ),
    (
        "upsert-agent-empty-team",
        lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=agent(team_ids=[""]))),
        "team_ids",
    ),
    (
        "set-status-empty-id",
        lambda s: s.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="", status=pb.AGENT_STATUS_BUSY)),
        "agent_id",
    ),
    (
        "set-status-99",
        lambda s: s.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id="tech-1", status=pb.AgentStatus.ValueType(99))
        ),
        "status",
    ),
    (
        "list-agents-oversized-token",
        lambda s: s.ListAgents(pb.ListAgentsRequest(page_token="a" * 5000)),
        "page_token",
    ),
    (
        "list-agents-garbage-token",
        lambda s: s.ListAgents(pb.ListAgentsRequest(page_token="%%not-a-token%%")),
        "page_token",
    ),
    ("list-agents-negative-size", lambda s: s.ListAgents(pb.ListAgentsRequest(page_size=-5)), "page_size"),
    ("list-agents-huge-size", lambda s: s.ListAgents(pb.ListAgentsRequest(page_size=2**31 - 1)), "page_size"),
    (
        "list-agents-status-77",
        lambda s: s.ListAgents(pb.ListAgentsRequest(status=pb.AgentStatus.ValueType(77))),
        "status",
    ),
    (
        "list-callbacks-negative-size",
        lambda s: s.ListCallbacks(pb.ListCallbacksRequest(page_size=-1)),
        "page_size",
    ),
    (
        "list-callbacks-huge-size",
        lambda s: s.ListCallbacks(pb.ListCallbacksRequest(team_id="t", page_size=2**31 - 1)),
        "page_size",
    ),
    (
        "list-decisions-garbage-token",
        lambda s: s.ListDecisions(pb.ListDecisionsRequest(page_token="!!")),
        "page_token",
    ),
    (
        "list-decisions-oversized-token",
        lambda s: s.ListDecisions(pb.ListDecisionsRequest(page_token="0" * 5000)),
        "page_token",
    ),
    (
        "list-decisions-kind-99",
        lambda s: s.ListDecisions(pb.ListDecisionsRequest(kind=pb.DecisionKind.ValueType(99))),
        "kind",
    ),
    (
        "list-decisions-negative-size",
        lambda s: s.ListDecisions(pb.ListDecisionsRequest(page_size=-1)),
        "page_size",
    ),
    ("get-decision-empty-id", lambda s: s.GetDecision(pb.GetDecisionRequest(call_id="")), "call_id"),
    ("release-empty-id", lambda s: s.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="")), "call_id"),
    (
        "call-event-no-kind",
        lambda s: s.RecordCallEvent(pb.RecordCallEventRequest(call_id="c1")),
        "kind",
    ),
    (
        "call-event-unknown-kind",
        lambda s: s.RecordCallEvent(
            pb.RecordCallEventRequest(call_id="c1", kind=pb.CallEventKind.ValueType(42))
        ),
        "kind",
    ),
    (
        "call-event-nul-reason",
        lambda s: s.RecordCallEvent(
            pb.RecordCallEventRequest(call_id="c1", kind=pb.CALL_EVENT_KIND_ENDED, ended_reason="a\x00b")
        ),
        "ended_reason",
    ),
    (
        "call-event-long-status",
        lambda s: s.RecordCallEvent(
            pb.RecordCallEventRequest(
                call_id="c1", kind=pb.CALL_EVENT_KIND_TRANSFER_UPDATE, transfer_status="x" * 65
            )
        ),
        "transfer_status",
    ),
    (
        "complete-both-ids",
        lambda s: s.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="c1", agent_id="ann")),
        "agent_id",
    ),
    (
        "complete-huge-note",
        lambda s: s.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="c1", note="n" * 2000)),
        "note",
    ),
    ("upsert-customer-missing", lambda s: s.UpsertCustomer(pb.UpsertCustomerRequest()), "customer"),
    (
        "upsert-customer-bad-number",
        lambda s: s.UpsertCustomer(
            pb.UpsertCustomerRequest(customer=pb.Customer(number="abc", tier="premium"))
        ),
        "number",
    ),
    (
        "upsert-customer-negative-count",
        lambda s: s.UpsertCustomer(
            pb.UpsertCustomerRequest(
                customer=pb.Customer(number="+14155550123", tier="premium", previous_escalations=-1)
            )
        ),
        "previous_escalations",
    ),
    (
        "upsert-customer-huge-account",
        lambda s: s.UpsertCustomer(
            pb.UpsertCustomerRequest(
                customer=pb.Customer(number="+14155550123", tier="premium", account_name=MEGABYTE)
            )
        ),
        "account_name",
    ),
    ("get-customer-empty", lambda s: s.GetCustomer(pb.GetCustomerRequest(number="")), "number"),
    (
        "outcome-empty-call",
        lambda s: s.RecordEscalationOutcome(pb.RecordEscalationOutcomeRequest(call_id="")),
        "call_id",
    ),
    (
        "list-callbacks-state-99",
        lambda s: s.ListCallbacks(pb.ListCallbacksRequest(state=pb.CallbackState.ValueType(99))),
        "state",
    ),
    ("claim-empty-call", lambda s: s.ClaimCallback(pb.ClaimCallbackRequest(call_id="")), "call_id"),
    (
        "claim-negative-hold",
        lambda s: s.ClaimCallback(
            pb.ClaimCallbackRequest(call_id="known-call", hold_for=duration_pb2.Duration(seconds=-60))
        ),
        "hold_for",
    ),
    (
        "finish-empty-call",
        lambda s: s.FinishCallback(pb.FinishCallbackRequest(call_id="", state=pb.CALLBACK_STATE_CANCELLED)),
        "call_id",
    ),
    (
        "finish-state-99",
        lambda s: s.FinishCallback(
            pb.FinishCallbackRequest(call_id="known-call", state=pb.CallbackState.ValueType(99))
        ),
        "state",
    ),
]


@pytest.mark.parametrize(("call", "field"), [(c, f) for _, c, f in CASES], ids=[i for i, _, _ in CASES])
async def test_bad_request_names_the_field_when_input_is_hostile(stub: Stub, call: Call, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(stub)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    violations = field_violations(error)
    assert violations, "INVALID_ARGUMENT without google.rpc.BadRequest details"
    assert any(field in name for name, _ in violations), violations
    assert all(description for _, description in violations)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.GetQueueStatus(pb.GetQueueStatusRequest(team_id=MEGABYTE)),
        lambda s: s.GetDecision(pb.GetDecisionRequest(call_id=MEGABYTE)),
        lambda s: s.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id=MEGABYTE)),
        lambda s: s.SetAgentStatus(pb.SetAgentStatusRequest(agent_id=MEGABYTE, status=pb.AGENT_STATUS_BUSY)),
        lambda s: s.ClaimCallback(pb.ClaimCallbackRequest(call_id=MEGABYTE)),
        lambda s: s.GetCustomer(pb.GetCustomerRequest(number="+1" + "5" * 1_000_000)),
        lambda s: s.ListCallbacks(pb.ListCallbacksRequest(team_id=MEGABYTE)),
        lambda s: s.RecordCallEvent(
            pb.RecordCallEventRequest(call_id=MEGABYTE, kind=pb.CALL_EVENT_KIND_ENDED)
        ),
        lambda s: s.CompleteAssignment(pb.CompleteAssignmentRequest(agent_id=MEGABYTE)),
    ],
    ids=[
        "queue-status",
        "get-decision",
        "release",
        "set-status",
        "claim",
        "get-customer",
        "list-callbacks",
        "call-event",
        "complete",
    ],
)
async def test_error_is_readable_when_an_id_is_a_megabyte(stub: Stub, call: Call) -> None:
    """The status survives the trip (no 'metadata exceeds hard limit' in place of the real answer)."""
    try:
        await call(stub)
    except grpc.aio.AioRpcError as error:
        assert error.code() in {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}, error.details()
        assert len(error.details() or "") <= 1024
    # an empty answer (no callbacks for that team) is fine too


async def test_watch_availability_is_invalid_argument_when_a_team_id_is_empty(stub: Stub) -> None:
    stream = stub.WatchAvailability(pb.WatchAvailabilityRequest(team_ids=[""]), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _ in stream:
            pass
    # (a stream that silently waits for a team that cannot exist fails here on the call's deadline)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any("team_ids" in name for name, _ in field_violations(raised.value))


async def test_megabyte_transcript_is_routed_or_rejected_by_name_when_resolving(stub: Stub) -> None:
    try:
        reply = await stub.ResolveEscalation(escalation(call_id="long-talk", transcript=MEGABYTE))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert any("transcript" in name for name, _ in field_violations(error))
    else:
        assert reply.decision.call_id == "long-talk"


@pytest.mark.parametrize("method", ["ResolveEscalation", "UpsertAgent", "ListDecisions", "WatchAvailability"])
@pytest.mark.parametrize("raw", [b"\xff\xff\xff\xff", b"\x0a\xff\x01abc", b"\x08" + b"\xff" * 11])
async def test_undecodable_bytes_are_invalid_argument_when_the_wire_format_is_corrupt(
    channel: grpc.aio.Channel, method: str, raw: bytes
) -> None:
    path = f"/escalade.routing.v1.RoutingService/{method}"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        if method == "WatchAvailability":
            # No serializers: the raw bytes go on the wire as they are.
            stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(path)
            async for _ in stream(raw, timeout=5):
                pass
        else:
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
            await unary(raw, timeout=5)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    assert [name for name, _ in field_violations(raised.value)] == ["request"]


ALLOWED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
}
_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\u0000", "+", "+1" * 20, "sip:", "💥" * 200, "x" * 5000]),
)
_int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)


@st.composite
def hostile_calls(draw: st.DrawFn) -> tuple[str, Call]:
    kind = draw(st.sampled_from(["resolve", "agent", "customer", "list", "status", "callback"]))

    def text() -> str:
        return draw(_text)

    if kind == "resolve":
        request = pb.ResolveEscalationRequest(
            call_id=text(),
            tool_call_id=text(),
            caller_number=text(),
            issue_category=text(),
            complexity=pb.Complexity.ValueType(draw(_int32)),
            customer_context=text(),
            escalation_reason=text(),
            transcript=text(),
            caller_sip_uri=text(),
            dry_run=draw(st.booleans()),
        )
        return kind, lambda s: s.ResolveEscalation(request)
    if kind == "agent":
        a = pb.Agent(
            agent_id=text(),
            display_name=text(),
            team_ids=draw(st.lists(_text, max_size=3)),
            skills=draw(st.lists(_text, max_size=3)),
            max_complexity=pb.Complexity.ValueType(draw(_int32)),
            capacity=draw(_int32),
            status=pb.AgentStatus.ValueType(draw(_int32)),
        )
        if draw(st.booleans()):
            a.number = text()
        else:
            a.sip_uri = text()
        return kind, lambda s: s.UpsertAgent(pb.UpsertAgentRequest(agent=a))
    if kind == "customer":
        c = pb.Customer(number=text(), tier=text(), account_name=text(), previous_escalations=draw(_int32))
        return kind, lambda s: s.UpsertCustomer(pb.UpsertCustomerRequest(customer=c))
    if kind == "list":
        token, size = text(), draw(_int32)
        return kind, lambda s: s.ListDecisions(
            pb.ListDecisionsRequest(
                team_id=token[:8], kind=pb.DecisionKind.ValueType(size % 9), page_size=size, page_token=token
            )
        )
    if kind == "status":
        agent_id, status = text(), draw(_int32)
        return kind, lambda s: s.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AgentStatus.ValueType(status))
        )
    call_id, state, seconds = text(), draw(_int32), draw(_int32)
    return kind, lambda s: s.FinishCallback(
        pb.FinishCallbackRequest(call_id=call_id, state=pb.CallbackState.ValueType(state), note=str(seconds))
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile_calls())
async def test_random_requests_never_surface_as_unknown_or_internal(
    stub: Stub, case: tuple[str, Call]
) -> None:
    kind, call = case
    try:
        await call(stub)
    except grpc.aio.AioRpcError as error:
        assert error.code() in ALLOWED, (kind, error.code(), error.details())
        if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
            assert field_violations(error), (kind, error.details())
