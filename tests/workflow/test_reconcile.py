"""The callback reconciler against the real routing service (TechCorp policy, SQLite file; tickets queued
with the store builders, as if the edge's outbox had lost their starts) and the Temporal dev server. No
worker polls the task queue, so a started workflow simply exists and can be described; each test
terminates the workflows it caused. (Not the shared time-skipping server: workflows left waiting there
for a worker stall the time skipping of later tests.)

- an open ticket older than the grace with no workflow -> one pass starts `callback-<call id>` with the
  ticket's call id and team, logs `callback_reconciled` (workflow id only) and counts it
- a second pass (and a fresh reconciler) starts nothing: same run, counter unchanged
- a ticket younger than the grace and a finished ticket -> no workflow
- routing unreachable -> the pass logs a warning and returns 0
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

import grpc
import pytest
from structlog.testing import capture_logs
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from escalade_platform.logs import mask_phone_numbers
from tests.service.store_builders import NOW, enqueue, make_ticket, opened_store
from tests.support.routing import RunningRouting, techcorp_routing
from workflows.inputs import QueueCallbackInput, callback_workflow_id
from workflows.reconcile import CallbackReconciler

pytestmark = pytest.mark.temporal

GRACE = 30.0
LATER = NOW + timedelta(seconds=60)
"""The reconciler's "now": a minute after the store builders' default enqueue time."""
CALLER = "+15551230000"  # make_ticket's caller number


@pytest.fixture
def client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest.fixture
async def call_ids(client: Client) -> AsyncIterator[list[str]]:
    """The test's call ids (from `new_call`); their callback workflows are terminated afterwards."""
    made: list[str] = []
    yield made
    for call_id in made:
        with contextlib.suppress(RPCError):  # NOT_FOUND: never started, as the test wanted
            await client.get_workflow_handle(callback_workflow_id(call_id)).terminate("test over")


def new_call(call_ids: list[str], prefix: str) -> str:
    call_id = f"{prefix}-{uuid.uuid4()}"
    call_ids.append(call_id)
    return call_id


@pytest.fixture
async def routing(sqlite_url: str) -> AsyncIterator[RunningRouting]:
    async with techcorp_routing(sqlite_url, seed=False) as running:
        yield running


def reconciler(
    stub: pb_grpc.RoutingServiceAsyncStub,
    client: Client,
    now: datetime = LATER,
    page_size: int = 1000,
    on_reconciled: Callable[[], None] | None = None,
) -> CallbackReconciler:
    return CallbackReconciler(
        stub,
        client,
        grace=GRACE,
        task_queue=f"tq-{uuid.uuid4()}",
        rpc_timeout=5.0,
        clock=lambda: now,
        page_size=page_size,
        on_reconciled=on_reconciled,
    )


async def queue_tickets(database_url: str, *call_ids: str, enqueued_at: datetime = NOW) -> None:
    """WAITING tickets in routing's store with no outbox start behind them."""
    async with opened_store(database_url) as store:
        await enqueue(
            store,
            *(
                make_ticket(call_id, team_id="technical", service_key=float(i), enqueued_at=enqueued_at)
                for i, call_id in enumerate(call_ids)
            ),
        )


async def workflow_exists(client: Client, call_id: str) -> bool:
    try:
        await client.get_workflow_handle(callback_workflow_id(call_id)).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def started_input(client: Client, call_id: str) -> QueueCallbackInput:
    history = await client.get_workflow_handle(callback_workflow_id(call_id)).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    [data] = await client.data_converter.decode(started.input.payloads, [QueueCallbackInput])
    assert isinstance(data, QueueCallbackInput)
    return data


