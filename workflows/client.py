"""Client helpers: start the workflows (from the edge's outbox payload dicts or from inputs), and list,
query, cancel, reschedule and complete them (the CLI's `callbacks` and `reviews` commands).

Starts are idempotent: the workflow id comes from the call id, `id_conflict_policy=USE_EXISTING` returns
a running workflow instead of starting a second one, and `id_reuse_policy=REJECT_DUPLICATE` refuses to
start a closed one again; the resulting `WorkflowAlreadyStartedError` means "already done". So the outbox
relay can deliver the same payload as often as it likes:

    result = await start_from_outbox(client, entry.kind, entry.payload, policy=policy)
    await outbox.mark_delivered(entry.id)   # also when result.already_done

A malformed payload raises `InvalidRequest` (the relay should mark it failed, not retry it forever).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from escalade_platform.masking import mask_number
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import Complexity, Policy
from routing_service.domain.phone import is_e164
from workflows.callback import QueueCallbackWorkflow, initial_search_attributes
from workflows.inputs import (
    BusinessHoursInput,
    CallbackStatus,
    EscalationReviewInput,
    QueueCallbackInput,
    RescheduleRequest,
    ReviewStatus,
    callback_workflow_id,
    review_workflow_id,
)
from workflows.review import EscalationReviewWorkflow
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
    "callback_input_from_payload",
    "callback_status",
    "cancel_callback",
    "complete_review",
    "list_callbacks",
    "list_reviews",
    "number_problem",
    "reschedule_callback",
    "review_findings",
    "review_input_from_payload",
    "start_callback",
    "start_from_outbox",
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
    memo: dict[str, Any]


def _text(payload: Mapping[str, Any], key: str, default: str = "") -> str:
    value = payload.get(key, default)
    return value if isinstance(value, str) else default


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


def callback_input_from_payload(
    payload: Mapping[str, Any], policy: Policy | None = None
) -> QueueCallbackInput:
    """The edge's outbox payload (`webhook_edge.translate.callback_payload`) plus the policy's queue knobs."""
    call_id = _text(payload, "call_id")
    number = _text(payload, "caller_number") or _text(payload, "customer_number")
    team_id = _text(payload, "team_id")
    problems = [
        (name, "required")
        for name, value in (("call_id", call_id), ("caller_number", number), ("team_id", team_id))
        if not value
    ]
    if problems:
        raise InvalidRequest("invalid callback payload", problems)
    priority = payload.get("priority", 0)
    data = QueueCallbackInput(
        call_id=call_id,
        customer_number=number,
        masked_number=mask_number(number),
        team_id=team_id,
        customer_number_problem=number_problem(number),
        tier=_text(payload, "tier"),
        category=_text(payload, "issue_category") or _text(payload, "category"),
        complexity=_text(payload, "effective_complexity") or _text(payload, "complexity"),
        priority=priority if isinstance(priority, int) else 0,
        context=_text(payload, "customer_context") or _text(payload, "context"),
        reason=_text(payload, "escalation_reason") or _text(payload, "reason"),
        decision_id=_text(payload, "decision_id"),
        business_hours=_hours(policy, team_id),
        first_message=_text(payload, "first_message"),
    )
    if policy is not None:
        queue = policy.queue
        data.max_attempts = queue.max_attempts
        data.retry_spacing_seconds = int(queue.retry_spacing.total_seconds())
        data.reservation_hold_seconds = int(queue.reservation_hold.total_seconds())
        data.expires_after_seconds = int(queue.callback_ttl.total_seconds())
    return data


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def review_input_from_payload(
    payload: Mapping[str, Any], policy: Policy | None = None
) -> EscalationReviewInput:
    """The edge's outbox payload (`webhook_edge.translate.review_payload`) plus the policy's review knobs."""
    call_id = _text(payload, "call_id")
    if not call_id:
        raise InvalidRequest("invalid review payload", [("call_id", "required")])
    transfers = payload.get("transfers")
    statuses = [
        t["status"]
        for t in (transfers if isinstance(transfers, list) else [])
        if isinstance(t, dict) and isinstance(t.get("status"), str) and t["status"]
    ]
    destination = payload.get("destination")
    where = ""
    if isinstance(destination, dict):
        where = str(destination.get("number") or destination.get("sipUri") or "")
    elif isinstance(destination, str):
        where = destination
    outputs = payload.get("structured_outputs")
    structured = {
        str(key): value
        for key, value in (outputs.items() if isinstance(outputs, Mapping) else ())
        if isinstance(value, Mapping)
    }
    duration = payload.get("duration_seconds")
    data = EscalationReviewInput(
        call_id=call_id,
        ended_reason=_text(payload, "ended_reason"),
        started_at=_when(_text(payload, "started_at")),
        ended_at=_when(_text(payload, "ended_at")),
        duration_seconds=float(duration) if isinstance(duration, int | float) else None,
        summary=_text(payload, "summary"),
        transcript=_text(payload, "transcript"),
        transfer_statuses=statuses,
        destination=where,
        final_category=_text(payload, "final_category"),
        structured_outputs={key: dict(value) for key, value in structured.items()},
    )
    if policy is not None:
        critical = [
            keyword
            for rule in policy.complexity.keyword_rules
            if rule.level is Complexity.CRITICAL
            for keyword in rule.keywords
        ]
        if critical:
            data.critical_keywords = critical
        data.team_target_waits = {
            team_id: int(team.target_wait.total_seconds()) for team_id, team in policy.teams.items()
        }
    return data


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


async def start_from_outbox(
    client: Client,
    kind: str,
    payload: Mapping[str, Any],
    *,
    policy: Policy | None = None,
    task_queue: str = DEFAULT_TASK_QUEUE,
) -> StartResult:
    """Deliver one outbox entry (`kind` 'callback' or 'review')."""
    if kind == "callback":
        return await start_callback(
            client, callback_input_from_payload(payload, policy), task_queue=task_queue
        )
    if kind == "review":
        return await start_review(client, review_input_from_payload(payload, policy), task_queue=task_queue)
    raise InvalidRequest("unknown outbox kind", [("kind", f"{kind!r} is neither 'callback' nor 'review'")])


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
                memo=dict(await execution.memo()),
            )
        )
    return rows


async def list_callbacks(
    client: Client, *, state: str | None = None, open_only: bool = False, limit: int = 100
) -> list[WorkflowRow]:
    """Callback workflows, newest first; `state` filters on the CallbackState search attribute."""
    query = "WorkflowType = 'QueueCallbackWorkflow'"
    if state:
        query += f" AND CallbackState = {_quote(state)}"
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


async def complete_review(client: Client, call_id: str, verdict: str, note: str = "") -> ReviewStatus:
    """A supervisor's verdict; returns the completed review."""
    return await _review(client, call_id).execute_update(
        EscalationReviewWorkflow.complete_review, args=[verdict, note]
    )
