"""Widening over time through ClaimCallback and GetQueueStatus, on SQLite and PostgreSQL: a waiting callback
is taken by a specialist under the team's complexity ceiling only after step 1, by an overflow team only
after step 2, never by a team excluded for the caller's tier, and not ahead of the overflow team's own
queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.grpc.server import RoutingServer
from routing_service.metrics import ROUTING_METRICS
from tests.service.grpc_helpers import TECHCORP, add_agent, add_customer, resolve, routing_settings

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def _serve(database_url: str, clock: Callable[[], datetime], policy: Path) -> AsyncIterator[Stub]:
    server = RoutingServer(
        routing_settings(database_url, policy=policy), watch_policy=False, run_sweeps=False, clock=clock
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield routing_pb2_grpc.RoutingServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0.5)


@pytest.fixture
async def widening_stub(database_url: str, clock: Clock) -> AsyncIterator[Stub]:
    async for stub in _serve(database_url, clock, TECHCORP):
        yield stub


@pytest.fixture
async def premium_excluded_stub(database_url: str, clock: Clock, tmp_path: Path) -> AsyncIterator[Stub]:
    """TechCorp, with premium callers also kept from the general team."""
    text = TECHCORP.read_text().replace(
        "    enterprise: [general, product]", "    enterprise: [general, product]\n    premium: [general]"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    async for stub in _serve(database_url, clock, policy):
        yield stub


async def _technical_callback_waiting(stub: Stub) -> None:
    """tara (technical, advanced) busy with call-1; call-2 (technical, advanced) queued for a callback."""
    await add_agent(stub, "tara", max_complexity=pb.COMPLEXITY_ADVANCED)
    assert (await resolve(stub, "call-1")).kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert (await resolve(stub, "call-2")).kind == pb.DECISION_KIND_CALLBACK


def _claims(team: str, step: int) -> float:
    value = ROUTING_METRICS.registry.get_sample_value(
        "escalade_routing_callback_claims_total", {"team": team, "step": str(step)}
    )
    return value or 0.0


async def test_a_specialist_under_the_ceiling_takes_the_callback_only_from_step_one(
    widening_stub: Stub, clock: Clock
) -> None:
    stub = widening_stub
    await _technical_callback_waiting(stub)
    await add_agent(stub, "gus", max_complexity=pb.COMPLEXITY_INTERMEDIATE, number="+15550100202")

    clock.advance(4)
    early = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert early.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE
    assert early.widening_step == 0 and early.widening == ""
    assert early.next_widening_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=5)
    assert "no qualified specialist is free" in [s.detail for s in early.trace]
    assert not any(s.subject == "gus" for s in early.trace), "gus is under the ceiling before step 1"

    before = _claims("technical", 1)
    clock.advance(1)
    claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert claimed.outcome == pb.CLAIM_OUTCOME_RESERVED
    assert claimed.agent.agent_id == "gus"
    assert claimed.served_team_id == "technical"
    assert claimed.widening_step == 1
    assert claimed.widening == "step 1: complexity ceiling relaxed by 1 level after 5 min"
    assert claimed.next_widening_at.ToDatetime(tzinfo=UTC) == T0 + timedelta(minutes=10)
    details = [s.detail for s in claimed.trace]
    assert "widened: step 1: complexity ceiling relaxed by 1 level after 5 min (waited 5 min)" in details
    assert "reserved for team technical" in details
    assert _claims("technical", 1) == before + 1

    again = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert again.outcome == pb.CLAIM_OUTCOME_RESERVED and again.agent.agent_id == "gus"
    assert _claims("technical", 1) == before + 1, "a repeated claim is not counted again"


async def test_an_overflow_team_specialist_takes_the_callback_only_after_step_two(
    widening_stub: Stub, clock: Clock
) -> None:
    stub = widening_stub
    await _technical_callback_waiting(stub)
    await add_agent(stub, "eve", teams=("enterprise",), number="+15550100101")

    for minutes, step in ((0, 0), (9.9, 1)):
        clock.now = T0 + timedelta(minutes=minutes)
        waiting = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
        assert (waiting.outcome, waiting.widening_step) == (pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE, step)
        assert not any(s.subject == "eve" for s in waiting.trace), "enterprise is not in scope yet"

    clock.now = T0 + timedelta(minutes=10)
    claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert claimed.outcome == pb.CLAIM_OUTCOME_RESERVED
    assert (claimed.agent.agent_id, claimed.served_team_id) == ("eve", "enterprise")
    assert claimed.widening == "step 2: overflow to team enterprise after 10 min"
    assert not claimed.HasField("next_widening_at")
    details = [s.detail for s in claimed.trace]
    assert "widened: step 2: overflow to team enterprise after 10 min (waited 10 min)" in details
    assert "overflow team enterprise: 1 qualified free specialist(s)" in details
    assert "reserved for team enterprise" in details


async def test_a_team_excluded_for_the_callers_tier_never_takes_the_callback(
    premium_excluded_stub: Stub, clock: Clock
) -> None:
    stub = premium_excluded_stub
    await add_agent(stub, "bea", teams=("billing",), number="+15550100301")
    await add_agent(stub, "gil", teams=("general",), number="+15550100501")
    await add_customer(stub, "+14155550100", "premium")
    assert (await resolve(stub, "call-1", category="billing")).agent_id == "bea"
    queued = await resolve(stub, "call-2", category="billing", caller="+14155550100")
    assert queued.kind == pb.DECISION_KIND_CALLBACK

    clock.advance(60)
    claim = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert claim.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE
    assert claim.widening_step == 1
    skipped = [(s.subject, s.detail) for s in claim.trace if s.outcome == pb.TRACE_OUTCOME_SKIPPED]
    assert skipped == [("general", "team general is excluded for tier premium")]
    assert not any(s.subject == "gil" for s in claim.trace)


async def test_an_overflow_team_serves_its_own_waiting_callbacks_first(
    widening_stub: Stub, clock: Clock
) -> None:
    stub = widening_stub
    await add_agent(stub, "bea", teams=("billing",), number="+15550100301")
    await add_agent(stub, "gil", teams=("general",), number="+15550100501")
    basic = pb.COMPLEXITY_BASIC
    assert (await resolve(stub, "general-1", category="general", complexity=basic)).agent_id == "gil"
    own = await resolve(stub, "general-2", category="general", complexity=basic)
    assert own.kind == pb.DECISION_KIND_CALLBACK
    clock.advance(1)  # the same priority, a minute later: general-2 comes first in service order
    assert (await resolve(stub, "call-1", category="billing", complexity=basic)).agent_id == "bea"
    queued = await resolve(stub, "call-2", category="billing", complexity=basic)
    assert queued.kind == pb.DECISION_KIND_CALLBACK
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="general-1"))

    clock.advance(15)
    claim = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert claim.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE
    assert ("general", "1 of team general's own callbacks come first") in [
        (s.subject, s.detail) for s in claim.trace
    ]
    mine = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="general-2"))
    assert (mine.outcome, mine.agent.agent_id) == (pb.CLAIM_OUTCOME_RESERVED, "gil")


async def test_queue_status_counts_the_waiting_callbacks_by_step(widening_stub: Stub, clock: Clock) -> None:
    stub = widening_stub
    await _technical_callback_waiting(stub)
    clock.advance(6)
    assert (await resolve(stub, "call-3")).kind == pb.DECISION_KIND_CALLBACK
    clock.advance(5)  # call-2 has waited 11 minutes (step 2), call-3 5 minutes (step 1)
    assert (await resolve(stub, "call-4")).kind == pb.DECISION_KIND_CALLBACK

    status = await stub.GetQueueStatus(pb.GetQueueStatusRequest(team_id="technical"))
    steps = [(c.step, c.label, c.waiting_callbacks) for c in status.teams[0].widening_steps]
    assert steps == [
        (0, "not widened", 1),
        (1, "step 1: complexity ceiling relaxed by 1 level after 5 min", 1),
        (2, "step 2: overflow to team enterprise after 10 min", 1),
    ]
    product = await stub.GetQueueStatus(pb.GetQueueStatusRequest(team_id="product"))
    assert list(product.teams[0].widening_steps) == []


async def test_a_freed_overflow_specialist_wakes_the_queue_that_widened_to_her_team(
    database_url: str, clock: Clock
) -> None:
    """eve (enterprise) frees up: a watcher of the technical queue hears of it once technical's head
    callback has widened to enterprise (step 2, 10 min), not before; its claim then takes her."""
    server = RoutingServer(
        routing_settings(database_url, policy=TECHCORP), watch_policy=False, run_sweeps=False, clock=clock
    )
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub: Stub = routing_pb2_grpc.RoutingServiceStub(channel)
        await _technical_callback_waiting(stub)
        busy, free = pb.AGENT_STATUS_BUSY, pb.AGENT_STATUS_AVAILABLE
        await add_agent(stub, "eve", teams=("enterprise",), number="+15550100101", status=busy)
        watch = stub.WatchAvailability(pb.WatchAvailabilityRequest(team_ids=["technical"]))
        for _ in range(200):
            if server.events.subscriber_count == 1:
                break
            await asyncio.sleep(0.02)

        clock.advance(9)  # step 1: the complexity ceiling, no overflow yet
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="eve", status=free))
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="eve", status=busy))
        await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
        first = await asyncio.wait_for(watch.read(), timeout=10)
        assert isinstance(first, pb.WatchAvailabilityResponse)
        assert (first.team_id, first.agent_id) == ("technical", "tara"), "eve's slot woke nobody at step 1"
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="tara", status=busy))

        clock.advance(1)  # step 2: overflow to enterprise
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="eve", status=free))
        woken = await asyncio.wait_for(watch.read(), timeout=10)
        assert isinstance(woken, pb.WatchAvailabilityResponse)
        assert (woken.team_id, woken.agent_id, woken.free_slots) == ("technical", "eve", 1)
        claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
        assert (claimed.outcome, claimed.agent.agent_id) == (pb.CLAIM_OUTCOME_RESERVED, "eve")
        assert claimed.served_team_id == "enterprise"
        watch.cancel()
    finally:
        await channel.close()
        await server.stop(0.5)
