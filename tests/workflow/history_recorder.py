"""Records the histories that `test_replay.py` replays. After an intended workflow change (behind
`workflow.patched` for running workflows) run `.venv/bin/python tests/workflow/history_recorder.py` and
commit the JSON.

Each scenario runs on the time-skipping test server with the stand-in activities and writes
`histories/<name>.json`.
"""

from __future__ import annotations

import asyncio
import sys
import sysconfig
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.testing import WorkflowEnvironment

if __name__ == "__main__":  # run as a script: make the `tests` package importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.workflow.workflow_fakes import (
    FakeNotifier,
    FakeReviews,
    FakeRouting,
    FakeVapi,
    callback_input,
    eventually,
    new_worker,
)
from workflows.callback import QueueCallbackWorkflow
from workflows.inputs import (
    BusinessHoursInput,
    EscalationReviewInput,
    NotifyPlanInput,
    QueueCallbackInput,
    RescheduleRequest,
    callback_workflow_id,
    review_workflow_id,
)
from workflows.payloads import ClaimOutcome, DecisionView, DialOutcome
from workflows.review import EscalationReviewWorkflow
from workflows.search_attributes import register_search_attributes

HISTORIES = Path(__file__).with_name("histories")
Handle = WorkflowHandle[Any, Any]
Scenario = Callable[[Client, WorkflowEnvironment], Awaitable[Handle]]


async def callback_to_the_end(
    client: Client, routing: FakeRouting, vapi: FakeVapi, data: QueueCallbackInput
) -> Handle:
    """Start the callback workflow on a worker with these stand-ins and wait until it ends."""
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await client.start_workflow(
            QueueCallbackWorkflow.run,
            data,
            id=callback_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )
        await handle.result()
    return handle


async def review_to_the_end(
    client: Client, routing: FakeRouting, reviews: FakeReviews, data: EscalationReviewInput
) -> Handle:
    """Start the review workflow on a worker with these stand-ins and wait until it ends."""
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await client.start_workflow(
            EscalationReviewWorkflow.run,
            data,
            id=review_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )
        await handle.result()
    return handle


async def callback_signal_then_connected(client: Client, env: WorkflowEnvironment) -> Handle:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.NOT_AT_HEAD, position=2), FakeVapi()
    hours = BusinessHoursInput(timezone="UTC", days=[0, 1, 2, 3, 4, 5, 6], opens="00:00", closes="23:59")
    data = callback_input("replay-callback-connected", business_hours=hours)
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await client.start_workflow(
            QueueCallbackWorkflow.run,
            data,
            id=callback_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )

        async def claimed() -> bool:
            return len(routing.claims) >= 1

        await eventually(claimed)
        at = await env.get_current_time() + timedelta(minutes=30)
        await handle.execute_update(QueueCallbackWorkflow.reschedule, RescheduleRequest(at))
        routing.outcome = ClaimOutcome.RESERVED
        await handle.signal(QueueCallbackWorkflow.specialist_available)
        await handle.result()
    return handle


async def callback_widened_then_connected(client: Client, env: WorkflowEnvironment) -> Handle:
    """Routing reports the next widening step; the workflow claims again when it starts, shows the step,
    and is served by the overflow team's specialist."""
    started = await env.get_current_time()
    routing = FakeRouting(
        outcome=ClaimOutcome.NO_SPECIALIST_FREE,
        clock=env.get_current_time,
        next_widening_at=started + timedelta(minutes=5),
    )
    vapi = FakeVapi()
    data = callback_input("replay-callback-widened")
    async with new_worker(client, routing.activities(), [vapi.place_callback_call]) as worker:
        handle = await client.start_workflow(
            QueueCallbackWorkflow.run,
            data,
            id=callback_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )

        async def claimed() -> bool:
            return len(routing.claims) >= 1

        await eventually(claimed)
        routing.outcome = ClaimOutcome.RESERVED
        routing.widening_step, routing.next_widening_at = 1, None
        routing.widening = "step 1: overflow to team general after 5 min"
        await handle.result()
    return handle


async def callback_unreachable(client: Client, env: WorkflowEnvironment) -> Handle:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), FakeVapi(results=[DialOutcome.NOT_REACHED])
    data = callback_input("replay-callback-unreachable", max_attempts=3)
    return await callback_to_the_end(client, routing, vapi, data)


