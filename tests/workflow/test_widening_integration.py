"""Widening over time through everything real but Vapi: a signed Vapi webhook to the real edge, the real
routing service (SQLite file and PostgreSQL) with TechCorp's policy whose technical team overflows to the
enterprise team after 30 seconds, the edge's outbox relay to the Temporal dev server, the real worker (in
process) and the Vapi stand-in.

The enterprise specialist is free the whole time, yet the callback's first claim does not take them: only
once the step's delay has passed does the workflow claim again (on the time routing gave it, without any
signal) and the overflow specialist is held and dialled, with the step on the workflow's search attribute.
"""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.client import WorkflowHistory
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import SECRET, load_fixture, running_edge
from tests.support.routing import TECHCORP_POLICY, techcorp_routing
from tests.workflow.callback_support import VAPI_KEY, worker_settings
from tests.workflow.workflow_fakes import eventually
from webhook_edge.settings import EdgeSettings
from workflows.inputs import callback_workflow_id
from workflows.search_attributes import CALLBACK_WIDENING
from workflows.worker import run_worker

pytestmark = pytest.mark.temporal

DELAY = timedelta(seconds=30)
LABEL = "step 1: overflow to team enterprise after 30 s"
CUSTOMER = "+14155550123"


def widening_policy(directory: Path) -> Path:
    """TechCorp with the technical team's widening cut to one step: the enterprise team after 30 s."""
    text = TECHCORP_POLICY.read_text()
    start = text.index("    technical:\n      - {after_minutes: 5")
    end = text.index("    billing:\n      - {after_minutes: 10")
    path = directory / "policy.yaml"
    path.write_text(
        text[:start]
        + "    technical:\n      - {after_minutes: 0.5, overflow_teams: [enterprise]}\n"
        + text[end:]
    )
    return path


def escalation(call_id: str) -> dict[str, object]:
    """The tutorial's technical advanced escalation, from a dialable number (a standard-tier caller)."""
    doc = copy.deepcopy(load_fixture("transfer-destination-request.premium-technical-advanced.json"))
    message = doc["message"]
    message["call"]["id"] = call_id
    message["customer"]["number"] = CUSTOMER
    message["call"]["customer"]["number"] = CUSTOMER
    return doc


async def add_agent(stub: object, agent_id: str, team: str, status: int) -> None:
    await stub.UpsertAgent(  # type: ignore[attr-defined]
        pb.UpsertAgentRequest(
            agent=pb.Agent(
                agent_id=agent_id,
                display_name=agent_id.title(),
                number="+15550100101" if team == "enterprise" else "+15550100201",
                team_ids=[team],
                max_complexity=pb.COMPLEXITY_CRITICAL,
                capacity=1,
                status=status,  # type: ignore[arg-type]
            )
        )
    )


def claims(history: WorkflowHistory) -> list[tuple[dict[str, Any], datetime]]:
    """Each claim the callback's history recorded (its only local activities): the result routing gave,
    and when it completed."""
    found = []
    for event in history.events:
        attrs = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and attrs.marker_name == "core_local_activity":
            result = json.loads(attrs.details["result"].payloads[0].data)
            data = json.loads(attrs.details["data"].payloads[0].data)
            done = data["complete_time"]
            found.append((result, datetime.fromtimestamp(done["seconds"] + done["nanos"] / 1e9, UTC)))
    return found


@pytest.mark.timeout(300)
async def test_an_overflow_specialist_takes_the_callback_only_after_the_steps_delay(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    client, call_id, task_queue = dev_env.client, f"call-{uuid.uuid4()}", f"tq-{uuid.uuid4()}"
    policy = widening_policy(tmp_path)
    stop = asyncio.Event()
    async with (
        techcorp_routing(database_url, seed=False, policy=policy) as routing,
        serve_standin(VapiStandin(api_key=VAPI_KEY)) as vapi,
    ):
        stub = routing.stub
        await add_agent(stub, "tara", "technical", pb.AGENT_STATUS_BUSY)
        await add_agent(stub, "eve", "enterprise", pb.AGENT_STATUS_AVAILABLE)
        edge_settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            routing_deadline_ms=5000,
            database_url=database_url,
            temporal_address=client.service_client.config.target_host,
            task_queue=task_queue,
            relay_poll_seconds=0.5,
            policy=policy,
        )
        worker_config = worker_settings(
            routing.address, vapi, f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}", task_queue
        )
        async with running_edge(edge_settings) as edge:
            answered = await edge.post(escalation(call_id))
            assert answered.status_code == 200
            decision = (await stub.GetDecision(pb.GetDecisionRequest(call_id=call_id))).decision
            assert (decision.kind, decision.team_id) == (pb.DECISION_KIND_CALLBACK, "technical")
            listed = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
            queued_at = listed.callbacks[0].enqueued_at.ToDatetime(tzinfo=UTC)

            worker = asyncio.create_task(run_worker(worker_config, stop=stop, client=client))
            try:
                handle = client.get_workflow_handle(callback_workflow_id(call_id))

                async def started() -> bool:
                    try:
                        await handle.describe()
                    except RPCError:  # the edge's outbox relay has not started it yet
                        return False
                    return True

                await eventually(started, within=60)
                result = await handle.result(rpc_timeout=timedelta(seconds=120))
                history = await handle.fetch_history()
                described = await handle.describe()
            finally:
                stop.set()
                await asyncio.wait_for(worker, 30)

    assert result["state"] == "connected"
    assert result["agent_id"] == "eve", "the enterprise specialist took the technical callback"
    assert result["widening"] == LABEL
    assert described.typed_search_attributes.get(CALLBACK_WIDENING) == LABEL
    assert [d["assistantOverrides"]["variableValues"]["specialistId"] for d in vapi.dials] == ["eve"]
    recorded = claims(history)
    (first, _), (last, reserved_at) = recorded[0], recorded[-1]
    # eve was free from the start, yet the first claim (before the step) did not take her ...
    assert (first["outcome"], first["widening_step"]) == ("no-specialist-free", 0)
    step_starts = datetime.fromisoformat(first["next_widening_at"])
    assert step_starts == queued_at + DELAY
    # ... the claim that did came once the step had started, and names it
    assert (last["outcome"], last["agent_id"], last["served_team"]) == ("reserved", "eve", "enterprise")
    assert (last["widening_step"], last["widening"]) == (1, LABEL)
    assert reserved_at >= step_starts
