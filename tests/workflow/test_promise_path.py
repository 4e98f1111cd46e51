"""A callback promise through the real edge, routing service, worker and Temporal dev server (SQLite and
PostgreSQL): Vapi's transfer request finds the technical team busy, the edge's outbox starts the callback
workflow, the workflow shows routing's promise as search attributes (`CallbackPromisedBy`,
`CallbackPromiseState`), wakes at its deadline, routing records the breach, and the call's review finds
`promise_breached`.

TechCorp's policy with a 12-second default handle time, so the promise is due seconds after the call."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from tests.edge.edge_support import SECRET, Edge, load_fixture, running_edge
from tests.support.routing import TECHCORP_POLICY, techcorp_routing
from tests.workflow.callback_support import VAPI_KEY, Stub, worker_settings
from tests.workflow.workflow_fakes import eventually
from webhook_edge.settings import EdgeSettings
from workflows import client as helpers
from workflows.inputs import callback_workflow_id
from workflows.search_attributes import CALLBACK_PROMISE_STATE, CALLBACK_PROMISED_BY
from workflows.worker import run_worker

pytestmark = pytest.mark.temporal

PREMIUM = "transfer-destination-request.premium-technical-advanced.json"


@pytest.fixture
def quick_policy(tmp_path: Path) -> Path:
    """TechCorp with 12 s default handle time and 1 s per callback ahead: promises of a few seconds."""
    text = TECHCORP_POLICY.read_text()
    assert "default_handle_time_minutes: 8" in text and "min_callback_minutes: 2" in text
    text = text.replace("default_handle_time_minutes: 8", "default_handle_time_minutes: 0.2")
    text = text.replace("min_callback_minutes: 2", "min_callback_minutes: 0.02")
    path = tmp_path / "techcorp-quick.yaml"
    path.write_text(text)
    return path


async def promise_attributes(client: Client, call_id: str) -> tuple[str, object]:
    described = await client.get_workflow_handle(callback_workflow_id(call_id)).describe()
    attributes = described.typed_search_attributes
    return attributes.get(CALLBACK_PROMISE_STATE) or "", attributes.get(CALLBACK_PROMISED_BY)


@asynccontextmanager
async def stack(
    database_url: str, env: WorkflowEnvironment, policy: Path, tmp_path: Path
) -> AsyncIterator[tuple[Edge, Stub]]:
    task_queue = f"tq-{uuid.uuid4()}"
    stop = asyncio.Event()
    async with (
        techcorp_routing(database_url, policy=policy) as routing,
        serve_standin(VapiStandin(api_key=VAPI_KEY)) as vapi,
    ):
        for agent_id in ("tech-1", "tech-2"):
            await routing.stub.SetAgentStatus(
                pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY)
            )
        edge_settings = EdgeSettings(
            vapi_secret=SecretStr(SECRET),
            routing_address=routing.address,
            routing_deadline_ms=5000,
            database_url=database_url,
            temporal_address=env.client.service_client.config.target_host,
            task_queue=task_queue,
            relay_poll_seconds=0.2,
            policy=policy,
        )
        worker_config = worker_settings(
            routing.address, vapi, f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}", task_queue, policy=policy
        )
        async with running_edge(edge_settings) as edge:
            worker = asyncio.create_task(run_worker(worker_config, stop=stop, client=env.client))
            try:
                yield edge, routing.stub
            finally:
                stop.set()
                await asyncio.wait_for(worker, 30)


@pytest.mark.timeout(180)
async def test_a_broken_promise_shows_on_the_workflow_and_in_the_review(
    dev_env: WorkflowEnvironment, database_url: str, quick_policy: Path, tmp_path: Path
) -> None:
    client, call_id = dev_env.client, f"promise-{uuid.uuid4()}"
    async with stack(database_url, dev_env, quick_policy, tmp_path) as (edge, stub):
        # A dialable caller (the fixture's demo number is not a possible one: never dialled, ended at once).
        request = json.loads(json.dumps(load_fixture(PREMIUM)).replace("+1111111111", "+14155550123"))
        request["message"]["call"]["id"] = call_id
        assert (await edge.post(request)).status_code == 200
        decision = (await stub.GetDecision(pb.GetDecisionRequest(call_id=call_id))).decision
        assert decision.kind == pb.DECISION_KIND_CALLBACK
        promised_by = decision.callback.promised_by.ToDatetime(tzinfo=UTC)
        report = copy.deepcopy(load_fixture("end-of-call-report.escalated.json"))
        report["message"]["call"]["id"] = call_id
        assert (await edge.post(report)).status_code == 200

        async def shows_the_promise() -> bool:
            try:
                state, due = await promise_attributes(client, call_id)
            except Exception:  # not started yet
                return False
            return bool(state) and due == promised_by

        await eventually(shows_the_promise, within=60)

        async def breached() -> bool:
            return (await promise_attributes(client, call_id))[0] == "breached"

        await eventually(breached, within=60)
        status = await helpers.callback_status(client, call_id)
        assert status.promise_state == "breached" and status.promised_by == promised_by
        listed = await stub.ListCallbacks(pb.ListCallbacksRequest(team_id="technical"))
        [ticket] = [t for t in listed.callbacks if t.call_id == call_id]
        assert ticket.promise_state == pb.PROMISE_STATE_BREACHED

        await helpers.cancel_callback(client, call_id, "the customer no longer needs it")

        async def judged() -> bool:
            try:
                review = await helpers.review_findings(client, call_id)
            except Exception:  # the review has not started yet
                return False
            return bool(review.findings)

        await eventually(judged, within=60)
        review = await helpers.review_findings(client, call_id)
    rules = {finding.rule: finding.detail for finding in review.findings}
    assert "promise_breached" in rules, rules
    assert f"{promised_by:%Y-%m-%d %H:%M}" in rules["promise_breached"]
