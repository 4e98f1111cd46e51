"""The whole callback path with nothing faked but Vapi: a real routing server (SQLite and PostgreSQL), the
Temporal dev server, the real worker (in process, or `escalade worker` subprocesses), and a local HTTP
server standing in for Vapi's API that records every dial.

A specialist becomes free -> routing's availability stream -> the relay signals the head of the queue ->
the claim reserves the specialist -> exactly one dial. And a worker killed (SIGKILL) mid-wait is replaced by
a new one: the callback still happens, exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.policy.loader import load_policy
from tests.workflow.callback_support import (
    VAPI_KEY,
    queue_a_callback,
    routing_server,
    start_waiting_callback,
    worker_env,
    worker_processes,
    worker_settings,
)
from tests.workflow.workflow_fakes import eventually
from workflows import client as helpers
from workflows.inputs import callback_workflow_id
from workflows.search_attributes import CALLBACK_STATE
from workflows.worker import run_worker

pytestmark = pytest.mark.temporal

TECHCORP = Path(__file__).resolve().parents[2] / "examples" / "techcorp.yaml"


async def callback_state(client: Client, call_id: str) -> str:
    described = await client.get_workflow_handle(callback_workflow_id(call_id)).describe()
    return described.typed_search_attributes.get(CALLBACK_STATE) or ""


async def test_freed_specialist_dials_head_of_queue_once_when_routing_announces_it(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    client, call_id, task_queue = dev_env.client, f"call-{uuid.uuid4()}", f"tq-{uuid.uuid4()}"
    stop = asyncio.Event()
    async with (
        routing_server(database_url) as (stub, address),
        serve_standin(VapiStandin(api_key=VAPI_KEY)) as vapi,
    ):
        payload = await queue_a_callback(stub, call_id)
        settings = worker_settings(address, vapi, f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}", task_queue)
        worker = asyncio.create_task(run_worker(settings, stop=stop, client=client))
        try:
            policy = load_policy(TECHCORP)
            await helpers.start_follow_up(client, payload, policy=policy, task_queue=task_queue)

            async def waiting() -> bool:
                return (await helpers.callback_status(client, call_id)).state == "waiting"

            await eventually(waiting, within=30)
            assert vapi.dials == []

            await stub.ReleaseAssignment(
                pb.ReleaseAssignmentRequest(call_id=f"live-{call_id}", reason="ended")
            )
            handle = client.get_workflow_handle(callback_workflow_id(call_id))
            result = await handle.result(rpc_timeout=timedelta(seconds=60))
        finally:
            stop.set()
            await asyncio.wait_for(worker, 30)

        connected = await stub.ListCallbacks(
            pb.ListCallbacksRequest(team_id="technical", state=pb.CALLBACK_STATE_CONNECTED)
        )
    assert result["state"] == "connected" and result["agent_name"] == "Ann"
    assert len(vapi.dials) == 1
    assert vapi.dials[0]["customer"] == {"number": "+14155550123"}
    assert vapi.dials[0]["assistantOverrides"]["variableValues"]["customerContext"].startswith(
        "webhooks stopped"
    )
    assert [t.call_id for t in connected.callbacks] == [call_id]
    assert await callback_state(client, call_id) == "connected"


@pytest.mark.timeout(300)
async def test_callback_happens_once_when_worker_is_killed_mid_wait(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    client, call_id = dev_env.client, f"call-{uuid.uuid4()}"
    task_queue = f"tq-{uuid.uuid4()}"
    async with (
        routing_server(sqlite_url) as (stub, address),
        serve_standin(VapiStandin(api_key=VAPI_KEY)) as vapi,
    ):
        payload = await queue_a_callback(stub, call_id)
        env = worker_env(client, task_queue, address, vapi, tmp_path / "worker.db")
        async with worker_processes(env) as workers:
            first = await workers.start()
            await start_waiting_callback(client, call_id, payload, task_queue)
            first.send_signal(signal.SIGKILL)
            await first.wait()

            second = await workers.start()
            await stub.ReleaseAssignment(
                pb.ReleaseAssignmentRequest(call_id=f"live-{call_id}", reason="ended")
            )
            handle = client.get_workflow_handle(callback_workflow_id(call_id))
            result = await handle.result(rpc_timeout=timedelta(seconds=90))
    assert result["state"] == "connected"
    assert len(vapi.dials) == 1
    assert second is not None and second.returncode == 0  # SIGTERM: graceful exit
