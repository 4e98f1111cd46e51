"""Callback promises through the real routing service on SQLite and PostgreSQL: the promise a queued caller
hears is stored and shown on the ticket, an at-risk callback moves ahead of one that is not (the claim's trace
says so), a breach is recorded and counted once, and GetQueueStatus reports kept rates and accuracy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.grpc.server import RoutingServer
from routing_service.metrics import ROUTING_METRICS
from tests.service.grpc_helpers import add_agent, resolve, routing_settings

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"
T0 = datetime.now(UTC).replace(microsecond=0)
MIN = timedelta(minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def stub(database_url: str, clock: Clock) -> AsyncIterator[Stub]:
    server = RoutingServer(routing_settings(database_url), watch_policy=False, run_sweeps=False, clock=clock)
    port = await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield routing_pb2_grpc.RoutingServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(0.5)


def _when(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


async def _ticket(stub: Stub, call_id: str) -> pb.CallbackTicket:
    listed = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    return next(t for t in listed.callbacks if t.call_id == call_id)


def _breaches() -> Callable[[], float]:
    counter = ROUTING_METRICS.promises_breached.labels(team="technical")
    start = counter._value.get()
    return lambda: counter._value.get() - start


async def test_a_queued_caller_is_promised_the_estimated_wait_and_it_is_stored(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await resolve(stub, "call-1")
    first = await resolve(stub, "cb-1")
    second = await resolve(stub, "cb-2")
    third = await resolve(stub, "cb-3")
    for decision in (first, second, third):
        ticket = decision.callback
        assert ticket.promise_state == pb.PROMISE_STATE_ON_TRACK
        assert _when(ticket.promised_by) == _when(decision.decided_at) + decision.estimated_wait.ToTimedelta()
        assert _when(ticket.promise_from) == _when(decision.decided_at)
        assert any(s.stage == "promise" and "promised to start by" in s.detail for s in decision.trace)
    # Two callbacks ahead never make the wait zero: at least 2 minutes each (queue.promises).
    assert third.estimated_wait.ToTimedelta() >= 2 * (2 * MIN)
    stored = await _ticket(stub, "cb-3")
    assert stored.promised_by == third.callback.promised_by
    assert stored.promise_state == pb.PROMISE_STATE_ON_TRACK


async def test_an_at_risk_callback_moves_ahead_and_a_breach_is_counted_once(stub: Stub, clock: Clock) -> None:
    await add_agent(stub, "ann")
    await resolve(stub, "call-1")  # ann is busy
    for call in ("cb-1", "cb-2", "cb-3"):
        await resolve(stub, call)
    for call in ("cb-1", "cb-2"):
        await stub.FinishCallback(pb.FinishCallbackRequest(call_id=call, state=pb.CALLBACK_STATE_CANCELLED))
    clock.now = T0 + timedelta(seconds=1)
    # Queued behind cb-3 but at position 2: a shorter promise, so it turns at risk first.
    late = (await resolve(stub, "cb-4")).callback
    early = await _ticket(stub, "cb-3")
    assert late.position == 2 and _when(late.promised_by) < _when(early.promised_by)

    clock.now = _when(late.promise_at_risk_at) + timedelta(seconds=1)
    assert clock.now < _when(early.promise_at_risk_at)
    head = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="cb-3"))
    assert head.outcome == pb.CLAIM_OUTCOME_NOT_AT_HEAD
    assert [s.detail for s in head.trace] == ["cb-4's promise is at risk: it goes first"]
    busy = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="cb-4"))
    assert busy.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE
    assert busy.callback.promise_state == pb.PROMISE_STATE_AT_RISK
    assert any("moved ahead of callbacks not at risk" in s.detail for s in busy.trace)

    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="cb-4"))
    assert claimed.outcome == pb.CLAIM_OUTCOME_RESERVED
    assert claimed.callback.promise_state == pb.PROMISE_STATE_KEPT
    assert _when(claimed.callback.started_at) == clock.now

    breaches = _breaches()
    clock.now = _when(early.promised_by) + timedelta(seconds=1)
    broken = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="cb-3"))
    assert broken.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE
    assert broken.callback.promise_state == pb.PROMISE_STATE_BREACHED
    assert any(s.detail.startswith("promise broken") for s in broken.trace)
    again = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="cb-3"))
    assert again.callback.promise_state == pb.PROMISE_STATE_BREACHED
    assert not any(s.detail.startswith("promise broken") for s in again.trace)
    assert breaches() == 1

    status = (await stub.GetQueueStatus(pb.GetQueueStatusRequest(team_id="technical"))).teams[0]
    assert status.HasField("promises_kept_last_day") and status.promises_kept_last_day == 0.5
    assert status.promise_error_samples == 1
    kept_early_by = _when(late.promised_by) - _when(claimed.callback.started_at)
    assert status.promise_error_median.ToTimedelta() == kept_early_by
    assert status.promise_error_p90.ToTimedelta() == kept_early_by


async def test_queue_status_leaves_the_kept_rate_unset_without_promises(stub: Stub) -> None:
    status = (await stub.GetQueueStatus(pb.GetQueueStatusRequest(team_id="technical"))).teams[0]
    assert not status.HasField("promises_kept_last_hour")
    assert not status.HasField("promises_kept_last_day")
    assert not status.HasField("promise_error_median") and status.promise_error_samples == 0
