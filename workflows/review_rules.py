"""The review rules: pure functions from (end-of-call report, stored decision) to findings.

Rules (each yields at most one `Finding`, named by its rule):

- `transfer_failed`: every transfer attempt (`artifact.transfers[].status`) failed (no-answer, busy,
  voicemail, failed), or the call ended with a forwarding failure (`call.forwarding.operator-busy`,
  `call.forwarding.no-answer`, `call.in-progress.error-transfer-failed`,
  `call.in-progress.error-warm-transfer-*`).
- `transfer_retried` (informational): an attempt failed and a later one connected (the failed-transfer
  loop found the next specialist).
- `hung_up_before_specialist`: `customer-ended-call-during-transfer`, `customer-ended-call-before-warm-
  transfer`, `customer-ended-call-after-warm-transfer-attempt`, a transfer the caller cancelled with none
  connected, or `customer-ended-call` on a transfer decision that was never forwarded.
- `wait_over_target`: the callback took longer than the team's target wait (enqueued -> finished), or the
  decision's estimated wait was already over it.
- `category_mismatch`: the category the call turned out to be about is not the one routing used.
- `callback_unreachable` / `callback_expired`: the callback ended without reaching the customer.
- `callback_not_kept`: a callback was promised and is neither connected nor one of the two above (cancelled,
  or still open when the review judged).
- `promise_breached`: the callback did not start (a specialist reserved for it) by the time the caller was
  promised (routing's `PromiseState` breached).
- `critical_not_routed_critical`: a critical keyword was said but the effective complexity was not critical.
- `decision_missing`: routing has no decision for the call.

The category the call turned out to be about comes from `artifact.structuredOutputs` (an output named
`issue_category`, or the `issue_category` field of one named `escalation`) before the edge's
`final_category`.

`version` 1 is the rule set before transfer outcomes and structured outputs were read (cancelled counted as a
failed transfer; no `transfer_retried`, `callback_not_kept`, structured outputs or warm-transfer endings):
reviews that judged with it replay with it (`workflows.review.RULES_V2`). `version` 2 is the rule set before
callback promises (no `promise_breached`; `workflows.review.RULES_V3`).
"""

from __future__ import annotations

import re
from datetime import datetime

from routing_service.domain.lifecycle import TRANSFER_CONNECTED, TRANSFER_NOT_TAKEN, TransferStatus
from routing_service.domain.models import Complexity, DecisionKind
from workflows.inputs import CallbackPhase, EscalationReviewInput, Finding
from workflows.payloads import DecisionView

__all__ = [
    "CURRENT_VERSION",
    "FAILED_TRANSFER_STATUSES",
    "apply_review_rules",
    "final_category",
    "reached_agent",
]

CURRENT_VERSION = 3
FAILED_TRANSFER_STATUSES = TRANSFER_NOT_TAKEN
"""The specialist's side did not take the transfer (`cancelled` is the caller leaving: not a failure)."""
_V1_FAILED_TRANSFER_STATUSES = FAILED_TRANSFER_STATUSES | {TransferStatus.CANCELLED}
CONNECTED_TRANSFER_STATUSES = TRANSFER_CONNECTED
FORWARDING_FAILED_REASONS = frozenset(
    {
        "call.forwarding.operator-busy",
        "call.forwarding.no-answer",
        "call.in-progress.error-transfer-failed",
    }
)
_V1_FORWARDING_FAILED_REASONS = frozenset({"call.forwarding.operator-busy", "call.forwarding.no-answer"})
WARM_TRANSFER_ERROR_PREFIX = "call.in-progress.error-warm-transfer-"
HUNG_UP_REASONS = frozenset(
    {
        "customer-ended-call-during-transfer",
        "customer-ended-call-before-warm-transfer",
        "customer-ended-call-after-warm-transfer-attempt",
    }
)
_V1_HUNG_UP_REASONS = frozenset(
    {"customer-ended-call-during-transfer", "customer-ended-call-before-warm-transfer"}
)
KEPT_OR_JUDGED_CALLBACK_STATES = frozenset(
    {CallbackPhase.CONNECTED, CallbackPhase.UNREACHABLE, CallbackPhase.EXPIRED}
)
TRANSFER_KINDS = frozenset({DecisionKind.TRANSFER_AGENT, DecisionKind.TRANSFER_TEAM})


def _finding(rule: str, detail: str, data: EscalationReviewInput) -> Finding:
    return Finding(rule=rule, detail=detail, needs_human=rule in data.human_review_rules)


def _transfer_connected(data: EscalationReviewInput) -> bool:
    statuses = {s.lower() for s in data.transfer_statuses}
    return bool(statuses & CONNECTED_TRANSFER_STATUSES) or data.ended_reason == "assistant-forwarded-call"


def _critical_keyword(data: EscalationReviewInput) -> str | None:
    text = f"{data.summary}\n{data.transcript}".lower()
    for keyword in data.critical_keywords:
        if keyword.strip() and re.search(rf"\b{re.escape(keyword.strip().lower())}\b", text):
            return keyword
    return None


def final_category(data: EscalationReviewInput) -> str:
    """The category the call was about: a structured output named `issue_category` (its result), else the
    `issue_category` field of an output named `escalation`, else the edge's `final_category`."""
    by_name = {
        str(output.get("name", "")): output.get("result")
        for output in data.structured_outputs.values()
        if isinstance(output, dict)
    }
    direct = by_name.get("issue_category")
    if isinstance(direct, str) and direct.strip():
        return direct.strip().lower()
    escalation = by_name.get("escalation")
    if isinstance(escalation, dict):
        nested = escalation.get("issue_category")
        if isinstance(nested, str) and nested.strip():
            return nested.strip().lower()
    return data.final_category.strip().lower()