async def test_pass_starts_the_workflow_when_an_old_ticket_has_none(
    routing: RunningRouting, sqlite_url: str, client: Client, call_ids: list[str]
) -> None:
    call_id = new_call(call_ids, "lost")
    await queue_tickets(sqlite_url, call_id)
    reconcile = reconciler(routing.stub, client)
    async with asyncio.timeout(30):
        with capture_logs(processors=[mask_phone_numbers]) as logs:
            started = await reconcile.run_once()
        data = await started_input(client, call_id)
    assert started == 1
    assert reconcile.reconciled == 1
    assert (data.call_id, data.team_id, data.customer_number) == (call_id, "technical", CALLER)
    assert (data.tier, data.category, data.complexity) == ("standard", "technical", "advanced")
    assert data.decision_id == f"d-{call_id}"
    assert (data.context, data.reason) == ("API returns 500", "needs a specialist")  # make_ticket's
    reconciled = [entry for entry in logs if entry["event"] == "callback_reconciled"]
    assert reconciled == [
        {"event": "callback_reconciled", "workflow_id": f"callback-{call_id}", "log_level": "warning"}
    ]
    assert CALLER not in repr(logs)


async def test_pass_reads_every_page_of_the_queue_when_it_is_longer_than_a_page(
    routing: RunningRouting, sqlite_url: str, client: Client, call_ids: list[str]
) -> None:
    lost = [new_call(call_ids, f"deep{i}") for i in range(5)]
    await queue_tickets(sqlite_url, *lost)
    counted: list[int] = []
    reconcile = reconciler(routing.stub, client, page_size=2, on_reconciled=lambda: counted.append(1))
    async with asyncio.timeout(30):
        started = await reconcile.run_once()
        exist = [await workflow_exists(client, call_id) for call_id in lost]
    assert started == 5, "the last ticket is on the third page"
    assert exist == [True] * 5
    assert len(counted) == 5, "each start is counted (the worker's escalade_callbacks_reconciled)"


async def test_second_pass_starts_nothing_when_the_workflow_exists(
    routing: RunningRouting, sqlite_url: str, client: Client, call_ids: list[str]
) -> None:
    call_id = new_call(call_ids, "lost")
    await queue_tickets(sqlite_url, call_id)
    reconcile = reconciler(routing.stub, client)
    async with asyncio.timeout(30):
        assert await reconcile.run_once() == 1
        first = await client.get_workflow_handle(callback_workflow_id(call_id)).describe()
        with capture_logs() as logs:
            again = await reconcile.run_once()
            fresh = await reconciler(routing.stub, client).run_once()  # no memory: asks Temporal
        after = await client.get_workflow_handle(callback_workflow_id(call_id)).describe()
    assert (again, fresh) == (0, 0)
    assert reconcile.reconciled == 1
    assert after.run_id == first.run_id
    assert logs == []


async def test_pass_skips_young_and_finished_tickets(
    routing: RunningRouting, sqlite_url: str, client: Client, call_ids: list[str]
) -> None:
    young, finished = new_call(call_ids, "young"), new_call(call_ids, "done")
    await queue_tickets(sqlite_url, young, enqueued_at=LATER - timedelta(seconds=GRACE - 5))
    await queue_tickets(sqlite_url, finished)
    reconcile = reconciler(routing.stub, client)
    async with asyncio.timeout(30):
        await routing.stub.FinishCallback(
            pb.FinishCallbackRequest(call_id=finished, state=pb.CALLBACK_STATE_CANCELLED, note="test")
        )
        assert await reconcile.run_once() == 0
        assert not await workflow_exists(client, young)
        assert not await workflow_exists(client, finished)
        # once the young ticket is past the grace, it is reconciled like any other
        assert await reconciler(routing.stub, client, LATER + timedelta(seconds=GRACE)).run_once() == 1
        assert await workflow_exists(client, young)
    assert reconcile.reconciled == 0


async def test_pass_logs_and_returns_when_routing_is_unreachable(client: Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reconcile = reconciler(pb_grpc.RoutingServiceStub(channel), client)
        async with asyncio.timeout(15):
            with capture_logs() as logs:
                started = await reconcile.run_once()
    assert started == 0
    assert [(e["event"], e["log_level"], e["cause"]) for e in logs] == [
        ("callback_reconcile_failed", "warning", "routing")
    ]
