"""ResolveEscalation, ReleaseAssignment and GetDecision through the real stub, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from typing import TypeAlias

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app.policy_source import PolicySource
from routing_service.domain.models import BusinessHours
from routing_service.grpc.server import RoutingServer
from routing_service.policy import load_policy
from tests.service.grpc_helpers import TECHCORP, add_agent, add_customer, agent_of, resolve, routing_settings

# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


async def _seed_customers(stub: Stub) -> None:
    await add_customer(stub, "+1234567890", "enterprise", "TechCorp Enterprise")
    await add_customer(stub, "+0987654321", "standard", "Basic Plan")
    await add_customer(stub, "+1111111111", "premium", "Premium Support")


@pytest.mark.parametrize(
    ("caller", "category", "complexity", "context", "team", "rule"),
    [
        ("+1234567890", "technical", pb.COMPLEXITY_ADVANCED, "", "enterprise", "enterprise-tier"),
        ("+0987654321", "billing", pb.COMPLEXITY_BASIC, "", "billing", "billing-and-account"),
        ("+1111111111", "technical", pb.COMPLEXITY_ADVANCED, "", "technical", "technical-specialists"),
        ("+15557654321", "", pb.COMPLEXITY_UNSPECIFIED, "our service is down, urgent", "enterprise", ""),
    ],
    ids=["enterprise", "standard-billing", "premium-technical", "unknown-critical"],
)
async def test_seed_scenarios_route_to_the_seed_team_when_no_specialists_are_on_record(
    stub: Stub,
    caller: str,
    category: str,
    complexity: pb.Complexity.ValueType,
    context: str,
    team: str,
    rule: str,
) -> None:
    await _seed_customers(stub)
    decision = await resolve(
        stub, "call-seed", caller=caller, category=category, complexity=complexity, context=context
    )
    assert decision.kind == pb.DECISION_KIND_TRANSFER_TEAM
    assert decision.team_id == team
    if rule:
        assert decision.rule_id == rule
    numbers = {"enterprise": "+15550100100", "billing": "+15550100300", "technical": "+15550100200"}
    assert decision.destination.number == numbers[team]
    assert decision.trace, "every decision carries its trace"
    assert not decision.replayed


async def test_unknown_caller_gets_default_tier_and_critical_when_outage_words_are_used(stub: Stub) -> None:
    decision = await resolve(
        stub,
        "call-x",
        caller="+15557654321",
        category="",
        complexity=pb.COMPLEXITY_UNSPECIFIED,
        context="our service is down, urgent",
    )
    assert decision.tier == "standard"
    assert decision.effective_complexity == pb.COMPLEXITY_CRITICAL
    assert decision.team_id == "enterprise"
    assert any(s.stage == "customer" for s in decision.trace)


async def test_opaque_seed_number_is_noted_in_the_trace_when_it_is_not_a_valid_number(stub: Stub) -> None:
    await _seed_customers(stub)
    decision = await resolve(stub, "call-o", caller="+1234567890")
    assert decision.tier == "enterprise"
    assert decision.caller_number == "+1234567890"
    assert any("opaque" in s.detail for s in decision.trace if s.stage == "caller")


async def test_specialist_is_reserved_and_released_when_one_is_free(stub: Stub) -> None:
    await add_agent(stub, "ann")
    decision = await resolve(stub, "call-1")
    assert decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert decision.agent_id == "ann"
    assert decision.destination.number == "+15550100201"
    assert (await agent_of(stub, "ann")).active_assignments == 1

    released = await stub.ReleaseAssignment(
        pb.ReleaseAssignmentRequest(call_id="call-1", reason="customer-ended-call")
    )
    assert released.released and released.agent_id == "ann"
    assert (await agent_of(stub, "ann")).active_assignments == 0
    again = await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    assert not again.released and again.agent_id == ""


async def test_longest_idle_specialist_is_chosen_when_load_is_equal(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await add_agent(stub, "bob", number="+15550100202")
    first = await resolve(stub, "call-1")
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id=first.call_id))
    second = await resolve(stub, "call-2")
    assert {first.agent_id, second.agent_id} == {"ann", "bob"}, "the one just freed has been idle shortest"
    third = await resolve(stub, "call-3")
    assert third.agent_id == first.agent_id


async def test_unqualified_specialists_are_rejected_in_the_trace_when_complexity_is_too_high(
    stub: Stub,
) -> None:
    await add_agent(stub, "junior", max_complexity=pb.COMPLEXITY_INTERMEDIATE)
    decision = await resolve(stub, "call-1", complexity=pb.COMPLEXITY_ADVANCED)
    assert decision.kind == pb.DECISION_KIND_CALLBACK
    rejected = [s for s in decision.trace if s.subject == "junior" and s.outcome == pb.TRACE_OUTCOME_REJECTED]
    assert rejected


async def test_callback_with_position_and_wait_when_all_specialists_are_busy(stub: Stub) -> None:
    await add_agent(stub, "ann")
    assert (await resolve(stub, "call-1")).kind == pb.DECISION_KIND_TRANSFER_AGENT
    second = await resolve(stub, "call-2")
    third = await resolve(stub, "call-3")
    for decision, position in ((second, 1), (third, 2)):
        assert decision.kind == pb.DECISION_KIND_CALLBACK
        assert decision.destination.number == "+15550100600"
        assert decision.callback.position == position
        assert decision.callback.state == pb.CALLBACK_STATE_WAITING
        assert decision.caller_message.startswith("All specialists are busy.")
        wait = decision.estimated_wait.ToTimedelta()
        assert wait.total_seconds() > 0
        if wait.total_seconds() > 300:
            minutes = math.ceil(wait.total_seconds() / 60)
            assert f"Current wait time is approximately {minutes} minutes." in decision.caller_message
        else:
            assert "Current wait time" not in decision.caller_message
    assert third.estimated_wait.ToTimedelta() > second.estimated_wait.ToTimedelta()
    # No handle times yet: the policy's default (8 min) per caller ahead, above the 5-minute threshold.
    assert third.estimated_wait.ToTimedelta().total_seconds() == 2 * 8 * 60
    assert "Current wait time is approximately 16 minutes." in third.caller_message


async def test_newer_caller_does_not_take_a_freed_specialist_when_a_callback_waits(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await resolve(stub, "call-1")
    waiting = await resolve(stub, "call-2")
    assert waiting.kind == pb.DECISION_KIND_CALLBACK
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    newer = await resolve(stub, "call-3")
    assert newer.kind == pb.DECISION_KIND_CALLBACK
    assert newer.callback.position == 2
    assert (await agent_of(stub, "ann")).active_assignments == 0, "the freed slot is kept for the queue head"


async def test_repeat_is_replayed_without_a_second_reservation_when_ids_match(stub: Stub) -> None:
    await add_agent(stub, "ann", capacity=2)
    first = await resolve(stub, "call-1", tool_call_id="t1")
    again = await resolve(stub, "call-1", tool_call_id="t1")
    assert again.replayed and not first.replayed
    assert again.decision_id == first.decision_id and again.agent_id == "ann"
    assert (await agent_of(stub, "ann")).active_assignments == 1


async def test_late_repeat_after_the_call_ended_reserves_and_queues_nothing(stub: Stub) -> None:
    # A repeat decides again inside its transaction and rolls back when it meets the stored decision.
    await add_agent(stub, "ann", capacity=1)
    first = await resolve(stub, "call-1")
    queued = await resolve(stub, "call-2")
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1", reason="ended"))
    late = await resolve(stub, "call-1")  # Vapi redelivers after the call ended: ann is free again
    again = await resolve(stub, "call-2")
    assert late.replayed and late.decision_id == first.decision_id
    assert (
        again.replayed and again.kind == pb.DECISION_KIND_CALLBACK and again.decision_id == queued.decision_id
    )
    assert (await agent_of(stub, "ann")).active_assignments == 0, "the late repeat reserved nothing"
    waiting = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    assert [t.call_id for t in waiting.callbacks] == ["call-2"], "one ticket, not a second one"


async def test_dry_run_reserves_and_stores_nothing_when_a_specialist_is_free(stub: Stub) -> None:
    await add_agent(stub, "ann")
    decision = await resolve(stub, "call-dry", dry_run=True)
    assert decision.dry_run and decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert (await agent_of(stub, "ann")).active_assignments == 0
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetDecision(pb.GetDecisionRequest(call_id="call-dry"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    no_id = await resolve(stub, "", dry_run=True)
    assert no_id.dry_run


async def test_dry_run_enqueues_nothing_when_everyone_is_busy(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await resolve(stub, "call-1")
    decision = await resolve(stub, "call-dry", dry_run=True)
    assert decision.kind == pb.DECISION_KIND_CALLBACK and decision.callback.position == 1
    listed = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    assert list(listed.callbacks) == []


async def test_get_decision_returns_the_stored_trace_when_the_call_was_routed(stub: Stub) -> None:
    decision = await resolve(stub, "call-1", category="billing", complexity=pb.COMPLEXITY_BASIC)
    stored = (await stub.GetDecision(pb.GetDecisionRequest(call_id="call-1"))).decision
    assert stored.decision_id == decision.decision_id
    assert list(stored.trace) == list(decision.trace)
    assert stored.team_id == "billing"


async def test_list_decisions_pages_newest_first_when_filtered_by_team(stub: Stub) -> None:
    for i in range(3):
        await resolve(stub, f"call-b{i}", category="billing", complexity=pb.COMPLEXITY_BASIC)
    await resolve(stub, "call-p", category="product", complexity=pb.COMPLEXITY_BASIC)
    page = await stub.ListDecisions(pb.ListDecisionsRequest(team_id="billing", page_size=2))
    assert [d.call_id for d in page.decisions] == ["call-b2", "call-b1"]
    rest = await stub.ListDecisions(
        pb.ListDecisionsRequest(team_id="billing", page_size=2, page_token=page.next_page_token)
    )
    assert [d.call_id for d in rest.decisions] == ["call-b0"]
    assert rest.next_page_token == ""


async def test_second_tool_call_moves_on_to_another_specialist_when_the_call_already_holds_one(
    stub: Stub,
) -> None:
    """The same call escalating again means its specialist did not take it (docs/lifecycle.md): never the
    same specialist twice, and still one slot held for the call."""
    await add_agent(stub, "ann", capacity=2)
    await add_agent(stub, "bob", number="+15550100202", capacity=2)
    first = await resolve(stub, "call-1", tool_call_id="t1")
    second = await resolve(stub, "call-1", tool_call_id="t2")
    assert not second.replayed and second.decision_id != first.decision_id
    assert second.kind == pb.DECISION_KIND_TRANSFER_AGENT and second.agent_id != first.agent_id
    assert list(second.missed_agent_ids) == [first.agent_id]
    total = (await agent_of(stub, "ann")).active_assignments + (
        await agent_of(stub, "bob")
    ).active_assignments
    assert total == 1


async def test_sticky_specialist_is_preferred_when_the_customer_had_one_before(stub: Stub) -> None:
    await add_customer(stub, "+15550101234", "premium")
    await add_agent(stub, "ann", capacity=3)
    await add_agent(stub, "bob", number="+15550100202", capacity=3)
    first = await resolve(stub, "call-0", caller="+15550101234")
    await stub.RecordEscalationOutcome(
        pb.RecordEscalationOutcomeRequest(call_id="call-0", agent_id=first.agent_id)
    )
    control = await resolve(stub, "call-x", dry_run=True)  # no history: the least busy one
    assert control.agent_id != first.agent_id
    decision = await resolve(stub, "call-1", caller="+15550101234")
    assert decision.agent_id == first.agent_id


NY_OFFICE = BusinessHours("America/New_York", frozenset(range(5)), time(9), time(17))
"""Mon-Fri 09:00-17:00 in New York."""
SUNDAY_3AM_NY = datetime(2026, 1, 4, 8, 0, tzinfo=UTC)


@contextlib.asynccontextmanager
async def stub_with_hours(
    database_url: str, hours: dict[str, BusinessHours], at: datetime
) -> AsyncIterator[Stub]:
    """A routing server on TechCorp's policy with business hours for some teams, its clock fixed at `at`."""
    policy = load_policy(TECHCORP)
    teams = {
        team_id: dataclasses.replace(team, business_hours=hours[team_id]) if team_id in hours else team
        for team_id, team in policy.teams.items()
    }
    server = RoutingServer(
        routing_settings(database_url),
        policies=PolicySource(dataclasses.replace(policy, teams=teams)),
        clock=lambda: at,
        watch_policy=False,
        run_sweeps=False,
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield routing_pb2_grpc.RoutingServiceStub(channel)
    finally:
        await server.stop(0.5)


async def test_callback_wait_counts_until_the_team_opens_when_it_is_outside_business_hours(
    database_url: str,
) -> None:
    # The call comes on Sunday at 03:00 in New York.
    async with stub_with_hours(database_url, {"technical": NY_OFFICE}, SUNDAY_3AM_NY) as stub:
        await add_agent(stub, "ann")
        taken = await resolve(stub, "call-1")
        queued = await resolve(stub, "call-2")
        queues = {q.team_id: q for q in (await stub.GetQueueStatus(pb.GetQueueStatusRequest())).teams}
    assert taken.kind == pb.DECISION_KIND_TRANSFER_AGENT, "a specialist who is available still takes the call"
    assert queued.kind == pb.DECISION_KIND_CALLBACK
    # 30 hours to Monday 09:00, then the policy's default handle time for position 1 (8 minutes).
    assert queued.estimated_wait.ToTimedelta() == timedelta(hours=30, minutes=8)
    assert queued.caller_message == (
        "All specialists are busy. You'll be added to our priority queue. "
        "The team is closed right now and opens again Monday at 9:00 AM; we will call you back then."
    ), "a closed team's wait is said as its opening time, not as 1808 minutes"
    details = [step.detail for step in queued.trace]
    assert "outside business hours: opens Mon 09:00 America/New_York; the wait counts until then" in details
    assert queues["technical"].closed_until.ToDatetime(UTC) == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    assert not queues["billing"].HasField("closed_until"), "a team without hours is never closed"


async def test_closed_team_line_passes_the_call_to_the_next_matching_rule_when_outside_its_hours(
    database_url: str,
) -> None:
    # No specialists on record: technical is a plain team line, closed on Sunday; general (24/7) is next.
    async with stub_with_hours(database_url, {"technical": NY_OFFICE}, SUNDAY_3AM_NY) as stub:
        closed = await resolve(stub, "call-1")
    async with stub_with_hours(
        database_url, {"technical": NY_OFFICE}, SUNDAY_3AM_NY + timedelta(days=1, hours=7)
    ) as stub:
        open_ = await resolve(stub, "call-2")
    assert (closed.kind, closed.team_id) == (pb.DECISION_KIND_TRANSFER_TEAM, "general")
    assert closed.destination.number == "+15550100500"
    details = [step.detail for step in closed.trace]
    assert "team line closed until Mon 09:00 America/New_York: trying the next rule" in details
    assert (open_.kind, open_.team_id) == (pb.DECISION_KIND_TRANSFER_TEAM, "technical"), (
        "open at 10:00 on Monday"
    )


async def test_fallback_when_every_matching_team_line_is_closed(database_url: str) -> None:
    hours = {"technical": NY_OFFICE, "general": NY_OFFICE}
    async with stub_with_hours(database_url, hours, SUNDAY_3AM_NY) as stub:
        decision = await resolve(stub, "call-1")
    assert decision.kind == pb.DECISION_KIND_FALLBACK
    assert decision.destination.number == "+15550100900"
    assert decision.trace[-1].detail == "no open team matched"
