"""The edge's outbox relay against real Temporal dev servers: the real edge (in process, signed Vapi
messages), the real routing service (SQLite file and PostgreSQL) with the TechCorp policy and demo
specialists, and `temporal server start-dev` from PyPI. No worker polls the test's task queue, so started
workflows simply exist and can be described and listed.

- a CALLBACK decision -> `callback-<call id>` exists with the escalation's search attributes, no raw number
- duplicate webhooks and concurrent relays -> one workflow
- Temporal down while callbacks are decided -> rows stay pending with attempts and a later retry time;
  Temporal up on the same port -> every workflow started exactly once
- an end-of-call-report of an escalated call -> `review-<call id>` started once
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from escalade_platform.settings import TemporalConnectionSettings
from tests.conftest import installed_binary
from tests.edge.edge_support import SECRET, Edge, load_fixture, running_edge
from tests.support.routing import techcorp_routing
from webhook_edge.outbox import Outbox, OutboxEntry, outbox_table
from webhook_edge.relay import OutboxRelay, backoff_delay, run_standalone, temporal_connector
from webhook_edge.settings import EdgeSettings
from workflows.inputs import EscalationReviewInput
from workflows.search_attributes import (
    ALL_KEYS,
    CALLBACK_STATE,
    ESCALATION_CATEGORY,
    ESCALATION_TIER,
    dev_server_flag,
)

pytestmark = pytest.mark.temporal

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PREMIUM = "transfer-destination-request.premium-technical-advanced.json"
ENTERPRISE = "transfer-destination-request.enterprise-technical-advanced.json"
CALLER = "+1111111111"  # the premium fixture's caller


@dataclass
class Stack:
    edge: Edge
    stub: pb_grpc.RoutingServiceAsyncStub
    outbox: Outbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `check` until it holds (fails the test after `within` seconds)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def edge_stack(
    database_url: str, temporal_address: str, task_queue: str, backoff_max: float = 60.0
) -> AsyncIterator[Stack]:
    """Routing (TechCorp, demo specialists, technical team all busy) + the edge relaying to Temporal."""
    async with techcorp_routing(database_url) as routing:
        stub = routing.stub
        for agent_id in ("tech-1", "tech-2"):
            await stub.SetAgentStatus(
                pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
            )
        edge_settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            routing_deadline_ms=5000,
            database_url=database_url,
            temporal_address=temporal_address,
            task_queue=task_queue,
            relay_poll_seconds=0.5,
            relay_backoff_max_seconds=backoff_max,
            policy=EXAMPLES / "techcorp.yaml",
        )
        async with running_edge(edge_settings) as edge:
            yield Stack(edge, stub, edge.outbox)


def premium_request(call_id: str) -> dict[str, Any]:
    doc = copy.deepcopy(load_fixture(PREMIUM))
    doc["message"]["call"]["id"] = call_id
    return doc


def target(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


async def workflow_ids(client: Client, workflow_id: str) -> list[str]:
    return [e.id async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]


async def delivered(outbox: Outbox, workflow_id: str) -> bool:
    entry = await outbox.get(workflow_id)
    return entry is not None and entry.delivered_at is not None


@contextmanager
def dev_server(port: int, db: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`temporal server start-dev` on `port` as a subprocess this test owns (stopped on exit)."""
    argv = [installed_binary("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    argv += ["--headless", "--db-filename", str(db), "--log-level", "error"]
    for key in ALL_KEYS:
        argv += ["--search-attribute", dev_server_flag(key)]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_backoff_grows_and_stays_capped_when_attempts_repeat() -> None:
    low = [backoff_delay(n, minimum=1, maximum=60, rng=lambda: 0.0) for n in range(10)]
    high = [backoff_delay(n, minimum=1, maximum=60, rng=lambda: 1.0) for n in range(10)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0]
    assert high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(high) == 60.0 and high[-1] == 60.0 and low[-1] == 30.0


async def test_callback_workflow_has_search_attributes_when_edge_decides_callback(
    dev_env: WorkflowEnvironment, database_url: str
) -> None:
    call_id = f"relay-{uuid.uuid4()}"
    workflow_id = f"callback-{call_id}"
    async with edge_stack(database_url, target(dev_env), f"tq-{uuid.uuid4()}") as stack:
        response = await stack.edge.post(premium_request(call_id))
        assert response.status_code == 200 and "priority queue" in response.json()["destination"]["message"]
        await eventually(lambda: delivered(stack.outbox, workflow_id))
    described = await dev_env.client.get_workflow_handle(workflow_id).describe()
    attributes = described.typed_search_attributes
    assert described.workflow_type == "QueueCallbackWorkflow"
    assert (attributes.get(ESCALATION_TIER), attributes.get(ESCALATION_CATEGORY)) == ("premium", "technical")
    assert attributes.get(CALLBACK_STATE)
    memo = await described.memo()
    assert memo["team_id"] == "technical"
    shown = f"{described.id} {memo} {[(p.key.name, p.value) for p in attributes]}"
    assert CALLER not in shown and CALLER[1:] not in shown


async def test_one_workflow_starts_when_the_same_callback_is_delivered_repeatedly(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    call_id = f"dup-{uuid.uuid4()}"
    workflow_id = f"callback-{call_id}"
    task_queue = f"tq-{uuid.uuid4()}"
    async with edge_stack(database_url, target(dev_env), task_queue) as stack:
        doc = premium_request(call_id)
        replies = await asyncio.gather(*(stack.edge.post(doc) for _ in range(3)))
        assert all(r.status_code == 200 for r in replies)
        await eventually(lambda: delivered(stack.outbox, workflow_id))
        entry = await stack.outbox.get(workflow_id)
        assert entry is not None
        # the start reached Temporal but its `mark_delivered` was lost (a crash): the same entry is pending
        # again, and two relays (edge replicas) deliver it concurrently
        replay = await Outbox.open(f"sqlite+aiosqlite:///{tmp_path / 'replayed-outbox.db'}")
        try:
            assert await replay.record(entry.input())
            replicas = [
                OutboxRelay(
                    replay,
                    temporal_connector(TemporalConnectionSettings(temporal_address=target(dev_env))),
                    task_queue=task_queue,
                )
                for _ in range(2)
            ]
            counts = await asyncio.gather(*(relay.deliver_due() for relay in replicas))
            assert sum(counts) >= 1 and await delivered(replay, workflow_id)
        finally:
            await replay.close()
    assert await workflow_ids(dev_env.client, workflow_id) == [workflow_id]


async def test_every_callback_starts_once_when_temporal_comes_back_after_an_outage(
    database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    call_ids = [f"outage-{i}-{uuid.uuid4()}" for i in range(4)]
    ids = [f"callback-{c}" for c in call_ids]
    async with edge_stack(database_url, address, f"tq-{uuid.uuid4()}", backoff_max=2.0) as stack:
        for call_id in call_ids:  # Temporal is not running: the edge still answers every call
            response = await stack.edge.post(premium_request(call_id))
            assert "priority queue" in response.json()["destination"]["message"]

        async def all_tried() -> bool:
            entries = [await stack.outbox.get(i) for i in ids]
            return all(e is not None and e.attempts >= 2 for e in entries)

        await eventually(all_tried)
        entries: list[OutboxEntry] = [e for e in [await stack.outbox.get(i) for i in ids] if e is not None]
        assert len(entries) == len(ids)
        assert all(e.delivered_at is None and e.last_error for e in entries)
        assert all(e.next_attempt_at > e.created_at for e in entries)

        with dev_server(port, tmp_path / "temporal.db"):

            async def all_delivered() -> bool:
                return all([await delivered(stack.outbox, i) for i in ids])

            await eventually(all_delivered, within=60)
            client = await Client.connect(address)
            for workflow_id in ids:
                assert await workflow_ids(client, workflow_id) == [workflow_id]
            listed = [e.id async for e in client.list_workflows("WorkflowType = 'QueueCallbackWorkflow'")]
            assert sorted(listed) == sorted(ids)


async def test_review_starts_once_when_escalated_call_reports_end_twice(
    dev_env: WorkflowEnvironment, database_url: str
) -> None:
    call_id = f"review-call-{uuid.uuid4()}"
    workflow_id = f"review-{call_id}"
    async with edge_stack(database_url, target(dev_env), f"tq-{uuid.uuid4()}") as stack:
        request = copy.deepcopy(load_fixture(ENTERPRISE))
        request["message"]["call"]["id"] = call_id
        assert (await stack.edge.post(request)).status_code == 200
        report = copy.deepcopy(load_fixture("end-of-call-report.escalated.json"))
        report["message"]["call"]["id"] = call_id
        for _ in range(2):
            assert (await stack.edge.post(report)).status_code == 200
        await eventually(lambda: delivered(stack.outbox, workflow_id))
    assert await workflow_ids(dev_env.client, workflow_id) == [workflow_id]
    described = await dev_env.client.get_workflow_handle(workflow_id).describe()
    assert described.workflow_type == "EscalationReviewWorkflow"


async def test_standalone_relay_delivers_pending_entries_when_edges_do_not_relay(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}"
    call_id = f"standalone-{uuid.uuid4()}"
    workflow_id = f"review-{call_id}"
    outbox = await Outbox.open(url)
    try:
        assert await outbox.record(EscalationReviewInput(call_id=call_id, ended_reason="hangup"))
        settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            database_url=url,
            temporal_address=target(dev_env),
            task_queue=f"tq-{uuid.uuid4()}",
            relay_enabled=False,  # the edges' setting; the standalone relay runs regardless
            relay_poll_seconds=0.2,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(run_standalone(settings, stop))
        await eventually(lambda: delivered(outbox, workflow_id))
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await outbox.close()
    assert await workflow_ids(dev_env.client, workflow_id) == [workflow_id]


async def _start_input(client: Client, workflow_id: str) -> dict[str, Any]:
    """The input a workflow was started with, as Temporal recorded it."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    recorded: dict[str, Any] = json.loads(started.input.payloads[0].data)
    return recorded


async def test_rows_of_the_previous_edge_start_their_workflows_when_relayed_after_an_upgrade(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """Rows written before the edge recorded typed inputs (other key spellings) are still delivered, with
    every field the workflow reads."""
    call_id = f"upgrade-{uuid.uuid4()}"
    task_queue = f"tq-{uuid.uuid4()}"
    url = f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}"
    old_callback = {
        "call_id": call_id,
        "caller_number": "+14155550123",
        "team_id": "technical",
        "tier": "premium",
        "issue_category": "technical",
        "effective_complexity": "advanced",
        "priority": 40,
        "customer_context": "webhooks stopped",
        "escalation_reason": "needs a specialist",
        "decision_id": "dec-old",
        "estimated_wait_seconds": 300.0,
        "first_message": "Hello from TechCorp.",
    }
    old_review = {
        "call_id": call_id,
        "ended_reason": "assistant-forwarded-call",
        "started_at": "2025-11-18T14:02:11.482Z",
        "ended_at": "",
        "duration_seconds": None,
        "summary": "",
        "transcript": "",
        "transfers": [{"status": "no-answer", "mode": "blind-transfer"}],
        "destination": {"type": "number", "number": "+15550100110"},
        "final_category": "",
        "structured_outputs": {},
        "decision_id": "",
        "decision_known": False,
    }
    outbox = await Outbox.open(url)
    engine = create_async_engine(url)
    try:
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            for kind, payload in (("callback", old_callback), ("review", old_review)):
                await conn.execute(
                    sa.insert(outbox_table).values(
                        kind=kind,
                        workflow_id=f"{kind}-{call_id}",
                        payload=payload,
                        created_at=now,
                        attempts=0,
                        next_attempt_at=now,
                    )
                )
        relay = OutboxRelay(
            outbox,
            temporal_connector(TemporalConnectionSettings(temporal_address=target(dev_env))),
            task_queue=task_queue,
        )
        assert await relay.deliver_due() == 2
    finally:
        await engine.dispose()
        await outbox.close()
    callback = await _start_input(dev_env.client, f"callback-{call_id}")
    assert {k: callback[k] for k in ("customer_number", "masked_number", "category", "complexity")} == {
        "customer_number": "+14155550123",
        "masked_number": "+1******0123",
        "category": "technical",
        "complexity": "advanced",
    }
    assert (callback["context"], callback["reason"], callback["first_message"]) == (
        "webhooks stopped",
        "needs a specialist",
        "Hello from TechCorp.",
    )
    review = await _start_input(dev_env.client, f"review-{call_id}")
    assert (review["transfer_statuses"], review["destination"]) == (["no-answer"], "+15550100110")
    assert review["started_at"] == "2025-11-18T14:02:11.482000+00:00"


async def test_standalone_relay_refuses_to_run_when_no_temporal_address_is_set(tmp_path: Path) -> None:
    settings = EdgeSettings(
        vapi_secret=SecretStr(SECRET), database_url=f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    )
    with pytest.raises(ValueError, match="ESCALADE_TEMPORAL_ADDRESS"):
        await run_standalone(settings, asyncio.Event())
