"""The review rules as pure functions: each rule fires on its condition and stays quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.inputs import EscalationReviewInput
from workflows.payloads import CallbackView, DecisionView
from workflows.review_rules import apply_review_rules, reached_agent

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def report(**overrides: Any) -> EscalationReviewInput:
    values: dict[str, Any] = {
        "call_id": "call-1",
        "ended_reason": "assistant-forwarded-call",
        "transfer_statuses": ["connected"],
        "destination": "+15550100110",
        "summary": "API integration returns 401 after rotating the client secret.",
        "transcript": "User: our batch endpoint returns 401 since this morning.",
    }
    values.update(overrides)
    return EscalationReviewInput(**values)


def decision(**overrides: Any) -> DecisionView:
    values: dict[str, Any] = {
        "decision_id": "dec-1",
        "kind": "transfer_agent",
        "team_id": "technical",
        "agent_id": "agent-ana",
        "tier": "enterprise",
        "issue_category": "technical",
        "complexity": "advanced",
        "estimated_wait_seconds": 0.0,
    }
    values.update(overrides)
    return DecisionView(**values)


def rules(data: EscalationReviewInput, d: DecisionView | None) -> list[str]:
    return [f.rule for f in apply_review_rules(data, d, now=NOW)]


def test_no_findings_when_transfer_connected_as_routed() -> None:
    assert rules(report(), decision()) == []


def test_transfer_failed_when_transfer_artifact_says_no_answer() -> None:
    data = report(ended_reason="customer-ended-call", transfer_statuses=["no-answer"], destination="")
    assert "transfer_failed" in rules(data, decision())


def test_transfer_failed_when_ended_reason_is_operator_busy() -> None:
    data = report(ended_reason="call.forwarding.operator-busy", transfer_statuses=[])
    assert rules(data, decision()) == ["transfer_failed"]


def test_hung_up_before_specialist_when_caller_left_during_transfer() -> None:
    data = report(ended_reason="customer-ended-call-during-transfer", transfer_statuses=[])
    assert rules(data, decision()) == ["hung_up_before_specialist"]


def test_hung_up_before_specialist_when_caller_ended_unforwarded_transfer_call() -> None:
    data = report(ended_reason="customer-ended-call", transfer_statuses=[], destination="")
    assert rules(data, decision()) == ["hung_up_before_specialist"]


def test_no_hang_up_finding_when_caller_ended_after_being_forwarded() -> None:
    data = report(ended_reason="customer-ended-call", transfer_statuses=["completed"])
    assert rules(data, decision()) == []


def test_wait_over_target_when_estimated_wait_exceeds_team_target() -> None:
    findings = apply_review_rules(
        report(team_target_wait_seconds=300), decision(estimated_wait_seconds=900.0), now=NOW
    )
    assert [(f.rule, f.needs_human) for f in findings] == [("wait_over_target", False)]


def test_wait_over_target_when_callback_took_longer_than_target() -> None:
    callback = CallbackView(
        state="connected", enqueued_at=NOW - timedelta(hours=2), finished_at=NOW - timedelta(hours=1)
    )
    data = report(team_target_wait_seconds=1800)
    assert rules(data, decision(kind="callback", callback=callback)) == ["wait_over_target"]


def test_no_wait_finding_when_callback_was_quick() -> None:
    callback = CallbackView(
        state="connected", enqueued_at=NOW - timedelta(minutes=4), finished_at=NOW - timedelta(minutes=1)
    )
    assert rules(report(), decision(kind="callback", callback=callback)) == []


def test_category_mismatch_when_final_category_differs_from_routed() -> None:
    assert rules(report(final_category="Billing"), decision()) == ["category_mismatch"]


def test_no_category_finding_when_final_category_is_unknown_or_same() -> None:
    assert rules(report(final_category=""), decision()) == []
    assert rules(report(final_category="TECHNICAL"), decision()) == []


def test_callback_unreachable_when_callback_ended_unreachable() -> None:
    callback = CallbackView(state="unreachable", enqueued_at=NOW - timedelta(minutes=2), finished_at=NOW)
    assert rules(report(), decision(kind="callback", callback=callback)) == ["callback_unreachable"]


def test_callback_expired_when_nobody_called_back() -> None:
    callback = CallbackView(state="expired", enqueued_at=NOW - timedelta(minutes=2), finished_at=NOW)
    assert rules(report(), decision(kind="callback", callback=callback)) == ["callback_expired"]


def test_critical_keyword_finding_when_outage_said_but_routed_advanced() -> None:
    data = report(transcript="User: the whole platform is down for all our users")
    findings = apply_review_rules(data, decision(complexity="advanced"), now=NOW)
    assert [f.rule for f in findings] == ["critical_not_routed_critical"]
    assert '"down"' in findings[0].detail


def test_no_keyword_finding_when_word_only_contains_keyword_or_routed_critical() -> None:
    assert rules(report(transcript="please download the invoice"), decision()) == []
    assert rules(report(transcript="total outage"), decision(complexity="critical")) == []


def test_decision_missing_when_routing_has_no_decision() -> None:
    assert rules(report(), None) == ["decision_missing"]


def test_reached_agent_is_specialist_when_transfer_connected() -> None:
    d = decision()
    assert reached_agent(report(), d, apply_review_rules(report(), d, now=NOW)) == "agent-ana"


def test_reached_agent_is_empty_when_transfer_failed() -> None:
    data = report(ended_reason="call.forwarding.no-answer", transfer_statuses=["no-answer"])
    d = decision()
    assert reached_agent(data, d, apply_review_rules(data, d, now=NOW)) == ""


def test_reached_agent_is_callback_specialist_when_callback_connected() -> None:
    d = decision(kind="callback", agent_id="", callback=CallbackView(state="connected", agent_id="agent-bo"))
    assert reached_agent(report(), d, []) == "agent-bo"


def test_wait_over_target_uses_team_target_when_policy_gives_one() -> None:
    data = report(team_target_wait_seconds=3600, team_target_waits={"technical": 120})
    assert rules(data, decision(estimated_wait_seconds=300.0)) == ["wait_over_target"]
    assert rules(data, decision(team_id="billing", estimated_wait_seconds=300.0)) == []
