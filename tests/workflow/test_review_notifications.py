"""Review notifications end to end on the time-skipping test server: the review workflow, the real
`notify_supervisor` activity (httpx) and a real local HTTP receiver — the first contact told at once, a
failing receiver retried until it takes the notification once, the next contact told when the review is
past its deadline, a permanent refusal not retried, and no request at all for a review without findings."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.review_notifications import (
    NoticeFormat,
    ReviewContact,
    ReviewNotifications,
    TeamNotifications,
)
from routing_service.policy import load_policy
from tests.unit.test_policy_loader import mutated
from tests.workflow.routing_standin import RoutingStandin, serve
from tests.workflow.webhook_receiver import WebhookReceiver, running_receiver
from tests.workflow.workflow_fakes import FakeReviews, FakeRouting, eventually, new_worker
from workflows import client as helpers
from workflows.activities import NotifierActivities
from workflows.inputs import (
    EscalationReviewInput,
    NotifyPlanInput,
    ReviewStatus,
    Verdict,
    review_workflow_id,
)
from workflows.payloads import DecisionView, NotifyParams
from workflows.review import EscalationReviewWorkflow
from workflows.settings import WorkerSettings
from workflows.worker import run_worker

pytestmark = pytest.mark.temporal

UI = "http://temporal-ui.test:8233"
Handle = WorkflowHandle[EscalationReviewWorkflow, ReviewStatus]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def decision() -> DecisionView:
    return DecisionView(
        decision_id="dec-7",
        kind="transfer_agent",
        team_id="technical",
        agent_id="agent-ana",
        tier="enterprise",
        issue_category="technical",
        complexity="advanced",
        rule_id="enterprise-technical",
        reason="enterprise technical advanced -> technical (Ana reserved)",
        trace=["rule enterprise-technical: matched (tier enterprise)"],
        masked_caller="+1******0142",
    )


def contacts(receiver: WebhookReceiver, *, lead: NoticeFormat = NoticeFormat.JSON) -> ReviewNotifications:
    team = TeamNotifications(
        contacts=(
            ReviewContact(name="tech-lead", url=f"{receiver.url}/lead", format=lead),
            ReviewContact(name="manager", url=f"{receiver.url}/manager", format=NoticeFormat.SLACK),
        )
    )
    return ReviewNotifications(teams=MappingProxyType({"technical": team}))


def failed_transfer(call_id: str, **overrides: Any) -> EscalationReviewInput:
    values: dict[str, Any] = {
        "call_id": call_id,
        "ended_reason": "call.forwarding.no-answer",
        "transfer_statuses": ["no-answer"],
        "review_deadline_seconds": 2 * 86_400,
        "close_after_seconds": 7 * 86_400,
        "notify_plans": {"technical": NotifyPlanInput(contacts=["tech-lead", "manager"])},
    }
    values.update(overrides)
    return EscalationReviewInput(**values)


def notifier(http: httpx.AsyncClient, lookup: Callable[[], ReviewNotifications]) -> list[Any]:
    return [NotifierActivities(http, lookup, ui_url=UI).notify_supervisor]


async def start(client: Client, task_queue: str, data: EscalationReviewInput) -> Handle:
    return await client.start_workflow(
        EscalationReviewWorkflow.run, data, id=review_workflow_id(data.call_id), task_queue=task_queue
    )


def notices(handle: Handle, count: int) -> Callable[[], Any]:
    async def check() -> bool:
        return len((await handle.query(EscalationReviewWorkflow.findings)).notices) >= count

    return check


async def test_review_with_findings_notifies_first_contact_once_with_explanation_and_link(
    client: Client, http: httpx.AsyncClient
) -> None:
    call_id = "call-notify-" + uuid.uuid4().hex[:8]
    routing, reviews = FakeRouting(decision=decision()), FakeReviews()
    with running_receiver() as receiver:
        lookup = lambda: contacts(receiver)  # noqa: E731
        async with new_worker(
            client, routing.activities(), [reviews.record_review], notifier(http, lookup)
        ) as worker:
            handle = await start(client, worker.task_queue, failed_transfer(call_id))
            await eventually(notices(handle, 1))
            await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["confirmed", ""])
            result = await handle.result()

    assert [r.path for r in receiver.received] == ["/lead"]
    sent = receiver.received[0]
    assert sent.headers["idempotency-key"] == f"review-{call_id}-0"
    assert sent.headers["content-type"] == "application/json"
    body = sent.body
    assert body["event"] == "review.needs_verdict"
    assert (body["call_id"], body["team_id"], body["contact"], body["step"]) == (
        call_id,
        "technical",
        "tech-lead",
        0,
    )
    assert body["caller"] == "+1******0142"
    assert [f["rule"] for f in body["findings"]] == ["transfer_failed"]
    assert body["decision"]["reason"] == "enterprise technical advanced -> technical (Ana reserved)"
    assert body["decision"]["rule_id"] == "enterprise-technical"
    assert body["decision"]["trace"] == ["rule enterprise-technical: matched (tier enterprise)"]
    assert body["link"] == f"{UI}/namespaces/default/workflows/review-{call_id}"
    assert body["text"].startswith(f"Escalade review of call {call_id} (team technical) needs a verdict")
    assert [(n.step, n.contact, n.delivered, n.detail) for n in result.notices] == [
        (0, "tech-lead", True, "HTTP 200")
    ]
    assert result.state == "completed"


async def test_failing_receiver_is_retried_until_it_takes_the_notification_once(
    client: Client, http: httpx.AsyncClient
) -> None:
    call_id = "call-retry-" + uuid.uuid4().hex[:8]
    routing, reviews = FakeRouting(decision=decision()), FakeReviews()
    with running_receiver(lead=[500, 503]) as receiver:
        lookup = lambda: contacts(receiver)  # noqa: E731
        async with new_worker(
            client, routing.activities(), [reviews.record_review], notifier(http, lookup)
        ) as worker:
            handle = await start(client, worker.task_queue, failed_transfer(call_id))
            await eventually(notices(handle, 1), within=30)
            status = await handle.query(EscalationReviewWorkflow.findings)
            await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["dismissed", ""])
            await handle.result()

    tries = receiver.to("/lead")
    assert len(tries) == 3  # 500, 503, then 200
    assert {t.headers["idempotency-key"] for t in tries} == {f"review-{call_id}-0"}
    assert tries[0].body == tries[-1].body
    assert [(n.contact, n.delivered) for n in status.notices] == [("tech-lead", True)]
    assert receiver.to("/manager") == []


async def test_verdict_cancels_a_notification_still_being_retried(
    client: Client, http: httpx.AsyncClient
) -> None:
    call_id = "call-moot-" + uuid.uuid4().hex[:8]
    routing, reviews = FakeRouting(decision=decision()), FakeReviews()
    with running_receiver(lead=[500] * 1000) as receiver:
        lookup = lambda: contacts(receiver)  # noqa: E731
        async with new_worker(
            client, routing.activities(), [reviews.record_review], notifier(http, lookup)
        ) as worker:
            handle = await start(client, worker.task_queue, failed_transfer(call_id))

            async def tried_twice() -> bool:
                return len(receiver.to("/lead")) >= 2

            await eventually(tried_twice, within=30)
            await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["confirmed", ""])
            result = await handle.result()

    assert result.state == "completed"
    [notice] = result.notices
    assert (notice.contact, notice.delivered) == ("tech-lead", False)
    assert "cancel" in notice.detail.lower()


async def test_review_past_its_deadline_notifies_the_next_contact(
    client: Client, time_env: WorkflowEnvironment, http: httpx.AsyncClient
) -> None:
    call_id = "call-late-" + uuid.uuid4().hex[:8]
    routing, reviews = FakeRouting(decision=decision()), FakeReviews()
    with running_receiver() as receiver:
        lookup = lambda: contacts(receiver)  # noqa: E731
        async with new_worker(
            client, routing.activities(), [reviews.record_review], notifier(http, lookup)
        ) as worker:
            handle = await start(client, worker.task_queue, failed_transfer(call_id))
            await eventually(notices(handle, 1))
            assert receiver.to("/manager") == []
            await time_env.sleep(timedelta(days=2, hours=1))
            await eventually(notices(handle, 2))
            status = await handle.query(EscalationReviewWorkflow.findings)
            await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["resolved", ""])
            result = await handle.result()

    assert status.overdue
    assert [(n.step, n.contact, n.delivered) for n in result.notices] == [
        (0, "tech-lead", True),
        (1, "manager", True),
    ]
    (late,) = receiver.to("/manager")
    assert late.headers["idempotency-key"] == f"review-{call_id}-1"
    slack = late.body
    assert set(slack) == {"text", "blocks"}
    assert "still has no verdict after 2 days" in slack["text"]
    assert "(escalation 1)" in slack["text"]
    texts = [block["text"]["text"] for block in slack["blocks"]]
    assert any("transfer_failed" in text for text in texts)
    assert any("enterprise technical advanced -> technical" in text for text in texts)
    assert any(f"<{UI}/namespaces/default/workflows/review-{call_id}|" in text for text in texts)
    assert len(receiver.to("/lead")) == 1


async def test_permanent_refusal_is_not_retried_and_is_recorded(
    client: Client, http: httpx.AsyncClient
) -> None:
    call_id = "call-refused-" + uuid.uuid4().hex[:8]
    routing, reviews = FakeRouting(decision=decision()), FakeReviews()
    with running_receiver(lead=[404]) as receiver:
        lookup = lambda: contacts(receiver)  # noqa: E731
        async with new_worker(
            client, routing.activities(), [reviews.record_review], notifier(http, lookup)
        ) as worker:
            handle = await start(client, worker.task_queue, failed_transfer(call_id))
            await eventually(notices(handle, 1))
            status = await handle.query(EscalationReviewWorkflow.findings)
            await handle.execute_update(EscalationReviewWorkflow.complete_review, args=["dismissed", ""])
            await handle.result()

    assert len(receiver.to("/lead")) == 1
    (notice,) = status.notices
    assert not notice.delivered
    assert "refused the notification with HTTP 404" in notice.detail
    assert "not retried" in notice.detail


async def test_review_without_findings_sends_nothing(client: Client, http: httpx.AsyncClient) -> None:
    call_id = "call-fine-" + uuid.uuid4().hex[:8]
    routing, reviews = FakeRouting(decision=decision()), FakeReviews()
    with running_receiver() as receiver:
        lookup = lambda: contacts(receiver)  # noqa: E731
        async with new_worker(
            client, routing.activities(), [reviews.record_review], notifier(http, lookup)
        ) as worker:
            data = failed_transfer(
                call_id,
                ended_reason="assistant-forwarded-call",
                transfer_statuses=["connected"],
                destination="+15550100110",
            )
            result = await (await start(client, worker.task_queue, data)).result()

    assert (result.state, result.findings, result.notices) == ("recorded", [], [])
    assert receiver.received == []


def notify_params(contact: str = "tech-lead") -> NotifyParams:
    return NotifyParams(call_id="call-a", team_id="technical", contact=contact, step=0, decision=decision())


@pytest.mark.parametrize("status", [500, 503, 408, 429])
async def test_activity_failure_is_retryable_when_receiver_may_recover(
    http: httpx.AsyncClient, status: int
) -> None:
    with running_receiver(lead=[status]) as receiver:
        acts = NotifierActivities(http, lambda: contacts(receiver), ui_url=UI)
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(acts.notify_supervisor, notify_params())
    assert not caught.value.non_retryable
    assert caught.value.type == "NotifyFailed"
    assert f"answered HTTP {status}" in caught.value.message


async def test_activity_failure_is_retryable_and_hides_the_url_when_nothing_listens(
    http: httpx.AsyncClient,
) -> None:
    with running_receiver() as receiver:
        url = receiver.url
    gone = ReviewNotifications(
        default=TeamNotifications(contacts=(ReviewContact(name="tech-lead", url=f"{url}/secret-token"),))
    )
    acts = NotifierActivities(http, lambda: gone, ui_url=UI)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.notify_supervisor, notify_params())
    assert (caught.value.type, caught.value.non_retryable) == ("NotifyUnreachable", False)
    assert "secret-token" not in caught.value.message


async def test_contact_missing_from_the_workers_policy_fails_permanently(http: httpx.AsyncClient) -> None:
    with running_receiver() as receiver:
        acts = NotifierActivities(http, lambda: contacts(receiver), ui_url=UI)
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(acts.notify_supervisor, notify_params("someone-else"))
    assert (caught.value.type, caught.value.non_retryable) == ("NotifyContactUnknown", True)
    assert "'someone-else' of team 'technical' is not in the worker's policy file" in caught.value.message
    assert receiver.received == []


async def test_contact_whose_url_variable_is_set_is_notified_and_unset_is_skipped(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_receiver() as receiver:
        by_env = ReviewNotifications(
            default=TeamNotifications(
                contacts=(ReviewContact(name="tech-lead", url_env="ESCALADE_TEST_NOTIFY_URL"),)
            )
        )
        acts = NotifierActivities(http, lambda: by_env, ui_url=UI)
        monkeypatch.delenv("ESCALADE_TEST_NOTIFY_URL", raising=False)
        skipped = await ActivityEnvironment().run(acts.notify_supervisor, notify_params())
        monkeypatch.setenv("ESCALADE_TEST_NOTIFY_URL", f"{receiver.url}/lead")
        sent = await ActivityEnvironment().run(acts.notify_supervisor, notify_params())

    assert (skipped.delivered, skipped.detail) == (
        False,
        "skipped: ESCALADE_TEST_NOTIFY_URL is not set on the worker",
    )
    assert (sent.delivered, sent.detail) == (True, "HTTP 200")
    assert [r.path for r in receiver.received] == ["/lead"]


async def test_run_worker_notifies_the_contact_its_policy_file_names_on_the_dev_server(
    dev_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped path: the review input prepared from a policy file, started on a Temporal dev server,
    run by `run_worker` (routing over gRPC, the contact's URL from the worker's environment)."""
    client = dev_env.client
    call_id = f"call-{uuid.uuid4()}"
    routing = RoutingStandin()  # type: ignore[abstract]  # only the RPCs used; the rest answer UNIMPLEMENTED
    routing.decisions[call_id] = pb.Decision(
        decision_id="dec-9",
        call_id=call_id,
        kind=pb.DECISION_KIND_TRANSFER_TEAM,
        team_id="technical",
        tier="enterprise",
        issue_category="technical",
        effective_complexity=pb.COMPLEXITY_ADVANCED,
        rule_id="enterprise-technical",
        reason="enterprise technical -> technical",
        caller_number="+15550100142",
    )
    server, address = await serve(routing)
    policy_path = tmp_path / "policy.yaml"
    section = {"teams": {"technical": {"contacts": [{"name": "tech-lead", "url_env": "ESCALADE_TEST_TECH"}]}}}
    policy_path.write_text(mutated("review_notifications", section))
    task_queue, stop = f"tq-{uuid.uuid4()}", asyncio.Event()
    try:
        with running_receiver(tech=[502]) as receiver:
            monkeypatch.setenv("ESCALADE_TEST_TECH", f"{receiver.url}/tech")
            settings = WorkerSettings(
                task_queue=task_queue,
                routing_address=address,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
                policy=policy_path,
                temporal_ui_url="https://temporal.example.com/",
                worker_metrics_address="",
            )
            worker = asyncio.create_task(run_worker(settings, stop=stop, client=client))
            await helpers.start_follow_up(
                client,
                EscalationReviewInput(
                    call_id=call_id, ended_reason="call.forwarding.no-answer", transfer_statuses=["no-answer"]
                ),
                policy=load_policy(policy_path),
                task_queue=task_queue,
            )

            async def delivered() -> bool:
                return bool((await helpers.review_findings(client, call_id)).notices)

            await eventually(delivered, within=60)
            done = await helpers.complete_review(client, call_id, Verdict.CONFIRMED, "line unstaffed")
            stop.set()
            await asyncio.wait_for(worker, 30)
    finally:
        stop.set()
        await server.stop(None)

    tries = receiver.to("/tech")
    assert len(tries) == 2  # 502, then delivered
    body = tries[-1].body
    assert (
        body["link"]
        == f"https://temporal.example.com/namespaces/{client.namespace}/workflows/review-{call_id}"
    )
    assert (body["caller"], body["decision"]["reason"]) == (
        "+1******0142",
        "enterprise technical -> technical",
    )
    assert [f["rule"] for f in body["findings"]] == ["transfer_failed"]
    assert [(n.contact, n.delivered) for n in done.notices] == [("tech-lead", True)]
