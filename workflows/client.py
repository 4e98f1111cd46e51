"""Client helpers: start the workflows from their inputs, and list, query, cancel, reschedule and complete
them (the CLI's `callbacks` and `reviews` commands).

Starts are idempotent: the workflow id comes from the call id, `id_conflict_policy=USE_EXISTING` returns
a running workflow instead of starting a second one, and `id_reuse_policy=REJECT_DUPLICATE` refuses to
start a closed one again; the resulting `WorkflowAlreadyStartedError` means "already done". So the outbox
relay can deliver the same input as often as it likes:

    result = await start_follow_up(client, data, policy=policy)
    await outbox.mark_delivered(entry.id)   # also when result.already_done

An input no workflow can serve (no call id, no number to call back) raises `InvalidRequest` (the relay
marks it failed instead of retrying it forever).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowHandle
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from escalade_platform.masking import mask_number
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import Complexity, Policy
from routing_service.domain.phone import is_e164
from workflows.callback import QueueCallbackWorkflow, initial_search_attributes
from workflows.inputs import (
    BusinessHoursInput,
    CallbackPhase,
    CallbackStatus,
    EscalationReviewInput,
    QueueCallbackInput,
    RescheduleRequest,
    ReviewStatus,
    Verdict,
    WorkflowInput,
    callback_workflow_id,
    review_workflow_id,
)
from workflows.review import EscalationReviewWorkflow
from workflows.review_notice import notify_plan
from workflows.search_attributes import (
    CALLBACK_STATE,
    ESCALATION_CATEGORY,
    ESCALATION_COMPLEXITY,
    ESCALATION_TIER,
)

__all__ = [
    "DEFAULT_TASK_QUEUE",
    "StartResult",
    "WorkflowRow",
    "callback_status",
    "cancel_callback",
    "complete_review",
    "list_callbacks",
    "list_reviews",
    "number_problem",
    "prepare_callback",
    "prepare_review",
    "reschedule_callback",
    "review_findings",
    "start_callback",
    "start_follow_up",
    "start_review",
]

DEFAULT_TASK_QUEUE = "escalade"


@dataclass(frozen=True, slots=True)
class StartResult:
    workflow_id: str
    already_done: bool
    """True when a workflow with this id had already run to completion (nothing was started)."""


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    """One workflow as the visibility store lists it."""

    workflow_id: str
    status: str
    started_at: datetime | None
    tier: str
    category: str
    complexity: str
    callback_state: str
    """The `CallbackState` search attribute: a `CallbackPhase` value (empty on reviews)."""
    memo: dict[str, Any]
    """Its memo (masked values only); empty when this client cannot decode it (other payload keys)."""


def _hours(policy: Policy | None, team_id: str) -> BusinessHoursInput | None:
    team = policy.teams.get(team_id) if policy is not None else None
    if team is None or team.business_hours is None:
        return None
    hours = team.business_hours
    return BusinessHoursInput(
        timezone=hours.timezone,
        days=sorted(hours.days),
        opens=hours.opens.isoformat("minutes"),
        closes=hours.closes.isoformat("minutes"),
    )


def number_problem(number: str) -> str:
    """Why `number` cannot be dialled ("" when it is a possible E.164 number), with the number masked."""
    if is_e164(number):
        return ""
    if not re.fullmatch(r"\+[1-9]\d{1,14}", number):
        return f"{mask_number(number)} is not an E.164 number (a '+', the country code and the number)"
    return f"{mask_number(number)} is not a possible number for its country code"


def prepare_callback(data: QueueCallbackInput, policy: Policy | None = None) -> QueueCallbackInput:
    """The callback input as the starter sends it: checked (call id, number and team are required), the
    number judged (`customer_number_problem`, with `phonenumbers`, which the workflow sandbox cannot load),
    and the policy's business hours and queue knobs filled in when a policy is given (else the input's own
    defaults stand). Raises `InvalidRequest` for an input no workflow can serve."""
    problems = [
        (name, "required")
        for name, value in (
            ("call_id", data.call_id),
            ("customer_number", data.customer_number),
            ("team_id", data.team_id),
        )
        if not value
    ]
    if problems:
        raise InvalidRequest("invalid callback input", problems)
    prepared = dataclasses.replace(
        data,
        masked_number=data.masked_number or mask_number(data.customer_number),
        customer_number_problem=number_problem(data.customer_number),
        business_hours=_hours(policy, data.team_id) if policy is not None else data.business_hours,
    )
    if policy is not None:
        queue = policy.queue
        prepared.max_attempts = queue.max_attempts
        prepared.retry_spacing_seconds = int(queue.retry_spacing.total_seconds())
        prepared.reservation_hold_seconds = int(queue.reservation_hold.total_seconds())
        prepared.expires_after_seconds = int(queue.callback_ttl.total_seconds())
    return prepared


def prepare_review(data: EscalationReviewInput, policy: Policy | None = None) -> EscalationReviewInput:
    """The review input as the starter sends it: checked (the call id is required), with the policy's
    critical keywords, per-team target waits and review notification contacts (`notify_plan`) when a policy is
    given. Raises `InvalidRequest`."""
    if not data.call_id:
        raise InvalidRequest("invalid review input", [("call_id", "required")])
    prepared = dataclasses.replace(data)
    if policy is not None:
        critical = [
            keyword
            for rule in policy.complexity.keyword_rules
            if rule.level is Complexity.CRITICAL
            for keyword in rule.keywords
        ]
        if critical:
            prepared.critical_keywords = critical
        prepared.team_target_waits = {
            team_id: int(team.target_wait.total_seconds()) for team_id, team in policy.teams.items()
        }
        notifications = policy.review_notifications
        prepared.notify_plans = {team_id: notify_plan(team) for team_id, team in notifications.teams.items()}
        prepared.default_notify_plan = (
            notify_plan(notifications.default) if notifications.default is not None else None
        )
    return prepared


def _memo_for_callback(data: QueueCallbackInput) -> dict[str, Any]:
    return {"masked_number": data.masked_number, "team_id": data.team_id, "decision_id": data.decision_id}


async def start_callback(
    client: Client, data: QueueCallbackInput, *, task_queue: str = DEFAULT_TASK_QUEUE
) -> StartResult:
    """Start `QueueCallbackWorkflow` once per call id (see the module docstring)."""
    workflow_id = callback_workflow_id(data.call_id)
    try:
        await client.start_workflow(
            QueueCallbackWorkflow.run,
            data,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=initial_search_attributes(data),
            memo=_memo_for_callback(data),
        )
    except WorkflowAlreadyStartedError:
        return StartResult(workflow_id, already_done=True)
    return StartResult(workflow_id, already_done=False)


async def start_review(
    client: Client, data: EscalationReviewInput, *, task_queue: str = DEFAULT_TASK_QUEUE
) -> StartResult:
    """Start `EscalationReviewWorkflow` once per call id."""
    workflow_id = review_workflow_id(data.call_id)
    try:
        await client.start_workflow(
            EscalationReviewWorkflow.run,
            data,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={"ended_reason": data.ended_reason},
        )
    except WorkflowAlreadyStartedError:
        return StartResult(workflow_id, already_done=True)
    return StartResult(workflow_id, already_done=False)


async def start_follow_up(
    client: Client,
    data: WorkflowInput,
    *,
    policy: Policy | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
) -> StartResult:
    """Start the workflow an input is for (the outbox relay's and the reconciler's one path): prepared with
    the policy (`prepare_callback` / `prepare_review`), then started once per call id."""
    if isinstance(data, QueueCallbackInput):
        return await start_callback(client, prepare_callback(data, policy), task_queue=task_queue)
    return await start_review(client, prepare_review(data, policy), task_queue=task_queue)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


async def _list(client: Client, query: str, limit: int) -> list[WorkflowRow]:
    rows = []
    async for execution in client.list_workflows(query, limit=limit):
        attrs: TypedSearchAttributes = execution.typed_search_attributes
        status = execution.status.name.lower() if execution.status is not None else ""
        rows.append(
            WorkflowRow(
                workflow_id=execution.id,
                status=status,
                started_at=execution.start_time,
                tier=attrs.get(ESCALATION_TIER) or "",
                category=attrs.get(ESCALATION_CATEGORY) or "",
                complexity=attrs.get(ESCALATION_COMPLEXITY) or "",
                callback_state=attrs.get(CALLBACK_STATE) or "",
                memo=await _readable_memo(execution),
            )
        )
    return rows


async def _readable_memo(execution: WorkflowExecution) -> dict[str, Any]:
    """The workflow's memo; empty when this client cannot decode it (written encrypted under keys this client
    does not hold, or with no codec at all): one such workflow must not stop the listing of the others."""
    try:
        return dict(await execution.memo())
    except (KeyError, ValueError, RuntimeError):  # unknown encoding; PayloadDecryptionError; decode failure
        return {}


async def list_callbacks(
    client: Client, *, state: CallbackPhase | None = None, open_only: bool = False, limit: int = 100
) -> list[WorkflowRow]:
    """Callback workflows, newest first; `state` filters on the CallbackState search attribute."""
    query = "WorkflowType = 'QueueCallbackWorkflow'"
    if state:
        query += f" AND CallbackState = {_quote(state.value)}"
    if open_only:
        query += " AND ExecutionStatus = 'Running'"
    return await _list(client, query, limit)


async def list_reviews(client: Client, *, open_only: bool = False, limit: int = 100) -> list[WorkflowRow]:
    """Review workflows, newest first; `open_only` keeps the running ones (awaiting a verdict)."""
    query = "WorkflowType = 'EscalationReviewWorkflow'"
    if open_only:
        query += " AND ExecutionStatus = 'Running'"
    return await _list(client, query, limit)


def _callback(client: Client, call_id: str) -> WorkflowHandle[QueueCallbackWorkflow, CallbackStatus]:
    return client.get_workflow_handle_for(QueueCallbackWorkflow.run, callback_workflow_id(call_id))


def _review(client: Client, call_id: str) -> WorkflowHandle[EscalationReviewWorkflow, ReviewStatus]:
    return client.get_workflow_handle_for(EscalationReviewWorkflow.run, review_workflow_id(call_id))


async def callback_status(client: Client, call_id: str) -> CallbackStatus:
    """The `status` query (works on closed workflows too while their history is retained)."""
    return await _callback(client, call_id).query(QueueCallbackWorkflow.status)


async def cancel_callback(client: Client, call_id: str, note: str = "") -> CallbackStatus:
    """Cancel a callback; returns its final status."""
    return await _callback(client, call_id).execute_update(QueueCallbackWorkflow.cancel, note)


async def reschedule_callback(client: Client, call_id: str, at: datetime) -> CallbackStatus:
    """Do not dial before `at`."""
    return await _callback(client, call_id).execute_update(
        QueueCallbackWorkflow.reschedule, RescheduleRequest(at)
    )


async def review_findings(client: Client, call_id: str) -> ReviewStatus:
    """The `findings` query."""
    return await _review(client, call_id).query(EscalationReviewWorkflow.findings)


async def complete_review(client: Client, call_id: str, verdict: Verdict, note: str = "") -> ReviewStatus:
    """A supervisor's verdict; returns the completed review."""
    return await _review(client, call_id).execute_update(
        EscalationReviewWorkflow.complete_review, args=[verdict.value, note]
    )