async def review_completed(client: Client, env: WorkflowEnvironment) -> Handle:
    decision = DecisionView(
        decision_id="dec-r",
        kind="transfer_agent",
        team_id="technical",
        agent_id="agent-ana",
        complexity="advanced",
    )
    routing, reviews = FakeRouting(decision=decision), FakeReviews()
    data = EscalationReviewInput(
        call_id="replay-review-completed",
        ended_reason="call.forwarding.no-answer",
        transfer_statuses=["no-answer"],
        transcript="the service is down",
    )
    async with new_worker(client, routing.activities(), [reviews.record_review]) as worker:
        handle = await client.start_workflow(
            EscalationReviewWorkflow.run,
            data,
            id=review_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )

        async def awaiting() -> bool:
            return (await handle.query(EscalationReviewWorkflow.findings)).state == "awaiting-review"

        await eventually(awaiting)
        await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["confirmed", "noted"])
        await handle.result()
    return handle


async def review_overdue(client: Client, env: WorkflowEnvironment) -> Handle:
    routing, reviews = FakeRouting(decision=None), FakeReviews()
    data = EscalationReviewInput(call_id="replay-review-overdue", close_after_seconds=86_400)
    return await review_to_the_end(client, routing, reviews, data)


async def callback_voicemail_then_reached(client: Client, env: WorkflowEnvironment) -> Handle:
    routing = FakeRouting(outcome=ClaimOutcome.RESERVED)
    vapi = FakeVapi(results=[DialOutcome.NOT_REACHED, DialOutcome.CONNECTED], not_reached_reason="voicemail")
    data = callback_input("replay-callback-voicemail", first_message="Hello from TechCorp about your bill.")
    return await callback_to_the_end(client, routing, vapi, data)


async def callback_number_not_e164(client: Client, env: WorkflowEnvironment) -> Handle:
    routing, vapi = FakeRouting(outcome=ClaimOutcome.RESERVED), FakeVapi()
    data = callback_input(
        "replay-callback-not-e164", customer_number="+0987654321", masked_number="+******4321"
    )
    return await callback_to_the_end(client, routing, vapi, data)


async def review_transfer_retried(client: Client, env: WorkflowEnvironment) -> Handle:
    decision = DecisionView(
        decision_id="dec-t", kind="transfer_agent", team_id="billing", issue_category="billing"
    )
    routing, reviews = FakeRouting(decision=decision), FakeReviews()
    data = EscalationReviewInput(
        call_id="replay-review-retried",
        ended_reason="assistant-forwarded-call",
        transfer_statuses=["no-answer", "connected"],
        structured_outputs={"so-1": {"name": "issue_category", "result": "billing"}},
    )
    return await review_to_the_end(client, routing, reviews, data)


async def review_notified_then_escalated(client: Client, env: WorkflowEnvironment) -> Handle:
    """No verdict ever: the first contact is told at once, the second at the deadline, then it closes."""
    routing, reviews, notifier = FakeRouting(decision=None), FakeReviews(), FakeNotifier()
    data = EscalationReviewInput(
        call_id="replay-review-notified",
        close_after_seconds=86_400,
        default_notify_plan=NotifyPlanInput(contacts=["support-lead", "support-manager"]),
    )
    async with new_worker(
        client, routing.activities(), [reviews.record_review], [notifier.notify_supervisor]
    ) as worker:
        handle = await client.start_workflow(
            EscalationReviewWorkflow.run,
            data,
            id=review_workflow_id(data.call_id),
            task_queue=worker.task_queue,
        )
        await handle.result()
    return handle


SCENARIOS: dict[str, Scenario] = {
    "callback_signal_then_connected": callback_signal_then_connected,
    "callback_unreachable": callback_unreachable,
    "callback_voicemail_then_reached": callback_voicemail_then_reached,
    "callback_number_not_e164": callback_number_not_e164,
    "callback_widened_then_connected": callback_widened_then_connected,
    "review_completed": review_completed,
    "review_overdue": review_overdue,
    "review_transfer_retried": review_transfer_retried,
    "review_notified_then_escalated": review_notified_then_escalated,
}


def write_history(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load_history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


async def record_all(env: WorkflowEnvironment, directory: Path = HISTORIES) -> list[Path]:
    """Run every scenario on a time-skipping environment and write its history as JSON."""
    await register_search_attributes(env.client)
    written = []
    for name, scenario in SCENARIOS.items():
        handle = await scenario(env.client, env)
        history = await handle.fetch_history()
        written.append(write_history(directory / f"{name}.json", history.to_json()))
    return written


async def main() -> None:
    server = str(Path(sysconfig.get_path("scripts")) / "temporal-test-server")
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server) as env:
        for path in await record_all(env):
            print(path)


if __name__ == "__main__":
    asyncio.run(main())
