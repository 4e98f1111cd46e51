"""One rounding for an estimated wait: the queue step of a decision's trace and the header of `escalade
policy explain` word the same wait the same way (whole minutes, rounded up), through the real service."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeAlias

from escalade_cli.policy import explain_lines
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.domain.queueing import wait_label
from routing_service.grpc import mapping
from tests.service.grpc_helpers import add_agent, resolve

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


def test_wait_label_rounds_up_to_whole_minutes_when_a_wait_has_seconds() -> None:
    assert wait_label(timedelta(minutes=5, seconds=1)) == "6 min"
    assert wait_label(timedelta(minutes=5)) == "5 min"
    assert wait_label(timedelta(seconds=1)) == "1 min"
    assert wait_label(timedelta(0)) == "0 min"


async def test_explain_header_and_trace_give_the_same_minutes_when_the_wait_has_seconds(
    stub: Stub,
) -> None:
    await add_agent(stub, "ann")
    # A conversation of well under a minute (handed over, then completed at once) blends with the policy's
    # 8 min default handle time (routing_service.domain.promises.blend_handle_time) into a wait with
    # seconds, about 6 min 40 s: rounding down would say 6 min where the trace says 7 min.
    assert (await resolve(stub, "call-1")).agent_id == "ann"
    for kind, reason in (
        (pb.CALL_EVENT_KIND_FORWARDING, ""),
        (pb.CALL_EVENT_KIND_ENDED, "assistant-forwarded-call"),
    ):
        await stub.RecordCallEvent(
            pb.RecordCallEventRequest(call_id="call-1", kind=kind, ended_reason=reason)
        )
    await stub.CompleteAssignment(pb.CompleteAssignmentRequest(call_id="call-1", skip_wrap_up=True))
    assert (await resolve(stub, "call-2")).agent_id == "ann"
    queued = await resolve(stub, "call-3")
    assert queued.kind == pb.DECISION_KIND_CALLBACK
    wait = queued.estimated_wait.ToTimedelta()
    assert timedelta(minutes=6) < wait < timedelta(minutes=7)

    stored = (await stub.GetDecision(pb.GetDecisionRequest(call_id="call-3"))).decision
    decision = mapping.decision_from_pb(stored)
    queue_steps = [s.detail for s in decision.trace if "estimated wait" in s.detail]
    assert queue_steps and all(s.endswith("estimated wait 7 min") for s in queue_steps), queue_steps
    assert "estimated wait: 7 min" in explain_lines(decision)
