"""Retry storm: Vapi delivers the same signed webhook 20 times at once (same bytes, same signature). Routing
decides once, reserves once and the edge records one workflow start; all 20 answers name the same
destination. On SQLite and PostgreSQL, through the real edge and the real routing service."""

from __future__ import annotations

import asyncio

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import dumps, running_edge, signed_headers
from tests.faults.fault_support import (
    PREMIUM_TECHNICAL,
    Stack,
    active_assignments,
    decisions,
    destination_of,
    request_for,
)
from webhook_edge.translate import callback_result

pytestmark = pytest.mark.timeout(60)

STORM = 20


async def storm(stack: Stack, body: bytes) -> list[str]:
    """The same signed delivery STORM times concurrently; the destinations answered, all 200."""
    headers = signed_headers(body)
    async with asyncio.timeout(30):
        replies = await asyncio.gather(*(stack.edge.post(body, headers=headers) for _ in range(STORM)))
    assert len({r.text for r in replies}) == 1, "every duplicate gets the same answer"
    return [destination_of(r) for r in replies]


async def test_one_decision_and_one_reservation_when_the_same_webhook_arrives_20_times(stack: Stack) -> None:
    targets = await storm(stack, dumps(request_for("storm-transfer")))

    [decision] = await decisions(stack.stub)
    assert decision.call_id == "storm-transfer"
    assert decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
    assert set(targets) == {decision.destination.number}
    assert await active_assignments(stack.stub) == {decision.agent_id: 1}
    assert await stack.count_outbox("callback") == 0


async def test_one_callback_and_one_outbox_row_when_the_same_webhook_arrives_20_times_to_a_busy_team(
    stack: Stack,
) -> None:
    for agent_id in ("tech-1", "tech-2"):
        await stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )

    targets = await storm(stack, dumps(request_for("storm-callback", PREMIUM_TECHNICAL)))

    [decision] = await decisions(stack.stub)
    assert decision.kind == pb.DECISION_KIND_CALLBACK
    assert set(targets) == {decision.destination.number}
    callbacks = await stack.stub.ListCallbacks(pb.ListCallbacksRequest())
    assert [c.call_id for c in callbacks.callbacks] == ["storm-callback"]
    assert await stack.count_outbox("callback") == 1
    assert await active_assignments(stack.stub) == {}


async def test_one_callback_and_one_outbox_row_when_two_edge_replicas_share_the_storm(stack: Stack) -> None:
    """Two edge processes behind a load balancer (two apps on the same routing service and database) each
    get half of the duplicates."""
    for agent_id in ("tech-1", "tech-2"):
        await stack.stub.SetAgentStatus(
            pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
        )
    body = dumps(request_for("storm-replicas", PREMIUM_TECHNICAL))
    headers = signed_headers(body)
    async with running_edge(stack.edge.settings) as replica, asyncio.timeout(30):
        replies = await asyncio.gather(
            *(edge.post(body, headers=headers) for edge in (stack.edge, replica) for _ in range(STORM // 2))
        )
    assert len({r.text for r in replies}) == 1
    destination_of(replies[0])
    [decision] = await decisions(stack.stub)
    assert decision.kind == pb.DECISION_KIND_CALLBACK
    assert await stack.count_outbox("callback") == 1


async def test_one_decision_when_the_same_tool_calls_message_arrives_20_times(stack: Stack) -> None:
    doc = request_for("storm-tool-calls", "tool-calls.escalate-to-support.json")
    del doc["message"]["call"]["monitor"]  # no Live Call Control: the answer is the tool result alone
    body = dumps(doc)
    headers = signed_headers(body)
    async with asyncio.timeout(30):
        replies = await asyncio.gather(*(stack.edge.post(body, headers=headers) for _ in range(STORM)))
    assert {r.status_code for r in replies} == {200}
    assert len({r.text for r in replies}) == 1
    [decision] = await decisions(stack.stub)
    [result] = replies[0].json()["results"]
    assert result["toolCallId"] == decision.tool_call_id
    if decision.kind == pb.DECISION_KIND_CALLBACK:  # queued: words only, the callback promise
        assert result["result"] == callback_result(decision)
    else:  # no control URL: the tool result never promises a transfer that cannot happen
        assert result["result"].startswith("The transfer could not be started")
    assert sum((await active_assignments(stack.stub)).values()) == (
        1 if decision.kind == pb.DECISION_KIND_TRANSFER_AGENT else 0
    )