def _forwarding_failed(reason: str, version: int) -> bool:
    if version < 2:
        return reason in _V1_FORWARDING_FAILED_REASONS
    return reason in FORWARDING_FAILED_REASONS or reason.startswith(WARM_TRANSFER_ERROR_PREFIX)


def _transfer_findings(data: EscalationReviewInput, decision: DecisionView, version: int) -> list[Finding]:
    findings: list[Finding] = []
    statuses = [s.lower() for s in data.transfer_statuses]
    connected = _transfer_connected(data)
    if version < 2:
        failed = [s for s in statuses if s in _V1_FAILED_TRANSFER_STATUSES]
        transfer_failed = bool(failed) and not connected
        hung_up = data.ended_reason in _V1_HUNG_UP_REASONS
    else:
        failed = [s for s in statuses if s in FAILED_TRANSFER_STATUSES]
        transfer_failed = bool(statuses) and len(failed) == len(statuses) and not connected
        cancelled = TransferStatus.CANCELLED in statuses and not connected
        hung_up = data.ended_reason in HUNG_UP_REASONS or cancelled
    if _forwarding_failed(data.ended_reason, version) or transfer_failed:
        why = data.ended_reason if _forwarding_failed(data.ended_reason, version) else ", ".join(failed)
        findings.append(_finding("transfer_failed", f"the transfer did not connect ({why})", data))
    elif version >= 2 and failed and connected:
        findings.append(
            _finding(
                "transfer_retried",
                f"{len(failed)} transfer attempt(s) failed ({', '.join(failed)}) before one connected",
                data,
            )
        )

    if hung_up or (
        data.ended_reason == "customer-ended-call"
        and decision.kind in TRANSFER_KINDS
        and not data.destination
        and not connected
    ):
        left_mid_transfer = hung_up and data.ended_reason not in HUNG_UP_REASONS
        why = "the transfer was cancelled" if left_mid_transfer else data.ended_reason
        findings.append(_finding("hung_up_before_specialist", f"the caller hung up first ({why})", data))
    return findings


def apply_review_rules(
    data: EscalationReviewInput,
    decision: DecisionView | None,
    *,
    now: datetime,
    version: int = CURRENT_VERSION,
) -> list[Finding]:
    """Every rule that fires for this call, in the order listed in the module docstring."""
    if decision is None:
        return [_finding("decision_missing", "routing has no decision for this call", data)]
    findings = _transfer_findings(data, decision, version)

    target = data.team_target_waits.get(decision.team_id, data.team_target_wait_seconds)
    callback = decision.callback
    if (
        callback is not None
        and callback.enqueued_at is not None
        and callback.state not in (CallbackPhase.UNSPECIFIED, CallbackPhase.WAITING)
    ):
        waited = ((callback.finished_at or now) - callback.enqueued_at).total_seconds()
        if waited > target:
            findings.append(
                _finding(
                    "wait_over_target",
                    f"the callback took {waited / 60:.0f} min (target {target / 60:.0f})",
                    data,
                )
            )
    elif decision.estimated_wait_seconds is not None and decision.estimated_wait_seconds > target:
        findings.append(
            _finding(
                "wait_over_target",
                f"estimated wait {decision.estimated_wait_seconds / 60:.0f} min (target {target / 60:.0f})",
                data,
            )
        )

    final = final_category(data) if version >= 2 else data.final_category.strip().lower()
    if final and decision.issue_category and final != decision.issue_category.lower():
        findings.append(
            _finding(
                "category_mismatch",
                f"routed as {decision.issue_category} (team {decision.team_id}), was about {final}",
                data,
            )
        )

    if callback is not None and callback.state == CallbackPhase.UNREACHABLE:
        findings.append(_finding("callback_unreachable", "the callback never reached the customer", data))
    elif callback is not None and callback.state == CallbackPhase.EXPIRED:
        findings.append(_finding("callback_expired", "no specialist called the customer back in time", data))
    elif version >= 2 and callback is not None and callback.state not in KEPT_OR_JUDGED_CALLBACK_STATES:
        findings.append(
            _finding(
                "callback_not_kept",
                f"a callback was promised and is {callback.state or 'in an unknown state'}",
                data,
            )
        )

    if version >= 3 and callback is not None and callback.promise_state == "breached":
        due = f" by {callback.promised_by:%Y-%m-%d %H:%M} UTC" if callback.promised_by is not None else ""
        findings.append(
            _finding(
                "promise_breached",
                f"the caller was promised a callback{due} and it did not start in time",
                data,
            )
        )

    keyword = _critical_keyword(data)
    if keyword is not None and decision.complexity != Complexity.CRITICAL.label:
        findings.append(
            _finding(
                "critical_not_routed_critical",
                f'"{keyword}" was said but the call was routed as {decision.complexity or "unknown"}',
                data,
            )
        )
    return findings


def reached_agent(data: EscalationReviewInput, decision: DecisionView | None, findings: list[Finding]) -> str:
    """The specialist who actually took the customer (for sticky routing), or "" when nobody did."""
    if decision is None:
        return ""
    if decision.callback is not None:
        return decision.callback.agent_id if decision.callback.state == CallbackPhase.CONNECTED else ""
    failed = {f.rule for f in findings} & {"transfer_failed", "hung_up_before_specialist"}
    if decision.kind == DecisionKind.TRANSFER_AGENT and not failed:
        return decision.agent_id
    return ""
