"""A call that escalates again, and a callback call that reaches its held specialist, through the real stub
on SQLite and PostgreSQL (TechCorp policy: premium technical calls go to the technical team)."""

from __future__ import annotations

from typing import TypeAlias

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from tests.service.grpc_helpers import add_agent, add_customer, agent_of, resolve

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"
PREMIUM = "+1111111111"


async def _escalate_again(stub: Stub, call_id: str, tool_call_id: str = "tool-2") -> pb.Decision:
    return await resolve(stub, call_id, caller=PREMIUM, tool_call_id=tool_call_id)


async def test_second_escalation_of_a_call_goes_to_the_next_specialist_when_the_first_missed(
    stub: Stub,
) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await add_agent(stub, "ann", number="+15550100201")
    await add_agent(stub, "bob", number="+15550100202")
    first = await resolve(stub, "call-a", caller=PREMIUM)
    assert first.kind == pb.DECISION_KIND_TRANSFER_AGENT
    offered = await stub.RecordCallEvent(
        pb.RecordCallEventRequest(call_id="call-a", kind=pb.CALL_EVENT_KIND_FORWARDING)
    )
    assert offered.assignment.team_id == "technical", "the reservation records the team it was made for"

    second = await _escalate_again(stub, "call-a")

    assert second.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert second.agent_id != first.agent_id
    assert list(second.missed_agent_ids) == [first.agent_id]
    assert any(s.stage == "offer" and s.subject == first.agent_id for s in second.trace)
    missed = await agent_of(stub, first.agent_id)
    assert missed.active_assignments == 0, "the specialist who missed the call is freed"
    assert missed.missed_in_row == 1


async def test_second_escalation_offers_a_callback_with_position_and_wait_when_nobody_else_is_free(
    stub: Stub,
) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await add_agent(stub, "ann")
    first = await resolve(stub, "call-a", caller=PREMIUM)
    assert first.agent_id == "ann"

    second = await _escalate_again(stub, "call-a")

    assert second.kind == pb.DECISION_KIND_CALLBACK
    assert list(second.missed_agent_ids) == ["ann"]
    assert second.callback.position == 1
    assert "number 1 in line" in second.caller_message
    assert "minutes" in second.caller_message, "the caller hears when to expect the call"
    assert second.callback.first_message, "the callback call has its own first sentence"


async def test_retried_delivery_of_a_second_escalation_gets_the_identical_answer_and_counts_one_miss(
    stub: Stub,
) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await add_agent(stub, "ann", number="+15550100201")
    await add_agent(stub, "bob", number="+15550100202")
    first = await resolve(stub, "call-a", caller=PREMIUM)
    second = await _escalate_again(stub, "call-a")
    retried = await _escalate_again(stub, "call-a")

    assert retried.replayed
    assert retried.decision_id == second.decision_id
    assert retried.agent_id == second.agent_id
    assert list(retried.missed_agent_ids) == [first.agent_id]
    assert (await agent_of(stub, first.agent_id)).missed_in_row == 1
    assert (await agent_of(stub, second.agent_id)).active_assignments == 1


async def test_a_third_escalation_skips_everyone_who_missed_the_call(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    for n, name in enumerate(("ann", "bob", "cyd")):
        await add_agent(stub, name, number=f"+1555010020{n + 1}")
    first = await resolve(stub, "call-a", caller=PREMIUM)
    second = await _escalate_again(stub, "call-a")
    third = await _escalate_again(stub, "call-a", "tool-3")

    assert third.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert third.agent_id not in {first.agent_id, second.agent_id}
    assert set(third.missed_agent_ids) == {first.agent_id, second.agent_id}


async def test_callback_call_is_answered_with_the_specialist_held_for_its_callback(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await add_agent(stub, "ann")
    busy = await resolve(stub, "call-busy", caller=PREMIUM)
    assert busy.agent_id == "ann"
    queued = await resolve(stub, "call-a", caller=PREMIUM)
    assert queued.kind == pb.DECISION_KIND_CALLBACK
    assert "technical" in queued.callback.first_message
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-busy", reason="test"))
    claim = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-a"))
    assert claim.outcome == pb.CLAIM_OUTCOME_RESERVED and claim.agent.agent_id == "ann"

    reply = await stub.ResolveEscalation(
        pb.ResolveEscalationRequest(
            call_id="callback-call-1",
            tool_call_id="tool-1",
            caller_number=PREMIUM,
            issue_category="technical",
            complexity=pb.COMPLEXITY_ADVANCED,
            callback_of_call_id="call-a",
        )
    )

    decision = reply.decision
    assert decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert decision.agent_id == "ann"
    assert decision.callback_of_call_id == "call-a"
    ann = await agent_of(stub, "ann")
    assert ann.active_assignments == 1, "the held slot moved onto the callback call; none was added"
    # The callback call now owns the assignment: its hand-over is reported under its own id.
    event = await stub.RecordCallEvent(
        pb.RecordCallEventRequest(
            call_id="callback-call-1", kind=pb.CALL_EVENT_KIND_ENDED, ended_reason="assistant-forwarded-call"
        )
    )
    assert event.assignment.agent_id == "ann"
    assert event.assignment.stage == pb.ASSIGNMENT_STAGE_CONNECTED


async def test_callback_call_is_decided_afresh_when_nothing_is_held_for_it(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await add_agent(stub, "ann")
    reply = await stub.ResolveEscalation(
        pb.ResolveEscalationRequest(
            call_id="callback-call-2",
            tool_call_id="tool-1",
            caller_number=PREMIUM,
            issue_category="technical",
            complexity=pb.COMPLEXITY_ADVANCED,
            callback_of_call_id="call-never-queued",
        )
    )
    decision = reply.decision
    assert decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert decision.callback_of_call_id == ""
    assert any(s.stage == "callback" and "no callback is on record" in s.detail for s in decision.trace), (
        list(decision.trace)
    )


async def test_listed_callbacks_carry_the_first_message_rendered_when_queued(stub: Stub) -> None:
    await add_customer(stub, PREMIUM, "premium", "Premium Support")
    await add_agent(stub, "ann")
    await resolve(stub, "call-busy", caller=PREMIUM)
    queued = await resolve(stub, "call-a", caller=PREMIUM)
    listed = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    ticket = next(t for t in listed.callbacks if t.call_id == "call-a")
    assert ticket.first_message == queued.callback.first_message != ""
