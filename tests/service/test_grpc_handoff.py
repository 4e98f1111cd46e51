"""The handoff packet through the real stub, on SQLite and PostgreSQL: built with each decision, stored with
it, and read back by an agent desktop with `GetHandoffPacket` (by call id or decision id), with the roles
that may ask."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypeAlias

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from escalade_platform.routing_channel import routing_channel
from routing_service.domain.models import Complexity, Decision, DecisionKind, Destination, TransferMode
from routing_service.store import Store
from tests.service.grpc_helpers import add_customer, field_violations
from tests.service.security_support import TOKENS, client, serving

Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"
CALLER = "+15551110001"


def _request(call_id: str, tool_call_id: str = "tool-1") -> pb.ResolveEscalationRequest:
    return pb.ResolveEscalationRequest(
        call_id=call_id,
        tool_call_id=tool_call_id,
        caller_number=CALLER,
        issue_category="billing",
        complexity=pb.COMPLEXITY_BASIC,
        customer_context="Account 55012 on the family plan",
        escalation_reason="charged twice for order TC-000123",
        transcript="User: my card was charged twice. Assistant: I see error code R-402 on the refund.",
        assistant_summary="Double charge on the last invoice; the refund tool fails.",
        steps_tried=["checked the invoice", "tried the refund tool"],
        entities=[pb.HandoffEntity(kind="order", value="TC-000123")],
    )


async def test_each_decision_carries_its_packet_and_an_agent_desktop_reads_it_back(stub: Stub) -> None:
    await add_customer(stub, CALLER, "premium", "Premium Co")
    request = _request("call-h1")
    request.with_handoff_packet = True
    decision = (await stub.ResolveEscalation(request)).decision
    packet = decision.handoff
    assert packet.decision_id == decision.decision_id
    assert packet.summary == "Double charge on the last invoice; the refund tool fails."
    assert packet.escalation_reason == "charged twice for order TC-000123"
    assert (packet.issue_category, packet.category_source) == ("billing", "assistant")
    assert list(packet.steps_tried) == ["checked the invoice", "tried the refund tool"]
    assert [(e.kind, e.value, e.source) for e in packet.entities] == [
        ("order", "TC-000123", "assistant"),
        ("account", "55012", "customer_context"),
        ("error_code", "R-402", "transcript"),
    ]
    assert [s.source for s in packet.complexity_sources] == ["claim"]
    assert (packet.tier, packet.account_name, packet.caller_number) == ("premium", "Premium Co", CALLER)
    assert packet.text.startswith("Summary: Double charge")

    by_call = await stub.GetHandoffPacket(pb.GetHandoffPacketRequest(call_id="call-h1"))
    by_id = await stub.GetHandoffPacket(pb.GetHandoffPacketRequest(decision_id=decision.decision_id))
    assert by_call.packet == by_id.packet == packet
    assert (by_call.team_id, by_call.kind) == (decision.team_id, decision.kind)
    # the stored decision keeps it too
    stored = (await stub.GetDecision(pb.GetDecisionRequest(call_id="call-h1"))).decision
    assert stored.handoff == packet


async def test_replies_carry_the_packet_only_when_asked_and_get_decision_always(stub: Stub) -> None:
    """ResolveEscalation and ListDecisions leave the packet out unless their request asks for it (the edge
    never reads it there); the stored decision has it whatever the reply carried."""
    plain = (await stub.ResolveEscalation(_request("call-h9"))).decision
    assert plain.decision_id and not plain.HasField("handoff")
    stored = (await stub.GetDecision(pb.GetDecisionRequest(call_id="call-h9"))).decision
    assert stored.HasField("handoff") and stored.handoff.decision_id == plain.decision_id

    listed = (await stub.ListDecisions(pb.ListDecisionsRequest())).decisions
    assert listed and not any(d.HasField("handoff") for d in listed)
    asked = (await stub.ListDecisions(pb.ListDecisionsRequest(with_handoff_packets=True))).decisions
    assert [d.handoff for d in asked if d.decision_id == plain.decision_id] == [stored.handoff]


async def test_a_calls_packet_is_that_of_its_latest_decision(stub: Stub) -> None:
    first = (await stub.ResolveEscalation(_request("call-h2", "tool-1"))).decision
    again = _request("call-h2", "tool-2")
    again.assistant_summary = "Second try: the caller still has the double charge."
    second = (await stub.ResolveEscalation(again)).decision
    reply = await stub.GetHandoffPacket(pb.GetHandoffPacketRequest(call_id="call-h2"))
    assert reply.packet.decision_id == second.decision_id != first.decision_id
    assert reply.packet.summary.startswith("Second try")
    older = await stub.GetHandoffPacket(pb.GetHandoffPacketRequest(decision_id=first.decision_id))
    assert older.packet.summary.startswith("Double charge")


async def test_unknown_calls_and_decisions_are_not_found_and_the_request_needs_exactly_one_id(
    stub: Stub,
) -> None:
    for request in (
        pb.GetHandoffPacketRequest(call_id="nope"),
        pb.GetHandoffPacketRequest(decision_id="0ff"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetHandoffPacket(request)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    for request in (pb.GetHandoffPacketRequest(), pb.GetHandoffPacketRequest(call_id="a", decision_id="b")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetHandoffPacket(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert {name for name, _ in field_violations(caught.value)} == {"call_id", "decision_id"}


async def test_packet_fields_beyond_their_limits_are_invalid_with_field_details(stub: Stub) -> None:
    request = _request("call-h3")
    request.steps_tried.extend(["x"] * 30)
    request.entities.append(pb.HandoffEntity(kind="", value="1"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ResolveEscalation(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = {name for name, _ in field_violations(caught.value)}
    assert {"steps_tried", "entities[1].kind"} <= fields


async def test_a_decision_stored_before_packets_existed_is_read_without_one(store: Store) -> None:
    old = Decision(
        decision_id="0old",
        call_id="call-old",
        tool_call_id="t",
        kind=DecisionKind.TRANSFER_TEAM,
        destination=Destination(number="+15550100200"),
        caller_message="",
        transfer_mode=TransferMode.BLIND_TRANSFER,
        effective_complexity=Complexity.BASIC,
        claimed_complexity=None,
        tier="standard",
        issue_category="general",
        decided_at=datetime(2026, 1, 1, tzinfo=UTC),
        trace=(),
        reason="r",
    )
    async with store.uow() as u:
        await u.decisions.add(old)
        await u.commit()
    async with store.uow() as u:
        found = await u.decisions.by_id("0old")
        assert await u.decisions.by_id("missing") is None
    assert found is not None and found.handoff is None and found.call_id == "call-old"


@pytest.mark.parametrize(("role", "allowed"), [("agent", True), ("reader", True), ("worker", False)])
async def test_the_agent_desktop_role_may_read_packets(sqlite_url: str, role: str, allowed: bool) -> None:
    async with serving(sqlite_url, routing_tokens=dict(TOKENS)) as server:
        async with routing_channel(client(server, routing_token=TOKENS["edge"])) as channel:
            edge = routing_pb2_grpc.RoutingServiceStub(channel)
            decision = (await edge.ResolveEscalation(_request("call-r1"))).decision
        async with routing_channel(client(server, routing_token=TOKENS[role])) as channel:
            desk = routing_pb2_grpc.RoutingServiceStub(channel)
            request = pb.GetHandoffPacketRequest(call_id="call-r1")
            if allowed:
                reply = await desk.GetHandoffPacket(request)
                assert reply.packet.decision_id == decision.decision_id
            else:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await desk.GetHandoffPacket(request)
                assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
