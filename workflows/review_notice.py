"""Review notifications as pure functions: who is told when, and what the webhook receives.

When: a review that needs a person tells its team's first contact as soon as it starts waiting for a
verdict (step 0); step k (k >= 1) tells contact k (the last one again when the list is shorter) once the
review has waited k x `escalate_after` (the policy's, else the review's deadline) without a verdict. There is
always at least one escalation: with a single contact, that contact hears again when the review is overdue.

What: `notice_body` builds the JSON document (`format: json`) or a Slack incoming-webhook message
(`format: slack`) from the review's findings and the decision's explanation (routing's reason, the rule and
the trace), with a link to the workflow in the Temporal UI. The caller appears only masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from escalade_platform.masking import mask_numbers_in_text
from routing_service.domain.review_notifications import NoticeFormat, TeamNotifications
from workflows.inputs import EscalationReviewInput, NotifyPlanInput
from workflows.payloads import NotifyParams

__all__ = [
    "NoticeStep",
    "idempotency_key",
    "notice_body",
    "notice_headline",
    "notice_steps",
    "notify_plan",
    "plan_for",
    "temporal_ui_link",
]

MAX_TRACE_LINES = 20


@dataclass(frozen=True)
class NoticeStep:
    """One notification of the schedule."""

    step: int
    contact: str
    after_seconds: int
    """Since the review started waiting for a verdict."""


def notify_plan(team: TeamNotifications) -> NotifyPlanInput:
    """A team's policy entry as the review input carries it (contact names only, no URLs)."""
    return NotifyPlanInput(
        contacts=[contact.name for contact in team.contacts],
        escalate_after_seconds=int(team.escalate_after.total_seconds()) if team.escalate_after else 0,
    )


def plan_for(data: EscalationReviewInput, team_id: str) -> NotifyPlanInput | None:
    """The team's plan, else the default one; None when nobody is to be told."""
    plan = data.notify_plans.get(team_id, data.default_notify_plan)
    return plan if plan is not None and plan.contacts else None


def notice_steps(plan: NotifyPlanInput | None, review_deadline_seconds: int) -> list[NoticeStep]:
    """Every notification the review sends while it waits for a verdict, in order (see the module
    docstring); empty without a plan."""
    if plan is None or not plan.contacts:
        return []
    every = plan.escalate_after_seconds if plan.escalate_after_seconds > 0 else review_deadline_seconds
    contacts = plan.contacts
    last = max(1, len(contacts) - 1)
    return [
        NoticeStep(step=k, contact=contacts[min(k, len(contacts) - 1)], after_seconds=k * every)
        for k in range(last + 1)
    ]


def temporal_ui_link(ui_url: str, namespace: str, workflow_id: str) -> str:
    """The workflow's page in the Temporal UI: `<ui>/namespaces/<namespace>/workflows/<workflow id>`."""
    return (
        f"{ui_url.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows/{quote(workflow_id, safe='')}"
    )


def idempotency_key(call_id: str, step: int) -> str:
    """The `Idempotency-Key` header: the same for every retry of one notification."""
    return f"review-{call_id}-{step}"


def _waited(seconds: int) -> str:
    return str(timedelta(seconds=seconds)) if seconds else "0:00:00"


def notice_headline(params: NotifyParams) -> str:
    """One line: what happened, to which call and team."""
    rules = ", ".join(f.rule for f in params.findings if f.needs_human) or "findings"
    review = f"Escalade review of call {params.call_id} (team {params.team_id or 'unknown'})"
    if params.step == 0:
        return f"{review} needs a verdict: {rules}"
    return (
        f"{review} still has no verdict after {_waited(params.waited_seconds)} "
        f"(escalation {params.step}): {rules}"
    )


def _decision(params: NotifyParams) -> dict[str, Any] | None:
    d = params.decision
    if d is None:
        return None
    return {
        "decision_id": d.decision_id,
        "kind": d.kind,
        "team_id": d.team_id,
        "agent_id": d.agent_id,
        "tier": d.tier,
        "issue_category": d.issue_category,
        "complexity": d.complexity,
        "rule_id": d.rule_id,
        "reason": mask_numbers_in_text(d.reason),
        "trace": [mask_numbers_in_text(line) for line in d.trace[:MAX_TRACE_LINES]],
        "decided_at": d.decided_at.isoformat() if d.decided_at else None,
    }


def _json_body(params: NotifyParams, link: str, workflow_id: str) -> dict[str, Any]:
    return {
        "event": "review.needs_verdict" if params.step == 0 else "review.escalated",
        "text": notice_headline(params),
        "call_id": params.call_id,
        "caller": params.decision.masked_caller if params.decision else "",
        "team_id": params.team_id,
        "contact": params.contact,
        "step": params.step,
        "review_state": params.state,
        "waited_seconds": params.waited_seconds,
        "deadline": params.deadline.isoformat() if params.deadline else None,
        "findings": [
            {"rule": f.rule, "detail": mask_numbers_in_text(f.detail), "needs_human": f.needs_human}
            for f in params.findings
        ],
        "decision": _decision(params),
        "workflow_id": workflow_id,
        "link": link,
    }


def _slack_body(params: NotifyParams, link: str) -> dict[str, Any]:
    headline = notice_headline(params)
    findings = (
        "\n".join(f"• *{f.rule}*: {mask_numbers_in_text(f.detail)}" for f in params.findings) or "• (none)"
    )
    d = params.decision
    if d is not None:
        why = mask_numbers_in_text(d.reason) or "(no reason recorded)"
        decision = (
            f"*Decision* {d.kind} to team {d.team_id or '?'}"
            + (f" by rule `{d.rule_id}`" if d.rule_id else "")
            + f" ({d.tier or '?'} / {d.issue_category or '?'} / {d.complexity or '?'}): {why}"
        )
        if d.masked_caller:
            decision += f"\nCaller {d.masked_caller}"
    else:
        decision = "*Decision*: routing has none for this call"
    return {
        "text": headline,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Findings*\n{findings}"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": decision}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"<{link}|Open the review in the Temporal UI>"},
            },
        ],
    }


def notice_body(fmt: NoticeFormat, params: NotifyParams, *, link: str, workflow_id: str) -> dict[str, Any]:
    """The webhook's JSON body in the contact's format."""
    if fmt is NoticeFormat.SLACK:
        return _slack_body(params, link)
    return _json_body(params, link, workflow_id)
