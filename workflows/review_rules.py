"""The review rules: pure functions from (end-of-call report, stored decision) to findings.

Rules (each yields at most one `Finding`, named by its rule):

- `transfer_failed`: a transfer artifact ended no-answer/busy/voicemail/failed/cancelled and none connected,
  or the call ended with `call.forwarding.operator-busy` / `call.forwarding.no-answer`.
- `hung_up_before_specialist`: `customer-ended-call-during-transfer`, `customer-ended-call-before-warm-
  transfer`, or `customer-ended-call` on a transfer decision that was never forwarded.
- `wait_over_target`: the callback took longer than the team's target wait (enqueued -> finished), or the
  decision's estimated wait was already over it.
- `category_mismatch`: the category the call turned out to be about is not the one routing used.
- `callback_unreachable` / `callback_expired`: the callback ended without reaching the customer.
- `critical_not_routed_critical`: a critical keyword was said but the effective complexity was not critical.
- `decision_missing`: routing has no decision for the call.
"""

from __future__ import annotations

import re
from datetime import datetime

from workflows.inputs import EscalationReviewInput, Finding
from workflows.payloads import DecisionView

__all__ = ["FAILED_TRANSFER_STATUSES", "apply_review_rules", "reached_agent"]

FAILED_TRANSFER_STATUSES = frozenset({"no-answer", "busy", "voicemail", "failed", "cancelled"})
CONNECTED_TRANSFER_STATUSES = frozenset({"connected", "completed"})
FORWARDING_FAILED_REASONS = frozenset({"call.forwarding.operator-busy", "call.forwarding.no-answer"})
HUNG_UP_REASONS = frozenset(
    {"customer-ended-call-during-transfer", "customer-ended-call-before-warm-transfer"}
)
TRANSFER_KINDS = frozenset({"transfer_agent", "transfer_team"})


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


def apply_review_rules(
    data: EscalationReviewInput, decision: DecisionView | None, *, now: datetime
) -> list[Finding]:
    """Every rule that fires for this call, in the order listed in the module docstring."""
    if decision is None:
        return [_finding("decision_missing", "routing has no decision for this call", data)]
    findings: list[Finding] = []
    statuses = [s.lower() for s in data.transfer_statuses]
    failed = [s for s in statuses if s in FAILED_TRANSFER_STATUSES]
    if data.ended_reason in FORWARDING_FAILED_REASONS or (failed and not _transfer_connected(data)):
        why = data.ended_reason if data.ended_reason in FORWARDING_FAILED_REASONS else ", ".join(failed)
        findings.append(_finding("transfer_failed", f"the transfer did not connect ({why})", data))

    if data.ended_reason in HUNG_UP_REASONS or (
        data.ended_reason == "customer-ended-call"
        and decision.kind in TRANSFER_KINDS
        and not data.destination
        and not _transfer_connected(data)
    ):
        findings.append(
            _finding("hung_up_before_specialist", f"the caller hung up first ({data.ended_reason})", data)
        )

    target = data.team_target_waits.get(decision.team_id, data.team_target_wait_seconds)
    callback = decision.callback
    if callback is not None and callback.enqueued_at is not None and callback.state not in ("", "waiting"):
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

    final = data.final_category.strip().lower()
    if final and decision.issue_category and final != decision.issue_category.lower():
        findings.append(
            _finding(
                "category_mismatch",
                f"routed as {decision.issue_category} (team {decision.team_id}), was about {final}",
                data,
            )
        )

    if callback is not None and callback.state == "unreachable":
        findings.append(_finding("callback_unreachable", "the callback never reached the customer", data))
    elif callback is not None and callback.state == "expired":
        findings.append(_finding("callback_expired", "no specialist called the customer back in time", data))

    keyword = _critical_keyword(data)
    if keyword is not None and decision.complexity != "critical":
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
        return decision.callback.agent_id if decision.callback.state == "connected" else ""
    failed = {f.rule for f in findings} & {"transfer_failed", "hung_up_before_specialist"}
    if decision.kind == "transfer_agent" and not failed:
        return decision.agent_id
    return ""
