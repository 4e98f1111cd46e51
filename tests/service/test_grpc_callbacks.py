"""The callback queue over gRPC: ClaimCallback (head only, idempotent), FinishCallback, ListCallbacks,
GetQueueStatus, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import grpc
import pytest
from google.protobuf import duration_pb2

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
from routing_service.app.sweeper import sweep_once
from tests.service.grpc_helpers import Routing, add_agent, agent_of, field_violations, resolve

# The grpc.aio stub type exists only in the generated .pyi, hence the string.
Stub: TypeAlias = "routing_pb2_grpc.RoutingServiceAsyncStub"


async def _two_waiting(stub: Stub) -> None:
    """ann busy with call-1; call-2 then call-3 waiting in the technical queue."""
    await add_agent(stub, "ann")
    await resolve(stub, "call-1")
    assert (await resolve(stub, "call-2")).kind == pb.DECISION_KIND_CALLBACK
    assert (await resolve(stub, "call-3")).kind == pb.DECISION_KIND_CALLBACK


async def test_claim_reserves_only_for_the_head_when_a_specialist_is_freed(stub: Stub) -> None:
    await _two_waiting(stub)
    busy = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert busy.outcome == pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))

    not_head = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-3"))
    assert not_head.outcome == pb.CLAIM_OUTCOME_NOT_AT_HEAD
    claimed = await stub.ClaimCallback(
        pb.ClaimCallbackRequest(call_id="call-2", hold_for=duration_pb2.Duration(seconds=120))
    )
    assert claimed.outcome == pb.CLAIM_OUTCOME_RESERVED
    assert claimed.agent.agent_id == "ann"
    assert claimed.callback.state == pb.CALLBACK_STATE_RESERVED
    assert (await agent_of(stub, "ann")).active_assignments == 1

    again = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert again.outcome == pb.CLAIM_OUTCOME_RESERVED and again.agent.agent_id == "ann"
    assert (await agent_of(stub, "ann")).active_assignments == 1, "a repeated claim reserves nothing more"


async def test_finish_frees_the_reservation_and_ends_the_callback_when_connected(stub: Stub) -> None:
    await _two_waiting(stub)
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    finished = await stub.FinishCallback(
        pb.FinishCallbackRequest(call_id="call-2", state=pb.CALLBACK_STATE_CONNECTED, note="spoke to ann")
    )
    assert finished.callback.state == pb.CALLBACK_STATE_CONNECTED
    assert finished.callback.HasField("finished_at")
    assert (await agent_of(stub, "ann")).active_assignments == 0

    after = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert after.outcome == pb.CLAIM_OUTCOME_ALREADY_FINISHED
    head_now = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-3"))
    assert head_now.outcome == pb.CLAIM_OUTCOME_RESERVED

    same = await stub.FinishCallback(
        pb.FinishCallbackRequest(call_id="call-2", state=pb.CALLBACK_STATE_CONNECTED)
    )
    assert same.callback.state == pb.CALLBACK_STATE_CONNECTED
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.FinishCallback(
            pb.FinishCallbackRequest(call_id="call-2", state=pb.CALLBACK_STATE_CANCELLED)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_finish_is_rejected_when_the_state_is_not_terminal(stub: Stub) -> None:
    await _two_waiting(stub)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.FinishCallback(pb.FinishCallbackRequest(call_id="call-2", state=pb.CALLBACK_STATE_WAITING))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["state"]


async def test_list_callbacks_is_in_service_order_when_several_wait(stub: Stub) -> None:
    await _two_waiting(stub)
    listed = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
    assert [(c.call_id, c.position) for c in listed.callbacks] == [("call-2", 1), ("call-3", 2)]
    cancelled = await stub.ListCallbacks(pb.ListCallbacksRequest(state=pb.CALLBACK_STATE_CANCELLED))
    assert list(cancelled.callbacks) == []


async def test_list_callbacks_returns_only_the_head_when_page_size_is_given(stub: Stub) -> None:
    await _two_waiting(stub)
    waiting = pb.CALLBACK_STATE_WAITING
    head = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical", state=waiting, page_size=1))
    both = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical", state=waiting, page_size=0))
    assert [(c.call_id, c.position) for c in head.callbacks] == [("call-2", 1)]
    assert [(c.call_id, c.position) for c in both.callbacks] == [("call-2", 1), ("call-3", 2)]


async def test_list_callbacks_pages_with_next_page_token_until_a_page_is_not_full(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await resolve(stub, "call-0")
    for i in range(1, 6):
        assert (await resolve(stub, f"call-{i}")).kind == pb.DECISION_KIND_CALLBACK
    seen: list[tuple[str, int]] = []
    tokens: list[str] = []
    token = ""
    for _ in range(10):
        page = await stub.ListCallbacks(
            pb.ListCallbacksRequest(team_id="technical", page_size=2, page_token=token)
        )
        seen += [(c.call_id, c.position) for c in page.callbacks]
        tokens.append(page.next_page_token)
        token = page.next_page_token
        if not token:
            break
    assert seen == [(f"call-{i}", i) for i in range(1, 6)]
    assert [bool(t) for t in tokens] == [True, True, False], "the third page (one ticket) is not full"


@pytest.mark.parametrize("token", ["not-a-token", "W10=", "WyJ0ZWNobmljYWwiXQ=="])
async def test_list_callbacks_is_rejected_when_the_page_token_was_not_ours(stub: Stub, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical", page_token=token))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["page_token"]


@pytest.mark.parametrize("page_size", [-1, 1001])
async def test_list_callbacks_is_rejected_when_page_size_is_out_of_range(stub: Stub, page_size: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical", page_size=page_size))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(info.value)] == ["page_size"]


async def test_queue_status_counts_waiting_and_free_when_the_team_is_loaded(stub: Stub) -> None:
    await _two_waiting(stub)
    status = await stub.GetQueueStatus(pb.GetQueueStatusRequest(team_id="technical"))
    (team,) = status.teams
    assert team.waiting_callbacks == 2
    assert team.total_agents == 1 and team.available_agents == 0 and team.active_assignments == 1
    assert team.estimated_wait.ToTimedelta().total_seconds() > 0
    everyone = await stub.GetQueueStatus(pb.GetQueueStatusRequest())
    assert {t.team_id for t in everyone.teams} == {"enterprise", "technical", "billing", "product", "general"}
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetQueueStatus(pb.GetQueueStatusRequest(team_id="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_claim_and_finish_are_not_found_when_the_call_never_queued(stub: Stub) -> None:
    for call in (
        stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="ghost")),
        stub.FinishCallback(pb.FinishCallbackRequest(call_id="ghost", state=pb.CALLBACK_STATE_CANCELLED)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_new_caller_gets_a_free_specialist_when_the_only_callback_already_holds_one(stub: Stub) -> None:
    await add_agent(stub, "ann")
    await add_agent(stub, "bob", number="+15550100202")
    await resolve(stub, "call-1")
    await resolve(stub, "call-2")
    assert (await resolve(stub, "call-3")).kind == pb.DECISION_KIND_CALLBACK
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    claimed = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-3"))
    assert claimed.outcome == pb.CLAIM_OUTCOME_RESERVED
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-2"))
    newer = await resolve(stub, "call-4")
    assert newer.kind == pb.DECISION_KIND_TRANSFER_AGENT, "nobody is waiting: the reserved callback is served"


async def test_claim_reserves_again_when_the_previous_hold_lapsed(routing: Routing) -> None:
    stub = routing.stub
    await _two_waiting(stub)
    await stub.ReleaseAssignment(pb.ReleaseAssignmentRequest(call_id="call-1"))
    first = await stub.ClaimCallback(
        pb.ClaimCallbackRequest(call_id="call-2", hold_for=duration_pb2.Duration(seconds=60))
    )
    assert first.outcome == pb.CLAIM_OUTCOME_RESERVED
    swept = await sweep_once(
        uow=routing.server.uow, now=datetime.now(UTC) + timedelta(minutes=5), callback_ttl=timedelta(days=1)
    )
    assert swept.released == 1
    assert (await agent_of(stub, "ann")).active_assignments == 0
    again = await stub.ClaimCallback(pb.ClaimCallbackRequest(call_id="call-2"))
    assert again.outcome == pb.CLAIM_OUTCOME_RESERVED and again.agent.agent_id == "ann"
    assert (await agent_of(stub, "ann")).active_assignments == 1
