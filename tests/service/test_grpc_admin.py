"""Customers, agents, outcomes, input validation and NOT_FOUND over gRPC, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import TypeAlias

import grpc
import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from tests.service.grpc_helpers import add_agent, add_customer, field_violations, resolve

# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


async def test_customer_upsert_normalises_the_number_when_it_is_formatted(stub: Stub) -> None:
    created = await stub.UpsertCustomer(
        pb.UpsertCustomerRequest(customer=pb.Customer(number="+1 (555) 010-1234", tier="Premium"))
    )
    assert (
        created.created and created.customer.number == "+15550101234" and created.customer.tier == "premium"
    )
    again = await stub.UpsertCustomer(
        pb.UpsertCustomerRequest(
            customer=pb.Customer(number="+15550101234", tier="enterprise", account_name="X")
        )
    )
    assert not again.created
    got = await stub.GetCustomer(pb.GetCustomerRequest(number="+1 555 010 1234"))
    assert got.customer.tier == "enterprise" and got.customer.account_name == "X"


async def test_record_outcome_counts_once_and_sets_last_agent_when_repeated(stub: Stub) -> None:
    await add_customer(stub, "+15550101234", "premium")
    await resolve(stub, "call-1", caller="+15550101234", category="billing", complexity=pb.COMPLEXITY_BASIC)
    first = await stub.RecordEscalationOutcome(
        pb.RecordEscalationOutcomeRequest(call_id="call-1", agent_id="ann")
    )
    second = await stub.RecordEscalationOutcome(
        pb.RecordEscalationOutcomeRequest(call_id="call-1", agent_id="ann")
    )
    assert first.counted and not second.counted
    assert second.customer.previous_escalations == 1
    assert second.customer.last_agent_id == "ann"


async def test_record_outcome_is_not_found_when_the_call_has_no_decision(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RecordEscalationOutcome(pb.RecordEscalationOutcomeRequest(call_id="ghost"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_agents_are_listed_by_team_and_status_changes_when_set(stub: Stub) -> None:
    await add_agent(stub, "ann", teams=("technical", "enterprise"))
    await add_agent(stub, "bob", teams=("billing",), number="+15550100301")
    technical = await stub.ListAgents(pb.ListAgentsRequest(team_id="technical"))
    assert [a.agent_id for a in technical.agents] == ["ann"]
    changed = await stub.SetAgentStatus(
        pb.SetAgentStatusRequest(agent_id="ann", status=pb.AGENT_STATUS_OFFLINE)
    )
    assert changed.agent.status == pb.AGENT_STATUS_OFFLINE
    offline = await stub.ListAgents(pb.ListAgentsRequest(status=pb.AGENT_STATUS_OFFLINE))
    assert [a.agent_id for a in offline.agents] == ["ann"]
    decision = await resolve(stub, "call-1")
    assert decision.kind == pb.DECISION_KIND_CALLBACK, "an offline specialist is never reserved"


async def test_upsert_keeps_status_when_none_is_given(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="ann", status=pb.AGENT_STATUS_BUSY))
    reply = await stub.UpsertAgent(
        pb.UpsertAgentRequest(
            agent=pb.Agent(
                agent_id="ann",
                display_name="Ann B",
                number="+15550100201",
                team_ids=["technical"],
                capacity=2,
            )
        )
    )
    assert not reply.created
    assert reply.agent.status == pb.AGENT_STATUS_BUSY and reply.agent.capacity == 2


async def test_list_agents_pages_when_there_are_more_than_a_page(stub: Stub) -> None:
    for i in range(5):
        await add_agent(stub, f"a{i}", number=f"+1555010021{i}")
    page = await stub.ListAgents(pb.ListAgentsRequest(page_size=2))
    seen = [a.agent_id for a in page.agents]
    while page.next_page_token:
        page = await stub.ListAgents(pb.ListAgentsRequest(page_size=2, page_token=page.next_page_token))
        seen += [a.agent_id for a in page.agents]
    assert seen == [f"a{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("agent", "fields"),
    [
        (pb.Agent(agent_id="x", number="555-1234", team_ids=["technical"], capacity=1), ["agent.number"]),
        (
            pb.Agent(agent_id="x", number="+15550100201", team_ids=["technical"], capacity=0),
            ["agent.capacity"],
        ),
        (
            pb.Agent(
                agent_id="x", team_ids=["technical"], capacity=1, max_complexity=pb.Complexity.ValueType(9)
            ),
            ["agent.number", "agent.max_complexity"],
        ),
        (pb.Agent(agent_id="", number="+15550100201", capacity=1), ["agent.agent_id", "agent.team_ids"]),
    ],
    ids=["bad-number", "capacity-0", "no-contact-bad-enum", "no-id-no-team"],
)
async def test_upsert_agent_is_invalid_argument_with_field_violations_when(
    stub: Stub, agent: pb.Agent, fields: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpsertAgent(pb.UpsertAgentRequest(agent=agent))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == fields


async def test_resolve_is_invalid_argument_when_call_id_is_empty_or_enum_unknown(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ResolveEscalation(pb.ResolveEscalationRequest(call_id="", issue_category="billing"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["call_id"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ResolveEscalation(
            pb.ResolveEscalationRequest(call_id="c", complexity=pb.Complexity.ValueType(42))
        )
    assert [f for f, _ in field_violations(info.value)] == ["complexity"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ResolveEscalation(pb.ResolveEscalationRequest(call_id="c", transcript="x" * 70_000))
    assert [f for f, _ in field_violations(info.value)] == ["transcript"]


async def test_customer_and_status_calls_are_invalid_or_not_found_when_inputs_are_bad(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpsertCustomer(pb.UpsertCustomerRequest(customer=pb.Customer(number="call me", tier="")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["customer.number", "customer.tier"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetCustomer(pb.GetCustomerRequest(number="+15550109999"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="ghost", status=pb.AGENT_STATUS_BUSY))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id="ghost"))
    assert [f for f, _ in field_violations(info.value)] == ["status"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetDecision(pb.GetDecisionRequest(call_id="ghost"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_nul_characters_are_invalid_argument_when_sent_in_admin_fields(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpsertCustomer(
            pb.UpsertCustomerRequest(
                customer=pb.Customer(number="+15550101234", tier="gold", account_name="a\x00b")
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["customer.account_name"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpsertAgent(
            pb.UpsertAgentRequest(
                agent=pb.Agent(agent_id="a", sip_uri="sip:a@b", team_ids=["ok", "x\x00"], capacity=1)
            )
        )
    assert [f for f, _ in field_violations(info.value)] == ["agent.team_ids"]


async def test_conversation_text_with_nul_is_still_routed_when_resolving(stub: Stub) -> None:
    reply = await stub.ResolveEscalation(
        pb.ResolveEscalationRequest(call_id="nul-call", issue_category="billing", transcript="hello\x00world")
    )
    assert reply.decision.team_id == "billing"


async def test_oversized_ids_are_invalid_argument_when_beyond_the_store_limits(stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ResolveEscalation(pb.ResolveEscalationRequest(call_id="c" * 200))
    assert [f for f, _ in field_violations(info.value)] == ["call_id"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpsertAgent(
            pb.UpsertAgentRequest(
                agent=pb.Agent(agent_id="a", sip_uri="sip:a@b", team_ids=["t" * 300], capacity=1)
            )
        )
    assert [f for f, _ in field_violations(info.value)] == ["agent.team_ids"]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListAgents(pb.ListAgentsRequest(status=pb.AgentStatus.ValueType(42)))
    assert [f for f, _ in field_violations(info.value)] == ["status"]
