"""A worker killed (SIGKILL) during the dial activity: the callback still completes once, with one dial.

The first `escalade worker` dials the customer and is killed while its activity watches the call (the
customer is still talking, so the stand-in reports the call `in-progress`). Temporal notices when the
activity's heartbeat times out and retries it on a second worker, which finds the dial in its ledger and
watches the same Vapi call instead of dialling again. The heartbeat timeout is the callback's
`dial_heartbeat_timeout_seconds`: one minute as the edge builds it (checked here), lowered to 10 s for this
test (the history shows the dial scheduled with it), which heartbeats every 50 ms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.workflow.callback_support import (
    VAPI_KEY,
    queue_a_callback,
    routing_server,
    start_waiting_callback,
    worker_env,
    worker_processes,
)
from tests.workflow.workflow_fakes import eventually, new_replayer
from workflows.inputs import callback_workflow_id

pytestmark = pytest.mark.temporal

DIAL_ACTIVITY = "place_callback_call"
HEARTBEAT_TIMEOUT_S = 10
"""The test's dial heartbeat timeout: well above the workers' 50 ms heartbeats on a loaded machine."""


@pytest.mark.timeout(180)
async def test_callback_completes_once_with_one_dial_when_worker_is_killed_during_the_dial_activity(
    dev_env: WorkflowEnvironment, sqlite_url: str, tmp_path: Path
) -> None:
    client, call_id, task_queue = dev_env.client, f"call-{uuid.uuid4()}", f"tq-{uuid.uuid4()}"
    vapi_standin = VapiStandin(api_key=VAPI_KEY, ended_reason=None)  # the callback call stays in progress
    async with routing_server(sqlite_url) as (stub, address), serve_standin(vapi_standin) as vapi:
        built = await queue_a_callback(stub, call_id)
        assert built.dial_heartbeat_timeout_seconds == 60, "production's timeout, as the edge builds it"
        payload = dataclasses.replace(built, dial_heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S)
        env = worker_env(client, task_queue, address, vapi, tmp_path / "worker.db")
        async with worker_processes(env) as workers:
            first = await workers.start()
            await start_waiting_callback(client, call_id, payload, task_queue)
            await stub.ReleaseAssignment(
                pb.ReleaseAssignmentRequest(call_id=f"live-{call_id}", reason="ended")
            )
            await asyncio.wait_for(vapi.arrived.wait(), 60)
            handle = client.get_workflow_handle(callback_workflow_id(call_id))

            async def watching() -> bool:
                """The dial is in the ledger and the activity has heartbeated the Vapi call id."""
                pending = (await handle.describe()).raw_description.pending_activities
                return any(
                    a.activity_type.name == DIAL_ACTIVITY and a.heartbeat_details.payloads for a in pending
                )

            await eventually(watching, within=30)
            first.send_signal(signal.SIGKILL)
            await first.wait()

            await workers.start()
            vapi.ended_reason = "customer-ended-call"  # the customer and the specialist hang up
            result = await handle.result(rpc_timeout=timedelta(seconds=150))
            history = await handle.fetch_history()
    dials_scheduled = [
        event.activity_task_scheduled_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and event.activity_task_scheduled_event_attributes.activity_type.name == DIAL_ACTIVITY
    ]
    assert [d.heartbeat_timeout.ToTimedelta() for d in dials_scheduled] == [
        timedelta(seconds=HEARTBEAT_TIMEOUT_S)
    ], "the dial was scheduled with the callback's heartbeat timeout"
    dial_attempts = [
        event.activity_task_started_event_attributes.attempt
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and any(
            scheduled.event_id == event.activity_task_started_event_attributes.scheduled_event_id
            and scheduled.activity_task_scheduled_event_attributes.activity_type.name == DIAL_ACTIVITY
            for scheduled in history.events
        )
    ]
    assert dial_attempts == [2], "the dial activity was retried once, after the kill (its first try died)"
    assert result["state"] == "connected"
    assert len(vapi.dials) == 1, "the retried activity watched the same Vapi call instead of dialling again"
    # The history recorded across the kill replays against the current code from the first event: the
    # second worker replayed it once to finish, and any worker that loses its cache will again.
    replay = await new_replayer().replay_workflow(history, raise_on_replay_failure=False)
    assert replay.replay_failure is None, replay.replay_failure
