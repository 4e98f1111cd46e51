"""Stand-in activities for workflow tests, registered under the real activity names.

`FakeRouting` answers claims from a programmable queue (outcome and position per callback) and records every
call; `FakeVapi` answers dials from a list of outcomes. Tests change their state between signals, the way a
specialist freeing up changes the routing service's answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Replayer, Worker, WorkflowRunner

from workflows.evidence import judge
from workflows.inputs import CallbackPhase, QueueCallbackInput
from workflows.payloads import (
    ClaimOutcome,
    ClaimParams,
    ClaimResult,
    DecisionParams,
    DecisionView,
    DialOutcome,
    DialParams,
    DialResult,
    FinishParams,
    FinishResult,
    NotifyParams,
    NotifyResult,
    OutcomeParams,
    OutcomeResult,
    ReviewOutcomeParams,
    ReviewOutcomeReport,
    ReviewRecord,
)
from workflows.settings import WorkerSettings
from workflows.worker import WORKFLOWS, workflow_runner


@dataclass
class FakeRouting:
    outcome: ClaimOutcome = ClaimOutcome.NO_SPECIALIST_FREE
    position: int = 1
    claims: list[tuple[str, datetime]] = field(default_factory=list)
    """(call id, when) per claim; `when` is `clock()` when given (the test server's skipped time: claims
    are local activities, whose scheduled time is the worker's wall clock), else the scheduled time."""
    clock: Callable[[], Awaitable[datetime]] | None = None
    finished: list[FinishParams] = field(default_factory=list)
    outcomes: list[OutcomeParams] = field(default_factory=list)
    decision: DecisionView | None = None
    decision_reads: int = 0
    widening_step: int = 0
    """What every claim reports of the team's widening (routing's policy `widening`), as routing would."""
    widening: str = ""
    next_widening_at: datetime | None = None
    review_outcomes: list[ReviewOutcomeParams] = field(default_factory=list)
    learned: list[str] = field(default_factory=lambda: ["preferred team billing"])

    @activity.defn(name="claim_callback")
    async def claim_callback(self, params: ClaimParams) -> ClaimResult:
        at = await self.clock() if self.clock is not None else activity.info().current_attempt_scheduled_time
        self.claims.append((params.call_id, at))
        if self.outcome == ClaimOutcome.RESERVED:
            return ClaimResult(
                outcome=ClaimOutcome.RESERVED,
                state=CallbackPhase.RESERVED,
                agent_id="agent-ana",
                agent_name="Ana",
                agent_number="+15550100111",
                reserved_until=datetime.now(UTC) + timedelta(seconds=params.hold_seconds),
                widening_step=self.widening_step,
                widening=self.widening,
                next_widening_at=self.next_widening_at,
            )
        return ClaimResult(
            outcome=self.outcome,
            state=CallbackPhase.WAITING,
            position=self.position,
            widening_step=self.widening_step,
            widening=self.widening,
            next_widening_at=self.next_widening_at,
        )

    @activity.defn(name="finish_callback")
    async def finish_callback(self, params: FinishParams) -> FinishResult:
        self.finished.append(params)
        return FinishResult(state=params.state)

    @activity.defn(name="get_decision")
    async def get_decision(self, params: DecisionParams) -> DecisionView | None:
        self.decision_reads += 1
        return self.decision

    @activity.defn(name="record_escalation_outcome")
    async def record_escalation_outcome(self, params: OutcomeParams) -> OutcomeResult:
        self.outcomes.append(params)
        return OutcomeResult(counted=True, previous_escalations=len(self.outcomes))

    @activity.defn(name="record_review_outcome")
    async def record_review_outcome(self, params: ReviewOutcomeParams) -> ReviewOutcomeReport:
        self.review_outcomes.append(params)
        if not params.verdict:
            return ReviewOutcomeReport()
        return ReviewOutcomeReport(outcome="overturned", verdict_recorded=True, learned=list(self.learned))

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.claim_callback,
            self.finish_callback,
            self.get_decision,
            self.record_escalation_outcome,
            self.record_review_outcome,
        ]


@dataclass
class FakeVapi:
    results: list[DialOutcome] = field(default_factory=lambda: [DialOutcome.CONNECTED])
    dials: list[tuple[DialParams, datetime]] = field(default_factory=list)
    not_reached_reason: str = "customer-did-not-answer"

    @activity.defn(name="place_callback_call")
    async def place_callback_call(self, params: DialParams) -> DialResult:
        self.dials.append((params, activity.info().current_attempt_scheduled_time))
        outcome = self.results[min(len(self.dials), len(self.results)) - 1]
        reason = "customer-ended-call" if outcome == DialOutcome.CONNECTED else self.not_reached_reason
        evidence = judge(reason, spoke=outcome == DialOutcome.CONNECTED)
        return DialResult(
            outcome=outcome,
            vapi_call_id=f"vapi-{len(self.dials)}",
            ended_reason=reason,
            detail=evidence.detail,
        )


@dataclass
class FakeReviews:
    records: list[ReviewRecord] = field(default_factory=list)

    @activity.defn(name="record_review")
    async def record_review(self, record: ReviewRecord) -> None:
        self.records.append(record)


@dataclass
class FakeNotifier:
    """Takes every notification (the real activity against a real receiver is in
    test_review_notifications.py)."""

    sent: list[NotifyParams] = field(default_factory=list)

    @activity.defn(name="notify_supervisor")
    async def notify_supervisor(self, params: NotifyParams) -> NotifyResult:
        self.sent.append(params)
        return NotifyResult(delivered=True, detail="HTTP 200")


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Poll `check` until it holds (no fixed sleeps standing in for synchronisation)."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


def strict_sandbox() -> WorkflowRunner:
    """Temporal's strict sandbox, as `ESCALADE_WORKFLOW_SANDBOX=strict` selects it: workflow modules are
    re-imported for every run and non-deterministic calls are rejected. The workers and the replayer of these
    tests run under it, so the workflow code the default `passthrough` worker runs has passed its checks."""
    return workflow_runner(WorkerSettings(workflow_sandbox="strict"))


def new_worker(
    client: Client, *activity_sets: Sequence[Callable[..., Any]], workflows: Sequence[type] = WORKFLOWS
) -> Worker:
    """A worker on a fresh uuid task queue with both workflows (or `workflows`) and the given stand-ins, in
    the strict sandbox."""
    return Worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        workflows=workflows,
        activities=[a for group in activity_sets for a in group],
        workflow_runner=strict_sandbox(),
    )


def new_replayer(workflows: Sequence[type] = WORKFLOWS) -> Replayer:
    """A replayer of both workflows (or `workflows`), in the strict sandbox."""
    return Replayer(workflows=workflows, workflow_runner=strict_sandbox())


def callback_input(call_id: str | None = None, **overrides: Any) -> QueueCallbackInput:
    """A billing callback for a standard customer; `overrides` replace any field."""
    values: dict[str, Any] = {
        "call_id": call_id or f"call-{uuid.uuid4()}",
        "customer_number": "+15550100003",
        "masked_number": "+1*******0003",
        "team_id": "billing",
        "tier": "standard",
        "category": "billing",
        "complexity": "intermediate",
        "priority": 10,
        "context": "duplicate charge on the November invoice",
        "reason": "No billing specialist was free; the caller accepted a callback.",
        "decision_id": "dec-1",
    }
    values.update(overrides)
    return QueueCallbackInput(**values)
