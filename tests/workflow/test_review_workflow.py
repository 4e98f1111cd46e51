"""EscalationReviewWorkflow on the time-skipping test server: rules applied, history recorded, supervisor
verdicts, the review deadline and the wait for an open callback — days of simulated time in seconds."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from tests.workflow.workflow_fakes import (
    FakeReviews,
    FakeRouting,
    FakeVapi,
    callback_input,
    eventually,
    new_worker,
)
from workflows.callback import QueueCallbackWorkflow
from workflows.inputs import (
    CallbackPhase,
    EscalationReviewInput,
    ReviewStatus,
    callback_workflow_id,
    review_workflow_id,
)
from workflows.payloads import CallbackView, ClaimOutcome, DecisionView, DialOutcome
from workflows.review import EscalationReviewWorkflow

pytestmark = pytest.mark.temporal

Handle = WorkflowHandle[EscalationReviewWorkflow, ReviewStatus]


def stored_decision(**overrides: Any) -> DecisionView:
    values: dict[str, Any] = {
        "decision_id": "dec-1",
        "kind": "transfer_agent",
        "team_id": "technical",
        "agent_id": "agent-ana",
        "agent_name": "Ana",
        "tier": "enterprise",
        "issue_category": "technical",
        "complexity": "advanced",
    }
    values.update(overrides)
    return DecisionView(**values)


def review_input(call_id: str, **overrides: Any) -> EscalationReviewInput:
    values: dict[str, Any] = {
        "call_id": call_id,
        "ended_reason": "assistant-forwarded-call",
        "transfer_statuses": ["connected"],
        "destination": "+15550100110",
        "summary": "401 errors on the batch API",
        "transcript": "User: the batch endpoint returns 401.",
        "review_deadline_seconds": 2 * 86_400,
        "close_after_seconds": 7 * 86_400,
    }
    values.update(overrides)
    return EscalationReviewInput(**values)


async def start_review(client: Client, task_queue: str, data: EscalationReviewInput) -> Handle:
    return await client.start_workflow(
        EscalationReviewWorkflow.run, data, id=review_workflow_id(data.call_id), task_queue=task_queue
    )


def _state_is(handle: Handle, state: str) -> Any:
    async def check() -> bool:
        return (await handle.query(EscalationReviewWorkflow.findings)).state == state

    return check


async def test_review_records_outcome_without_human_when_no_findings(client: Client) -> None:
    routing, reviews = FakeRouting(decision=stored_decision()), FakeReviews()
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        result = await (
            await start_review(client, worker.task_queue, review_input("call-ok-" + _uid()))
        ).result()

    assert (result.state, result.findings) == ("recorded", [])
    assert [(o.agent_id) for o in routing.outcomes] == ["agent-ana"]
    assert [r.state for r in reviews.records] == ["recorded"]


async def test_review_waits_for_verdict_when_transfer_failed(client: Client) -> None:
    routing, reviews = FakeRouting(decision=stored_decision()), FakeReviews()
    data = review_input(
        "call-failed-" + _uid(), ended_reason="call.forwarding.no-answer", transfer_statuses=["no-answer"]
    )
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await start_review(client, worker.task_queue, data)
        await eventually(_state_is(handle, "awaiting-review"))
        status = await handle.query(EscalationReviewWorkflow.findings)
        assert [f.rule for f in status.findings] == ["transfer_failed"]
        assert status.deadline is not None

        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["maybe", "??"])
        done = await handle.execute_update(
            EscalationReviewWorkflow.complete_review, args=["confirmed", "specialist line was unstaffed"]
        )
        result = await handle.result()

    assert done.state == result.state == "completed"
    assert (result.verdict, result.note, result.overdue) == (
        "confirmed",
        "specialist line was unstaffed",
        False,
    )
    assert [o.agent_id for o in routing.outcomes] == [""]  # nobody took the call: no sticky specialist
    assert [r.state for r in reviews.records] == ["awaiting-review", "completed"]


async def test_review_is_overdue_when_no_verdict_before_deadline(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, reviews = FakeRouting(decision=stored_decision(complexity="advanced")), FakeReviews()
    data = review_input("call-overdue-" + _uid(), transcript="User: production is down, this is an outage")
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await start_review(client, worker.task_queue, data)
        await eventually(_state_is(handle, "awaiting-review"))
        await time_env.sleep(timedelta(days=2, hours=1))
        await eventually(_state_is(handle, "overdue"))
        status = await handle.query(EscalationReviewWorkflow.findings)
        assert status.overdue and [f.rule for f in status.findings] == ["critical_not_routed_critical"]

        await handle.execute_update(
            EscalationReviewWorkflow.complete_review, args=["resolved", "keywords added"]
        )
        result = await handle.result()

    assert (result.state, result.overdue) == ("completed", True)
    assert [r.state for r in reviews.records] == ["awaiting-review", "overdue", "completed"]


async def test_review_is_abandoned_when_overdue_review_is_never_completed(client: Client) -> None:
    routing, reviews = FakeRouting(decision=None), FakeReviews()
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        result = await (
            await start_review(client, worker.task_queue, review_input("call-none-" + _uid()))
        ).result()

    assert result.state == "abandoned"
    assert [f.rule for f in result.findings] == ["decision_missing"]
    assert routing.outcomes == []  # nothing to count without a decision
    assert [r.state for r in reviews.records] == ["awaiting-review", "overdue", "abandoned"]


async def test_review_judges_callback_when_callback_workflow_reports_unreachable(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    call_id = "call-cb-" + _uid()
    open_ticket = CallbackView(state=CallbackPhase.WAITING, enqueued_at=await time_env.get_current_time())
    routing = FakeRouting(
        outcome=ClaimOutcome.RESERVED, decision=stored_decision(kind="callback", callback=open_ticket)
    )
    vapi, reviews = FakeVapi(results=[DialOutcome.NOT_REACHED]), FakeReviews()
    async with new_worker(
        client, routing.activities(), [vapi.place_callback_call], [reviews.record_review]
    ) as worker:
        review = await start_review(
            client, worker.task_queue, review_input(call_id, team_target_wait_seconds=86_400)
        )
        await eventually(_state_is(review, "waiting-callback"))
        callback = await client.start_workflow(
            QueueCallbackWorkflow.run,
            callback_input(call_id, max_attempts=2, retry_spacing_seconds=60),
            id=callback_workflow_id(call_id),
            task_queue=worker.task_queue,
        )
        assert (await callback.result()).state == "unreachable"
        await eventually(_state_is(review, "awaiting-review"))
        status = await review.query(EscalationReviewWorkflow.findings)
        await review.execute_update(EscalationReviewWorkflow.complete_review, args=["dismissed", ""])
        await review.result()

    assert [f.rule for f in status.findings] == ["callback_unreachable"]
    assert routing.decision_reads == 2


def _uid() -> str:
    import uuid

    return uuid.uuid4().hex[:8]
