"""The review reports its findings and its verdict to routing (`record_review_outcome`), on the
time-skipping test server: the category the call was really about travels with them, the verdict's time
starts what it teaches, the review's status says what routing learned, and a routing that refuses the
report never holds up the verdict."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.workflow.test_review_workflow import review_input, start_review, stored_decision
from tests.workflow.workflow_fakes import FakeReviews, FakeRouting, eventually, new_worker
from workflows.payloads import ReviewOutcomeParams, ReviewOutcomeReport
from workflows.review import EscalationReviewWorkflow

pytestmark = pytest.mark.temporal


def _call(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_a_wrong_category_verdict_reaches_routing_with_the_real_category(
    client: Client, time_env: WorkflowEnvironment
) -> None:
    routing, reviews = FakeRouting(decision=stored_decision()), FakeReviews()
    data = review_input(
        _call("call-wrong"),
        structured_outputs={"o1": {"name": "issue_category", "result": "Billing"}},
    )
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await start_review(client, worker.task_queue, data)

        async def awaiting() -> bool:
            return (await handle.query(EscalationReviewWorkflow.findings)).state == "awaiting-review"

        await eventually(awaiting)
        await time_env.sleep(timedelta(hours=3))
        asked_at = await time_env.get_current_time()
        done = await handle.execute_update(
            EscalationReviewWorkflow.complete_review, args=["wrong-category", "was about an invoice"]
        )
        await handle.result()

    judged, verdict = routing.review_outcomes
    assert (judged.verdict, judged.finding_rules, judged.actual_category) == (
        "",
        ["category_mismatch"],
        "billing",
    )
    assert judged.decided_at is None
    assert (verdict.verdict, verdict.actual_category) == ("wrong-category", "billing")
    assert verdict.decided_at is not None and abs(verdict.decided_at - asked_at) < timedelta(minutes=1)
    assert done.outcome == "overturned" and done.learned == ["preferred team billing"]
    assert reviews.records[-1].verdict == "wrong-category"


async def test_a_review_without_findings_still_reports_once_and_waits_for_nobody(client: Client) -> None:
    routing, reviews = FakeRouting(decision=stored_decision()), FakeReviews()
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        result = await (
            await start_review(client, worker.task_queue, review_input(_call("call-ok")))
        ).result()
    assert result.state == "recorded"
    assert [(p.verdict, p.finding_rules) for p in routing.review_outcomes] == [("", [])]


async def test_no_decision_no_report(client: Client) -> None:
    routing, reviews = FakeRouting(decision=None), FakeReviews()
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await start_review(client, worker.task_queue, review_input(_call("call-none")))

        async def awaiting() -> bool:
            return (await handle.query(EscalationReviewWorkflow.findings)).state == "awaiting-review"

        await eventually(awaiting)
        await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["dismissed", ""])
        await handle.result()
    assert routing.review_outcomes == [], "routing has no decision to count the verdict against"


@dataclass
class RefusingRouting(FakeRouting):
    """Routing that refuses every review outcome for good (an older routing, or a call it never decided)."""

    @activity.defn(name="record_review_outcome")
    async def record_review_outcome(self, params: ReviewOutcomeParams) -> ReviewOutcomeReport:
        self.review_outcomes.append(params)
        raise ApplicationError(
            "UNIMPLEMENTED: record review outcome", type="UNIMPLEMENTED", non_retryable=True
        )


async def test_a_routing_that_refuses_the_report_never_holds_up_the_verdict(client: Client) -> None:
    routing, reviews = RefusingRouting(decision=stored_decision()), FakeReviews()
    data = review_input(
        _call("call-refused"), ended_reason="call.forwarding.no-answer", transfer_statuses=["no-answer"]
    )
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await start_review(client, worker.task_queue, data)

        async def awaiting() -> bool:
            return (await handle.query(EscalationReviewWorkflow.findings)).state == "awaiting-review"

        await eventually(awaiting)
        done = await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["confirmed", ""])
        await handle.result()
    assert done.state == "completed" and done.outcome == ""
    assert done.learned == ["not reported to routing: UNIMPLEMENTED: record review outcome"]
    assert [p.verdict for p in routing.review_outcomes] == ["", "confirmed"]
