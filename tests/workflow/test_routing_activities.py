"""The routing activities against a real grpc.aio server (a stand-in servicer on 127.0.0.1:0): proto to
workflow dataclasses, and gRPC status codes to retryable or permanent activity failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from tests.workflow.routing_standin import RoutingStandin, serve, stamp, ticket
from workflows.activities import RoutingActivities
from workflows.inputs import CallbackPhase
from workflows.payloads import ClaimOutcome, ClaimParams, DecisionParams, FinishParams, OutcomeParams


@pytest.fixture
async def standin() -> AsyncIterator[tuple[RoutingStandin, RoutingActivities]]:
    fake = RoutingStandin(tickets=[ticket("call-1", "billing", 1)])  # type: ignore[abstract]  # only the RPCs used; the rest answer UNIMPLEMENTED
    server, address = await serve(fake)
    channel = grpc.aio.insecure_channel(address)
    try:
        yield fake, RoutingActivities(routing_pb2_grpc.RoutingServiceStub(channel), rpc_timeout=5)
    finally:
        await channel.close()
        await server.stop(None)


async def test_claim_maps_reserved_specialist_when_routing_reserves(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    fake.claim = pb.ClaimCallbackResponse(
        outcome=pb.CLAIM_OUTCOME_RESERVED,
        callback=pb.CallbackTicket(
            call_id="call-1",
            state=pb.CALLBACK_STATE_RESERVED,
            agent_id="agent-ana",
            reserved_until=stamp(1_900_000_000),
        ),
        agent=pb.Agent(agent_id="agent-ana", display_name="Ana", number="+15550100111"),
    )
    result = await ActivityEnvironment().run(acts.claim_callback, ClaimParams("call-1", hold_seconds=300))

    assert (result.outcome, result.state, result.agent_name, result.agent_number) == (
        ClaimOutcome.RESERVED,
        "reserved",
        "Ana",
        "+15550100111",
    )
    assert result.reserved_until is not None and int(result.reserved_until.timestamp()) == 1_900_000_000
    assert fake.requests[-1].hold_for.seconds == 300


async def test_claim_reports_position_when_not_at_head(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    fake.claim = pb.ClaimCallbackResponse(
        outcome=pb.CLAIM_OUTCOME_NOT_AT_HEAD,
        callback=pb.CallbackTicket(state=pb.CALLBACK_STATE_WAITING, position=3),
    )
    result = await ActivityEnvironment().run(acts.claim_callback, ClaimParams("call-1"))
    assert (result.outcome, result.position, result.agent_id) == (ClaimOutcome.NOT_AT_HEAD, 3, "")
    assert not fake.requests[-1].HasField("hold_for")


async def test_claim_fails_permanently_when_routing_has_no_callback(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    _, acts = standin
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(acts.claim_callback, ClaimParams("call-unknown"))
    assert (failed.value.type, failed.value.non_retryable) == ("NOT_FOUND", True)


async def test_finish_is_idempotent_when_callback_already_ended(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    done = await ActivityEnvironment().run(
        acts.finish_callback, FinishParams("call-1", CallbackPhase.UNREACHABLE, "3 tries")
    )
    assert (done.state, done.already_finished) == ("unreachable", False)
    assert fake.requests[-1].state == pb.CALLBACK_STATE_UNREACHABLE
    fake.finish_error = grpc.StatusCode.FAILED_PRECONDITION
    again = await ActivityEnvironment().run(
        acts.finish_callback, FinishParams("call-1", CallbackPhase.CANCELLED)
    )
    assert again.already_finished


async def test_get_decision_maps_labels_when_decision_exists(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    fake.decisions["call-1"] = pb.Decision(
        decision_id="dec-1",
        call_id="call-1",
        kind=pb.DECISION_KIND_CALLBACK,
        team_id="technical",
        tier="enterprise",
        issue_category="technical",
        effective_complexity=pb.COMPLEXITY_CRITICAL,
        callback=pb.CallbackTicket(
            call_id="call-1", state=pb.CALLBACK_STATE_WAITING, enqueued_at=stamp(1_800_000_000)
        ),
    )
    fake.decisions["call-1"].estimated_wait.FromSeconds(420)
    view = await ActivityEnvironment().run(acts.get_decision, DecisionParams("call-1"))

    assert view is not None
    assert (view.kind, view.complexity, view.team_id, view.estimated_wait_seconds) == (
        "callback",
        "critical",
        "technical",
        420.0,
    )
    assert (
        view.callback is not None and view.callback.state == "waiting" and view.callback.finished_at is None
    )


async def test_get_decision_carries_the_explanation_with_numbers_masked(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    fake.decisions["call-2"] = pb.Decision(
        decision_id="dec-2",
        call_id="call-2",
        kind=pb.DECISION_KIND_TRANSFER_TEAM,
        team_id="billing",
        rule_id="billing-default",
        reason="caller +15550100142: billing -> billing",
        caller_number="+15550100142",
        trace=[
            pb.TraceStep(stage="customer", subject="+15550100142", outcome=pb.TRACE_OUTCOME_INFO),
            pb.TraceStep(
                stage="rule", subject="billing-default", outcome=pb.TRACE_OUTCOME_MATCHED, detail="category"
            ),
        ],
    )
    view = await ActivityEnvironment().run(acts.get_decision, DecisionParams("call-2"))

    assert view is not None
    assert (view.rule_id, view.reason, view.masked_caller) == (
        "billing-default",
        "caller +1******0142: billing -> billing",
        "+1******0142",
    )
    assert view.trace == ["customer +1******0142: info", "rule billing-default: matched (category)"]


async def test_get_decision_is_none_when_routing_has_none(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    _, acts = standin
    assert await ActivityEnvironment().run(acts.get_decision, DecisionParams("call-x")) is None


async def test_record_outcome_passes_specialist_when_reached(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    result = await ActivityEnvironment().run(
        acts.record_escalation_outcome, OutcomeParams("call-1", "agent-ana")
    )
    assert (result.counted, result.previous_escalations) == (True, 3)
    assert fake.requests[-1].agent_id == "agent-ana"


async def test_failure_is_retryable_when_routing_is_down() -> None:
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    try:
        acts = RoutingActivities(routing_pb2_grpc.RoutingServiceStub(channel), rpc_timeout=2)
        with pytest.raises(ApplicationError) as failed:
            await ActivityEnvironment().run(acts.claim_callback, ClaimParams("call-1"))
    finally:
        await channel.close()
    assert failed.value.type == "UNAVAILABLE" and not failed.value.non_retryable


async def test_get_decision_reports_current_callback_state_when_snapshot_is_stale(
    standin: tuple[RoutingStandin, RoutingActivities],
) -> None:
    fake, acts = standin
    fake.tickets.append(
        pb.CallbackTicket(
            call_id="call-2",
            team_id="billing",
            state=pb.CALLBACK_STATE_UNREACHABLE,
            finished_at=stamp(1_800_000_900),
        )
    )
    fake.decisions["call-2"] = pb.Decision(
        decision_id="dec-2",
        call_id="call-2",
        kind=pb.DECISION_KIND_CALLBACK,
        team_id="billing",
        callback=pb.CallbackTicket(call_id="call-2", team_id="billing", state=pb.CALLBACK_STATE_WAITING),
    )
    view = await ActivityEnvironment().run(acts.get_decision, DecisionParams("call-2"))

    assert view is not None and view.callback is not None
    assert view.callback.state == "unreachable"
    assert (
        view.callback.finished_at is not None and int(view.callback.finished_at.timestamp()) == 1_800_000_900
    )
