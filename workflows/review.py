"""`EscalationReviewWorkflow`: closes the loop after an escalated call (workflow id `review-<call id>`).

1. Gathers the stored decision (`get_decision`). If the call was queued for a callback that is still open,
   waits (up to `callback_wait_seconds`) for the callback workflow's `callback_finished` signal, then reads
   the decision again.
2. Applies the review rules (`workflows.review_rules`: transfer outcomes from `artifact.transfers[].status`,
   the category from `artifact.structuredOutputs`) and records the findings (`record_review`).
3. Counts the escalation in the customer's history and sets their last specialist
   (`record_escalation_outcome`, idempotent per call in routing), and reports the findings to routing
   (`record_review_outcome`: a category found wrong is counted there).
4. When a finding needs a human, waits for the `complete_review(verdict, note)` update. Meanwhile it
   notifies the team's contacts from the policy's `review_notifications` (`notify_supervisor`, schedule in
   `workflows.review_notice`): the first one at once, the next ones as the wait goes on without a verdict;
   each notification runs in the background with its own durable retries and ends in
   `ReviewStatus.notices`; those still retrying when the review is decided are cancelled. Past
   `review_deadline_seconds` it records `overdue` (a warning log and the `escalade_reviews_overdue`
   counter) and keeps waiting until `close_after_seconds` more, then closes as `abandoned`.
5. Reports the verdict to routing (`record_review_outcome`): it counts whether the verdict confirmed or
   overturned the decision, per team and rule, and learns what the policy's `review_learning` allows about
   the customer (`ReviewStatus.outcome` and `learned` say what).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.activities import NotifierActivities, ReviewActivities, RoutingActivities
    from workflows.inputs import (
        CallbackStatus,
        EscalationReviewInput,
        Finding,
        NoticeSent,
        ReviewState,
        ReviewStatus,
        Verdict,
    )
    from workflows.payloads import (
        DecisionParams,
        DecisionView,
        NotifyParams,
        OutcomeParams,
        ReviewOutcomeParams,
        ReviewRecord,
    )
    from workflows.review_notice import NoticeStep, notice_steps, plan_for
    from workflows.review_rules import CURRENT_VERSION, apply_review_rules, final_category, reached_agent
    from workflows.search_attributes import ESCALATION_CATEGORY, ESCALATION_COMPLEXITY, ESCALATION_TIER

__all__ = ["VERDICTS", "EscalationReviewWorkflow"]

VERDICTS = tuple(Verdict)
"""Every `Verdict`, in the order the validator names them."""

RULES_V2 = "review-rules-v2"
"""Patch id: the rules read transfer outcomes as Vapi reports them (`cancelled` is the caller leaving, a
failed attempt followed by a connected one is `transfer_retried`), structured outputs, and flag a callback
not kept. Reviews that judged before it replay with the rules they used (`review_rules` version 1)."""

RULES_V3 = "review-rules-v3"
"""Patch id: the rules flag a callback whose promise routing saw broken (`promise_breached`). Reviews that
judged before it replay with the rules they used (version 2, or 1 before `RULES_V2`)."""


def _rules_version() -> int:
    """The rule set this review judges with: the newest, or the one its history was recorded with."""
    if workflow.patched(RULES_V3):
        return CURRENT_VERSION
    return 2 if workflow.patched(RULES_V2) else 1


REVIEW_OUTCOMES = "review-outcomes-to-routing"
"""Patch id: the review reports its findings, and later its verdict, to routing (`record_review_outcome`):
outcomes per team and rule, and what a verdict teaches about the customer. Reviews that judged before it
replay without these activities."""

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), backoff_coefficient=2.0, maximum_interval=timedelta(minutes=5)
)
"""A notification is retried (durably: the retries are Temporal's) until it is delivered, refused for good
(a 4xx other than 408/429), `NOTIFY_GIVE_UP` has passed, or the review is decided."""
NOTIFY_GIVE_UP = timedelta(hours=24)


@workflow.defn
class EscalationReviewWorkflow:
    """Reviews one escalated call; see the module docstring."""

    @workflow.init
    def __init__(self, data: EscalationReviewInput) -> None:
        self._input = data
        self._status = ReviewStatus(call_id=data.call_id, state=ReviewState.GATHERING)
        self._callback: CallbackStatus | None = None
        self._verdict_given = False
        self._decision: DecisionView | None = None
        self._notices: list[asyncio.Task[None]] = []
        self._reports_outcomes = False
        self._actual_category = ""
        self._verdict_at: datetime | None = None

    @workflow.query
    def findings(self) -> ReviewStatus:
        """State, findings, verdict and deadline of the review."""
        return self._status

    @workflow.signal
    def callback_finished(self, status: CallbackStatus) -> None:
        """Sent by the call's `QueueCallbackWorkflow` when it ends."""
        self._callback = status

    @workflow.update
    async def complete_review(self, verdict: str, note: str = "") -> ReviewStatus:
        """A supervisor's verdict on the findings; ends the review."""
        self._status.verdict = verdict
        self._status.note = note
        self._verdict_at = workflow.now()
        self._verdict_given = True
        await workflow.wait_condition(lambda: self._status.state is ReviewState.COMPLETED)
        return self._status

    @complete_review.validator
    def _validate_complete(self, verdict: str, note: str = "") -> None:
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        if self._verdict_given or self._status.state in (ReviewState.COMPLETED, ReviewState.ABANDONED):
            raise ValueError("the review is already completed")
        if not self._status.state.awaits_verdict:
            raise ValueError(f"the review does not await a verdict (it is {self._status.state})")

    @workflow.run
    async def run(self, data: EscalationReviewInput) -> ReviewStatus:
        """Gather, judge, record, and wait for a human when needed."""
        decision = await self._get_decision()
        self._decision = decision
        if decision is not None:
            self._status.team_id = decision.team_id
            workflow.upsert_search_attributes(
                [
                    ESCALATION_TIER.value_set(decision.tier),
                    ESCALATION_CATEGORY.value_set(decision.issue_category),
                    ESCALATION_COMPLEXITY.value_set(decision.complexity),
                ]
            )
            if decision.callback is not None and decision.callback.state.is_open_ticket:
                self._status.state = ReviewState.WAITING_CALLBACK
                try:
                    await workflow.wait_condition(
                        lambda: self._callback is not None, timeout=data.callback_wait_seconds
                    )
                except TimeoutError:
                    workflow.logger.info("review %s: the callback is still open, judging as is", data.call_id)
                decision = await self._get_decision() or decision
                self._decision = decision
                if self._callback is not None and decision.callback is not None:
                    decision.callback.state = self._callback.state
                    decision.callback.agent_id = decision.callback.agent_id or self._callback.agent_id
                    decision.callback.promise_state = (
                        decision.callback.promise_state or self._callback.promise_state
                    )

        version = _rules_version()
        findings = apply_review_rules(data, decision, now=workflow.now(), version=version)
        self._status.findings = findings
        self._status.agent_id = reached_agent(data, decision, findings)
        if decision is not None:
            await workflow.execute_activity_method(
                RoutingActivities.record_escalation_outcome,
                OutcomeParams(call_id=data.call_id, agent_id=self._status.agent_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        needs_human = any(f.needs_human for f in findings)
        self._status.state = ReviewState.AWAITING_REVIEW if needs_human else ReviewState.RECORDED
        workflow.logger.info(
            "review %s: %s", data.call_id, ", ".join(f.rule for f in findings) or "no findings"
        )
        await self._record()
        if decision is not None and workflow.patched(REVIEW_OUTCOMES):
            self._reports_outcomes = True
            self._actual_category = final_category(data) if version >= 2 else data.final_category
            await self._report_outcome(verdict="")
        if needs_human:
            await self._await_verdict(data)
        await workflow.wait_condition(lambda: workflow.all_handlers_finished())
        return self._status

    async def _get_decision(self) -> DecisionView | None:
        try:
            return await workflow.execute_activity_method(
                RoutingActivities.get_decision,
                DecisionParams(call_id=self._input.call_id),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        except ActivityError as exc:
            workflow.logger.error(
                "review %s: reading the decision failed: %s", self._input.call_id, exc.cause
            )
            return None

    async def _await_verdict(self, data: EscalationReviewInput) -> None:
        started = workflow.now()
        deadline = started + timedelta(seconds=data.review_deadline_seconds)
        close_at = deadline + timedelta(seconds=data.close_after_seconds)
        self._status.deadline = deadline
        steps = notice_steps(plan_for(data, self._status.team_id), data.review_deadline_seconds)
        try:
            while not self._verdict_given:
                now = workflow.now()
                if not self._status.overdue and now >= deadline:
                    await self._mark_overdue(data)
                    continue  # a verdict may have come meanwhile; escalations go out as `overdue`
                while steps and started + timedelta(seconds=steps[0].after_seconds) <= now:
                    self._start_notice(steps.pop(0), int((now - started).total_seconds()))
                if now >= close_at:
                    self._status.state = ReviewState.ABANDONED
                    await self._record()
                    return
                wakes = [close_at] + ([] if self._status.overdue else [deadline])
                if steps:
                    wakes.append(started + timedelta(seconds=steps[0].after_seconds))
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._verdict_given, timeout=(min(wakes) - now).total_seconds()
                    )
            if self._reports_outcomes:
                await self._report_outcome(verdict=self._status.verdict)
            self._status.state = ReviewState.COMPLETED
            await self._record()
        finally:
            await self._settle_notices()

    async def _report_outcome(self, *, verdict: str) -> None:
        """Tell routing the findings (judged: `verdict` "", even when a verdict came meanwhile) or the verdict
        (once given); a refusal is logged, never fails the review."""
        status = self._status
        params = ReviewOutcomeParams(
            call_id=status.call_id,
            finding_rules=[f.rule for f in status.findings],
            verdict=verdict,
            actual_category=self._actual_category,
            decided_at=self._verdict_at,
        )
        try:
            report = await workflow.execute_activity_method(
                RoutingActivities.record_review_outcome,
                params,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
        except ActivityError as exc:
            cause = exc.cause
            why = str(cause.message if isinstance(cause, ApplicationError) else cause or exc)
            workflow.logger.warning("review %s: routing refused the outcome: %s", status.call_id, why)
            if verdict:
                status.learned = [f"not reported to routing: {why}"]
            return
        if verdict:
            status.outcome = report.outcome
            status.learned = list(report.learned)

    async def _mark_overdue(self, data: EscalationReviewInput) -> None:
        self._status.state = ReviewState.OVERDUE
        self._status.overdue = True
        workflow.logger.warning(
            "review %s is overdue: %d findings unanswered after %s",
            data.call_id,
            len(self._status.findings),
            timedelta(seconds=data.review_deadline_seconds),
        )
        workflow.metric_meter().create_counter(
            "escalade_reviews_overdue", "Reviews that missed their deadline"
        ).add(1, {"team": self._status.team_id or "unknown"})
        await self._record()

    def _start_notice(self, step: NoticeStep, waited_seconds: int) -> None:
        """Send one notification in the background: a receiver that is down for hours must not hold up
        the verdict or the deadline."""
        status = self._status
        params = NotifyParams(
            call_id=status.call_id,
            team_id=status.team_id,
            contact=step.contact,
            step=step.step,
            state=str(status.state),
            findings=[Finding(f.rule, f.detail, f.needs_human) for f in status.findings],
            waited_seconds=waited_seconds,
            deadline=status.deadline,
            decision=self._decision,
        )
        self._notices.append(asyncio.create_task(self._notify(params)))

    async def _notify(self, params: NotifyParams) -> None:
        try:
            result = await workflow.execute_activity_method(
                NotifierActivities.notify_supervisor,
                params,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=NOTIFY_GIVE_UP,
                retry_policy=NOTIFY_RETRY,
            )
            notice = NoticeSent(params.step, params.contact, result.delivered, result.detail, workflow.now())
        except ActivityError as exc:
            cause = exc.cause
            why = str(cause.message if isinstance(cause, ApplicationError) else cause or exc)
            workflow.logger.warning(
                "review %s: notifying %s (step %d) failed: %s",
                params.call_id,
                params.contact,
                params.step,
                why,
            )
            notice = NoticeSent(params.step, params.contact, False, why, workflow.now())
        self._status.notices.append(notice)

    async def _settle_notices(self) -> None:
        """Once the review is decided, notifications still being retried are moot: cancel them."""
        for task in self._notices:
            if not task.done():
                task.cancel()
        for task in self._notices:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _record(self) -> None:
        status = self._status
        await workflow.execute_activity_method(
            ReviewActivities.record_review,
            ReviewRecord(
                call_id=status.call_id,
                state=status.state,
                findings=[Finding(f.rule, f.detail, f.needs_human) for f in status.findings],
                team_id=status.team_id,
                agent_id=status.agent_id,
                verdict=status.verdict,
                note=status.note,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
