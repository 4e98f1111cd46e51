"""The assignment lifecycle over gRPC on SQLite and PostgreSQL, with a real in-process server and a clock the
test moves: Vapi's events (RecordCallEvent), the specialist's side (CompleteAssignment), the sweeper's safety
limit and wrap-up, missed offers that set a specialist away, and the agent listing's activity.

TechCorp policy: technical calls go to the technical team (wrap-up 60 s, safety limit 60 min, away after 3
missed offers in a row unless the example says otherwise: the tests read the team from the policy)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app.sweeper import sweep_once
from routing_service.grpc.server import RoutingServer
from routing_service.metrics import ROUTING_METRICS
from tests.service.grpc_helpers import add_agent, agent_of, field_violations, resolve, routing_settings

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"
START = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)  # a Monday afternoon: TechCorp's teams are open


@dataclass
class Clocked:
    server: RoutingServer
    stub: Stub
    now: list[datetime]

    def advance(self, **delta: float) -> datetime:
        self.now[0] += timedelta(**delta)
        return self.now[0]

    async def sweep(self) -> tuple[int, int]:
        policies = self.server.policies
        assert policies is not None
        result = await sweep_once(
            uow=self.server.uow,
            now=self.now[0],
            callback_ttl=timedelta(days=1),
            events=self.server.events,
            policy=policies.current,
        )
        return result.released, result.talk_limits

    @property
    def technical(self) -> tuple[timedelta, timedelta, int]:
        policies = self.server.policies
        assert policies is not None
        team = policies.current.teams["technical"]
        return team.max_talk, team.wrap_up, team.missed_offers_before_away


@pytest.fixture
async def clocked(database_url: str) -> AsyncIterator[Clocked]:
    now = [START]
    server = RoutingServer(
        routing_settings(database_url), watch_policy=False, run_sweeps=False, clock=lambda: now[0]
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Clocked(server, routing_pb2_grpc.RoutingServiceStub(channel), now)
    finally:
        await channel.close()
        await server.stop(0.5)


async def _event(
    stub: Stub, call_id: str, kind: pb.CallEventKind.ValueType, *, reason: str = "", status: str = ""
) -> pb.RecordCallEventResponse:
    return await stub.RecordCallEvent(
        pb.RecordCallEventRequest(call_id=call_id, kind=kind, ended_reason=reason, transfer_status=status)
    )


async def _hand_over(stub: Stub, call_id: str) -> pb.RecordCallEventResponse:
    await _event(stub, call_id, pb.CALL_EVENT_KIND_FORWARDING)
    return await _event(stub, call_id, pb.CALL_EVENT_KIND_ENDED, reason="assistant-forwarded-call")


async def test_a_specialist_who_picked_up_is_not_offered_again_until_wrap_up_is_over(
    clocked: Clocked,
) -> None:
    """Issue 15, reproduction 1."""
    stub = clocked.stub
    await add_agent(stub, "ann", capacity=1)
    a = await resolve(stub, "call-a")
    assert (a.kind, a.agent_id) == (pb.DECISION_KIND_TRANSFER_AGENT, "ann")

    forwarding = await _event(stub, "call-a", pb.CALL_EVENT_KIND_FORWARDING)
    assert forwarding.changed and forwarding.assignment.stage == pb.ASSIGNMENT_STAGE_OFFERED
    clocked.advance(seconds=20)
    ended = await _event(stub, "call-a", pb.CALL_EVENT_KIND_ENDED, reason="assistant-forwarded-call")
    assert ended.changed and ended.assignment.stage == pb.ASSIGNMENT_STAGE_CONNECTED
    max_talk, wrap_up, _ = clocked.technical
    assert ended.assignment.expires_at.ToDatetime(tzinfo=UTC) == clocked.now[0] + max_talk
    talking = await agent_of(stub, "ann")
    assert talking.activity == pb.AGENT_ACTIVITY_TALKING
    assert talking.activity_since.ToDatetime(tzinfo=UTC) == clocked.now[0]
    again = await _event(stub, "call-a", pb.CALL_EVENT_KIND_ENDED, reason="assistant-forwarded-call")
    assert not again.changed, "a repeated event changes nothing"

    b = await resolve(stub, "call-b")
    assert b.kind == pb.DECISION_KIND_CALLBACK and b.agent_id != "ann"

    clocked.advance(minutes=7)
    done = await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a", note="fixed"))
    assert done.completed and done.assignment.stage == pb.ASSIGNMENT_STAGE_WRAP_UP
    assert done.assignment.completed_at.ToDatetime(tzinfo=UTC) == clocked.now[0]
    repeat = await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a"))
    assert not repeat.completed and repeat.assignment.stage == pb.ASSIGNMENT_STAGE_WRAP_UP
    assert (await agent_of(stub, "ann")).activity == pb.AGENT_ACTIVITY_WRAP_UP
    busy = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-b"))
    assert busy.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE, "still in wrap-up"

    clocked.advance(seconds=wrap_up.total_seconds() + 1)
    assert await clocked.sweep() == (1, 0)
    free = await agent_of(stub, "ann")
    assert (free.activity, free.active_assignments) == (pb.AGENT_ACTIVITY_AVAILABLE, 0)
    claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-b"))
    assert claimed.outcome == pb.CLAIM_OUTCOME_RESERVED and claimed.agent.agent_id == "ann"
    final = await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a"))
    assert not final.completed and final.assignment.stage == pb.ASSIGNMENT_STAGE_COMPLETED


async def test_skip_wrap_up_by_agent_frees_the_specialist_at_once(clocked: Clocked) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann")
    await resolve(stub, "call-a")
    await _hand_over(stub, "call-a")
    before = ROUTING_METRICS.completed.labels(team="technical")._value.get()
    done = await stub.CompleteAssignment(pb.CompleteAssignmentRequest(agent_id="ann", skip_wrap_up=True))
    assert done.completed and done.assignment.stage == pb.ASSIGNMENT_STAGE_COMPLETED
    assert done.assignment.call_id == "call-a"
    assert ROUTING_METRICS.completed.labels(team="technical")._value.get() == before + 1
    assert (await agent_of(stub, "ann")).active_assignments == 0
    assert (await resolve(stub, "call-b")).agent_id == "ann"


async def test_missed_offers_in_a_row_set_the_specialist_away_until_set_available(clocked: Clocked) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann")
    _, _, limit = clocked.technical
    before = ROUTING_METRICS.missed_offers.labels(team="technical")._value.get()
    replies = []
    for i in range(limit):
        assert (await resolve(stub, f"call-{i}")).agent_id == "ann"
        await _event(stub, f"call-{i}", pb.CALL_EVENT_KIND_FORWARDING)
        reason = "call.forwarding.no-answer" if i % 2 == 0 else ""
        if reason:
            replies.append(await _event(stub, f"call-{i}", pb.CALL_EVENT_KIND_ENDED, reason=reason))
        else:
            replies.append(await _event(stub, f"call-{i}", pb.CALL_EVENT_KIND_TRANSFER_UPDATE, status="busy"))
    assert [r.assignment.stage for r in replies] == [pb.ASSIGNMENT_STAGE_MISSED] * limit
    assert [r.agent_set_away for r in replies] == [False] * (limit - 1) + [True]
    assert ROUTING_METRICS.missed_offers.labels(team="technical")._value.get() == before + limit
    away = await stub.ListAgents(pb.ListAgentsRequest(status=pb.AGENT_STATUS_AWAY))
    assert [(a.agent_id, a.activity, a.missed_in_row) for a in away.agents] == [
        ("ann", pb.AGENT_ACTIVITY_AWAY, limit)
    ]
    assert (await resolve(stub, "call-next")).kind == pb.DECISION_KIND_CALLBACK
    back = await stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="ann", status=pb.AGENT_STATUS_AVAILABLE)
    )
    assert back.agent.missed_in_row == 0 and back.agent.status == pb.AGENT_STATUS_AVAILABLE


async def test_a_customer_who_hangs_up_during_the_transfer_does_not_count_against_the_specialist(
    clocked: Clocked,
) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann")
    await resolve(stub, "call-a")
    await _event(stub, "call-a", pb.CALL_EVENT_KIND_FORWARDING)
    left = await _event(
        stub, "call-a", pb.CALL_EVENT_KIND_ENDED, reason="customer-ended-call-during-transfer"
    )
    assert left.changed and left.assignment.stage == pb.ASSIGNMENT_STAGE_RELEASED
    assert not left.agent_set_away
    ann = await agent_of(stub, "ann")
    assert (ann.missed_in_row, ann.active_assignments, ann.activity) == (0, 0, pb.AGENT_ACTIVITY_AVAILABLE)


async def test_an_unused_reservation_is_freed_when_the_call_ends_before_any_transfer(
    clocked: Clocked,
) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann")
    await resolve(stub, "call-a")
    assert (await agent_of(stub, "ann")).activity == pb.AGENT_ACTIVITY_RESERVED
    ended = await _event(stub, "call-a", pb.CALL_EVENT_KIND_ENDED, reason="customer-ended-call")
    assert ended.assignment.stage == pb.ASSIGNMENT_STAGE_RELEASED
    assert (await agent_of(stub, "ann")).active_assignments == 0
    nothing = await _event(stub, "call-none", pb.CALL_EVENT_KIND_ENDED, reason="customer-ended-call")
    assert not nothing.changed and not nothing.HasField("assignment")


async def test_the_safety_limit_ends_a_conversation_nobody_completed_then_wrap_up_frees(
    clocked: Clocked,
) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann")
    await resolve(stub, "call-a", caller="+14155550123")
    await _hand_over(stub, "call-a")
    max_talk, wrap_up, _ = clocked.technical
    before = ROUTING_METRICS.talk_limits.labels(team="technical")._value.get()
    clocked.advance(seconds=max_talk.total_seconds() - 1)
    assert await clocked.sweep() == (0, 0)
    clocked.advance(seconds=2)
    assert await clocked.sweep() == (0, 1)
    assert ROUTING_METRICS.talk_limits.labels(team="technical")._value.get() == before + 1
    ann = await agent_of(stub, "ann")
    assert (ann.activity, ann.active_assignments) == (pb.AGENT_ACTIVITY_WRAP_UP, 1)
    clocked.advance(seconds=wrap_up.total_seconds())
    assert await clocked.sweep() == (1, 0)
    assert (await agent_of(stub, "ann")).active_assignments == 0
    done = await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a"))
    assert not done.completed and done.assignment.stage == pb.ASSIGNMENT_STAGE_COMPLETED


async def test_call_events_and_completions_refuse_bad_input_with_clear_statuses(clocked: Clocked) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann", capacity=2)
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await stub.RecordCallEvent(pb.RecordCallEventRequest(ended_reason="x" * 300))
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert {f for f, _ in field_violations(bad.value)} == {"call_id", "kind", "ended_reason"}
    with pytest.raises(grpc.aio.AioRpcError) as bad_kind:
        await stub.RecordCallEvent(pb.RecordCallEventRequest(call_id="c", kind=99))  # type: ignore[arg-type]
    assert bad_kind.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as neither:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest())
    assert neither.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(neither.value)] == ["call_id"]
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="never"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as ghost:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest(agent_id="ghost"))
    assert ghost.value.code() is grpc.StatusCode.NOT_FOUND
    await resolve(stub, "call-a")
    with pytest.raises(grpc.aio.AioRpcError) as early:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a"))
    assert early.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "not connected" in (early.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as idle:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest(agent_id="ann"))
    assert idle.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    await resolve(stub, "call-b")
    await _hand_over(stub, "call-a")
    await _hand_over(stub, "call-b")
    with pytest.raises(grpc.aio.AioRpcError) as two:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest(agent_id="ann"))
    assert two.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "call-a" in (two.value.details() or "") and "call-b" in (two.value.details() or "")


async def test_release_assignment_still_frees_a_connected_specialist_as_an_override(clocked: Clocked) -> None:
    stub = clocked.stub
    await add_agent(stub, "ann")
    await resolve(stub, "call-a")
    await _hand_over(stub, "call-a")
    released = await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-a", reason="admin"))
    assert released.released and released.agent_id == "ann"
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-a"))
    assert gone.value.code() is grpc.StatusCode.FAILED_PRECONDITION
