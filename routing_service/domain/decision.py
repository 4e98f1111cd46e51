"""Decisions: rendering the policy's templates and building the `Decision` for each outcome.

Templates use `{name}` for the fields in `TEMPLATE_FIELDS`; Vapi's own placeholders such as
`{{transcript}}` pass through untouched, as does any unknown `{name}` (the policy loader rejects unknown
names, so that only happens with hand-built policies). `render` never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from routing_service.domain.models import (
    Agent,
    CallbackTicket,
    Complexity,
    Decision,
    DecisionKind,
    Destination,
    EscalationRequest,
    Policy,
    SummaryMessage,
    Team,
    TraceStep,
    TransferMode,
    TransferTemplate,
)
from routing_service.domain.phone import normalize_caller
from routing_service.domain.queueing import wait_minutes, wait_sentence

__all__ = [
    "CONFIRM_MESSAGE_FIELDS",
    "TEMPLATE_FIELDS",
    "Rendered",
    "callback_decision",
    "callback_first_message",
    "confirm_category_decision",
    "fallback_decision",
    "placeholders",
    "render",
    "render_transfer",
    "specialist_decision",
    "team_line_decision",
    "template_values",
]

TEMPLATE_FIELDS: frozenset[str] = frozenset(
    {
        "issue_category",
        "complexity_level",
        "claimed_complexity_level",
        "customer_context",
        "escalation_reason",
        "tier",
        "account_name",
        "team_name",
        "agent_name",
        "estimated_wait_minutes",
        "opens_at",
        "queue_position",
    }
)
"""The names a policy template may use."""
CONFIRM_MESSAGE_FIELDS: frozenset[str] = TEMPLATE_FIELDS | {"other_categories"}
"""What the uncertainty section's confirm message may name: the usual fields and the other categories the
call may be about ("billing or account")."""

_TOKEN = re.compile(r"\{\{[^{}]*\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(template: str, values: Mapping[str, str]) -> str:
    """Replace `{name}` for the names in `values`; keep `{{x}}` and unknown names as they are."""
    parts = _parts(template)
    if len(parts) == 1:
        return template  # no placeholder
    out = []
    for text, name in parts:
        out.append(str(values[name]) if name is not None and name in values else text)
    return "".join(out)


@lru_cache(maxsize=1024)
def _parts(template: str) -> tuple[tuple[str, str | None], ...]:
    """`template` cut at its `{name}` placeholders, once per template (policies render the same few on
    every decision): (text, None) for what is kept as written, `{{x}}` included, and ("{name}", name) for a
    placeholder, kept as written when `values` has no such name."""
    parts: list[tuple[str, str | None]] = []
    kept = 0
    for match in _TOKEN.finditer(template):
        name = match.group(1)
        if name is None:
            continue  # `{{x}}` stays in the surrounding text
        parts.append((template[kept : match.start()], None))
        parts.append((match.group(0), name))
        kept = match.end()
    parts.append((template[kept:], None))
    return tuple(parts)


def placeholders(template: str) -> list[str]:
    """The `{name}` placeholders used in `template`, in order (Vapi's `{{x}}` ones excluded)."""
    return [m.group(1) for m in _TOKEN.finditer(template) if m.group(1) is not None]


def template_values(
    request: EscalationRequest,
    *,
    tier: str,
    category: str,
    complexity: Complexity,
    account_name: str = "",
    team: Team | None = None,
    agent: Agent | None = None,
    estimated_wait: timedelta | None = None,
    opens_at: str = "",
    queue_position: int = 0,
) -> dict[str, str]:
    """The values of every `TEMPLATE_FIELDS` name for one call (empty strings where unknown)."""
    claimed = request.claimed_complexity
    return {
        "issue_category": category,
        "complexity_level": complexity.label,
        "claimed_complexity_level": claimed.label if claimed is not None else "",
        "customer_context": request.customer_context,
        "escalation_reason": request.escalation_reason,
        "tier": tier,
        "account_name": account_name,
        "team_name": team.display_name if team is not None else "",
        "agent_name": agent.display_name if agent is not None else "",
        "estimated_wait_minutes": str(wait_minutes(estimated_wait)) if estimated_wait is not None else "",
        "opens_at": opens_at,
        "queue_position": str(queue_position) if queue_position > 0 else "",
    }


@dataclass(frozen=True, slots=True)
class Rendered:
    """A transfer template filled for one call."""

    caller_message: str
    transfer_mode: TransferMode
    handoff_message: str
    summary_messages: tuple[SummaryMessage, ...]


def render_transfer(
    template: TransferTemplate, values: Mapping[str, str], *, wait_note: str | None = None
) -> Rendered:
    """Fill a transfer template; `wait_note` (the wait sentence) is appended to the caller message."""
    caller_message = render(template.caller_message, values)
    if wait_note:
        caller_message = f"{caller_message} {wait_note}" if caller_message else wait_note
    return Rendered(
        caller_message=caller_message,
        transfer_mode=template.transfer_mode,
        handoff_message=render(template.handoff_message, values),
        summary_messages=tuple(
            SummaryMessage(role=m.role, content=render(m.content, values)) for m in template.summary_messages
        ),
    )


def team_line_decision(
    policy: Policy,
    request: EscalationRequest,
    *,
    team: Team,
    tier: str,
    category: str,
    complexity: Complexity,
    decision_id: str,
    now: datetime,
    account_name: str = "",
    caller_number: str = "",
    rule_id: str = "",
    trace: Sequence[TraceStep] = (),
    estimated_wait: timedelta | None = None,
) -> Decision:
    """Transfer to the team's own line (the team has no specialists on record)."""
    values = template_values(
        request,
        tier=tier,
        category=category,
        complexity=complexity,
        account_name=account_name,
        team=team,
        estimated_wait=estimated_wait,
    )
    rendered = render_transfer(team.transfer, values, wait_note=wait_sentence(policy.queue, estimated_wait))
    return _decision(
        request,
        rendered,
        kind=DecisionKind.TRANSFER_TEAM,
        destination=team.destination,
        reason=f"rule {rule_id or '(none)'}: team {team.team_id} line",
        team=team,
        tier=tier,
        category=category,
        complexity=complexity,
        decision_id=decision_id,
        now=now,
        caller_number=caller_number,
        rule_id=rule_id,
        trace=trace,
        estimated_wait=estimated_wait,
    )


def specialist_decision(
    policy: Policy,
    request: EscalationRequest,
    *,
    team: Team,
    agent: Agent,
    tier: str,
    category: str,
    complexity: Complexity,
    decision_id: str,
    now: datetime,
    account_name: str = "",
    caller_number: str = "",
    rule_id: str = "",
    trace: Sequence[TraceStep] = (),
) -> Decision:
    """Transfer to a reserved specialist, announced with the team's specialist template."""
    values = template_values(
        request,
        tier=tier,
        category=category,
        complexity=complexity,
        account_name=account_name,
        team=team,
        agent=agent,
    )
    rendered = render_transfer(team.specialist_transfer or team.transfer, values)
    return _decision(
        request,
        rendered,
        kind=DecisionKind.TRANSFER_AGENT,
        destination=agent.destination,
        reason=f"rule {rule_id or '(none)'}: team {team.team_id}, specialist {agent.agent_id} reserved",
        team=team,
        agent=agent,
        tier=tier,
        category=category,
        complexity=complexity,
        decision_id=decision_id,
        now=now,
        caller_number=caller_number,
        rule_id=rule_id,
        trace=trace,
    )


def callback_decision(
    policy: Policy,
    request: EscalationRequest,
    *,
    team: Team,
    tier: str,
    category: str,
    complexity: Complexity,
    decision_id: str,
    now: datetime,
    estimated_wait: timedelta | None,
    ticket: CallbackTicket | None = None,
    account_name: str = "",
    caller_number: str = "",
    rule_id: str = "",
    trace: Sequence[TraceStep] = (),
    opens_at: str = "",
    after_missed: bool = False,
) -> Decision:
    """Transfer to the queue line with the "priority queue" message; the caller gets a callback. For a team
    outside its business hours `opens_at` says when it opens ("Monday at 9:00 AM") and the caller hears the
    policy's closed message instead of a wait in minutes. `after_missed`: the call escalated again after a
    specialist did not take it, and nobody else is free; the caller hears the policy's `missed_message`
    first (the queue position), then the wait. The ticket carries the callback call's first message."""
    values = template_values(
        request,
        tier=tier,
        category=category,
        complexity=complexity,
        account_name=account_name,
        team=team,
        estimated_wait=estimated_wait,
        opens_at=opens_at,
        queue_position=ticket.position if ticket is not None else 0,
    )
    wait_note = wait_sentence(policy.queue, estimated_wait, opens_at=opens_at)
    if after_missed:
        # The assistant must be able to tell the caller where they stand and when to expect the call, so
        # the wait is said even below the usual announcement threshold.
        promise = wait_note or render(policy.queue.wait_message, values)
        wait_note = f"{render(policy.queue.missed_message, values)} {promise}"
    rendered = render_transfer(policy.queue.transfer, values, wait_note=wait_note)
    where = f" at position {ticket.position}" if ticket is not None and ticket.position else ""
    return _decision(
        request,
        rendered,
        kind=DecisionKind.CALLBACK,
        destination=policy.queue.line,
        reason=f"rule {rule_id or '(none)'}: team {team.team_id} busy, callback queued{where}",
        team=team,
        tier=tier,
        category=category,
        complexity=complexity,
        decision_id=decision_id,
        now=now,
        caller_number=caller_number,
        rule_id=rule_id,
        trace=trace,
        estimated_wait=estimated_wait,
        callback=ticket,
    )


def callback_first_message(
    policy: Policy,
    request: EscalationRequest,
    *,
    team: Team,
    tier: str,
    category: str,
    complexity: Complexity,
    account_name: str = "",
) -> str:
    """What the customer hears first when Escalade calls them back (the policy's template, filled for this
    call); rendered when the callback is queued, so the promise stays as made if the policy changes."""
    values = template_values(
        request, tier=tier, category=category, complexity=complexity, account_name=account_name, team=team
    )
    return render(policy.queue.callback_first_message, values)


def confirm_category_decision(
    policy: Policy,
    request: EscalationRequest,
    *,
    template: str,
    other_categories: Sequence[str],
    tier: str,
    category: str,
    complexity: Complexity,
    decision_id: str,
    now: datetime,
    confidence: float,
    account_name: str = "",
    caller_number: str = "",
    trace: Sequence[TraceStep] = (),
) -> Decision:
    """Transfer nothing and reserve nothing: the assistant reads `caller_message` (the policy's confirm
    message) and is to confirm the category with the caller, then escalate again. The destination is the
    fallback line, so a client that transfers anyway reaches people who can help."""
    others = [name for name in other_categories if name != category] or [
        name for name in policy.categories if name != category
    ]
    values = template_values(
        request, tier=tier, category=category, complexity=complexity, account_name=account_name
    )
    values["other_categories"] = _either(others)
    return Decision(
        decision_id=decision_id,
        call_id=request.call_id,
        tool_call_id=request.tool_call_id,
        kind=DecisionKind.CONFIRM_CATEGORY,
        destination=policy.fallback.destination,
        caller_message=render(template, values),
        transfer_mode=policy.fallback.transfer.transfer_mode,
        effective_complexity=complexity,
        claimed_complexity=request.claimed_complexity,
        tier=tier,
        issue_category=category,
        decided_at=now,
        trace=tuple(trace),
        reason=f"uncertain (confidence {confidence:.2f}): the assistant confirms the category first",
        caller_number=caller_number,
        dry_run=request.dry_run,
    )


def _either(names: Sequence[str]) -> str:
    """ "billing", "billing or account", "billing, account or product"."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def fallback_decision(
    policy: Policy,
    request: EscalationRequest,
    *,
    reason: str,
    decision_id: str,
    now: datetime,
    trace: Sequence[TraceStep] = (),
    tier: str | None = None,
    complexity: Complexity | None = None,
    category: str | None = None,
    caller_number: str | None = None,
) -> Decision:
    """Transfer to the policy's fallback destination (routing failed or no rule matched)."""
    tier = tier or policy.default_tier
    level = complexity or request.claimed_complexity or policy.complexity.default
    category = category or (request.issue_category or "").strip().lower()[:64] or policy.default_category
    if caller_number is None:
        caller_number = normalize_caller(request.caller_number).key or ""
    values = template_values(request, tier=tier, category=category, complexity=level)
    rendered = render_transfer(policy.fallback.transfer, values)
    return _decision(
        request,
        rendered,
        kind=DecisionKind.FALLBACK,
        destination=policy.fallback.destination,
        reason=reason,
        team=None,
        tier=tier,
        category=category,
        complexity=level,
        decision_id=decision_id,
        now=now,
        caller_number=caller_number,
        rule_id="",
        trace=trace,
    )


def _decision(
    request: EscalationRequest,
    rendered: Rendered,
    *,
    kind: DecisionKind,
    destination: Destination,
    reason: str,
    team: Team | None,
    tier: str,
    category: str,
    complexity: Complexity,
    decision_id: str,
    now: datetime,
    caller_number: str,
    rule_id: str,
    trace: Sequence[TraceStep],
    agent: Agent | None = None,
    estimated_wait: timedelta | None = None,
    callback: CallbackTicket | None = None,
) -> Decision:
    return Decision(
        decision_id=decision_id,
        call_id=request.call_id,
        tool_call_id=request.tool_call_id,
        kind=kind,
        destination=destination,
        caller_message=rendered.caller_message,
        transfer_mode=rendered.transfer_mode,
        effective_complexity=complexity,
        claimed_complexity=request.claimed_complexity,
        tier=tier,
        issue_category=category,
        decided_at=now,
        trace=tuple(trace),
        reason=reason,
        team_id=team.team_id if team is not None else "",
        team_display_name=team.display_name if team is not None else "",
        agent_id=agent.agent_id if agent is not None else None,
        agent_display_name=agent.display_name if agent is not None else "",
        handoff_message=rendered.handoff_message,
        summary_messages=rendered.summary_messages,
        estimated_wait=estimated_wait,
        rule_id=rule_id,
        caller_number=caller_number,
        callback=callback,
        dry_run=request.dry_run,
    )
