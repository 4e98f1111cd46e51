"""The review rules as pure functions: each rule fires on its condition and stays quiet otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from workflows.inputs import CallbackPhase, EscalationReviewInput
from workflows.payloads import CallbackView, DecisionView
from workflows.review_rules import apply_review_rules, final_category, reached_agent

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
        state=CallbackPhase.CONNECTED,
        enqueued_at=NOW - timedelta(hours=2),
        finished_at=NOW - timedelta(hours=1),
    )
    data = report(team_target_wait_seconds=1800)
    assert rules(data, decision(kind="callback", callback=callback)) == ["wait_over_target"]


def test_no_wait_finding_when_callback_was_quick() -> None:
    callback = CallbackView(
        state=CallbackPhase.CONNECTED,
        enqueued_at=NOW - timedelta(minutes=4),
        finished_at=NOW - timedelta(minutes=1),
    )
    assert rules(report(), decision(kind="callback", callback=callback)) == []


def test_category_mismatch_when_final_category_differs_from_routed() -> None:
    assert rules(report(final_category="Billing"), decision()) == ["category_mismatch"]


def test_no_category_finding_when_final_category_is_unknown_or_same() -> None:
    assert rules(report(final_category=""), decision()) == []
    assert rules(report(final_category="TECHNICAL"), decision()) == []


def test_callback_unreachable_when_callback_ended_unreachable() -> None:
    callback = CallbackView(
        state=CallbackPhase.UNREACHABLE, enqueued_at=NOW - timedelta(minutes=2), finished_at=NOW
    )
    assert rules(report(), decision(kind="callback", callback=callback)) == ["callback_unreachable"]


def test_callback_expired_when_nobody_called_back() -> None:
    callback = CallbackView(
        state=CallbackPhase.EXPIRED, enqueued_at=NOW - timedelta(minutes=2), finished_at=NOW
    )
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
    d = decision(
        kind="callback",
        agent_id="",
        callback=CallbackView(state=CallbackPhase.CONNECTED, agent_id="agent-bo"),
    )
    assert reached_agent(report(), d, []) == "agent-bo"


def test_wait_over_target_uses_team_target_when_policy_gives_one() -> None:
    data = report(team_target_wait_seconds=3600, team_target_waits={"technical": 120})
    assert rules(data, decision(estimated_wait_seconds=300.0)) == ["wait_over_target"]
    assert rules(data, decision(team_id="billing", estimated_wait_seconds=300.0)) == []


# ---------------------------------------------------------------- transfer outcomes (artifact.transfers)


def test_transfer_failed_when_every_attempt_failed() -> None:
    for statuses in (["no-answer"], ["busy", "voicemail"], ["failed", "no-answer", "busy"]):
        data = report(ended_reason="customer-ended-call", transfer_statuses=statuses, destination="")
        found = apply_review_rules(data, decision(), now=NOW)
        [failed] = [f for f in found if f.rule == "transfer_failed"]
        assert failed.needs_human and ", ".join(statuses) in failed.detail


def test_transfer_retried_not_failed_when_a_later_attempt_connected() -> None:
    data = report(ended_reason="assistant-forwarded-call", transfer_statuses=["no-answer", "connected"])
    found = apply_review_rules(data, decision(), now=NOW)
    assert [(f.rule, f.needs_human) for f in found] == [("transfer_retried", False)]
    assert "1 transfer attempt(s) failed (no-answer)" in found[0].detail


def test_cancelled_transfer_is_the_caller_leaving_not_a_failed_transfer() -> None:
    data = report(ended_reason="customer-ended-call", transfer_statuses=["cancelled"], destination="")
    found = apply_review_rules(data, decision(), now=NOW)
    assert [f.rule for f in found] == ["hung_up_before_specialist"]
    assert "cancelled" in found[0].detail
    # the rules before this change counted it as a failed transfer: old reviews replay with them
    assert "transfer_failed" in [f.rule for f in apply_review_rules(data, decision(), now=NOW, version=1)]


def test_no_transfer_failed_when_a_failed_attempt_was_followed_by_the_caller_cancelling() -> None:
    data = report(ended_reason="customer-ended-call", transfer_statuses=["no-answer", "cancelled"])
    assert rules(data, decision()) == ["hung_up_before_specialist"]


def test_warm_transfer_errors_and_transfer_failed_ending_are_failed_transfers() -> None:
    for reason in (
        "call.in-progress.error-transfer-failed",
        "call.in-progress.error-warm-transfer-max-duration",
        "call.forwarding.no-answer",
    ):
        assert rules(report(ended_reason=reason, transfer_statuses=[]), decision()) == ["transfer_failed"]


def test_hung_up_after_warm_transfer_attempt() -> None:
    data = report(ended_reason="customer-ended-call-after-warm-transfer-attempt", transfer_statuses=[])
    assert rules(data, decision()) == ["hung_up_before_specialist"]
    assert rules(data, decision()) != [
        f.rule for f in apply_review_rules(data, decision(), now=NOW, version=1)
    ]


# ---------------------------------------------------------------- callbacks promised


def test_callback_not_kept_when_cancelled_or_still_open() -> None:
    for state in (CallbackPhase.CANCELLED, CallbackPhase.WAITING, CallbackPhase.RESERVED):
        d = decision(kind="callback", callback=CallbackView(state=state))
        found = apply_review_rules(report(transfer_statuses=[]), d, now=NOW)
        [kept] = [f for f in found if f.rule == "callback_not_kept"]
        assert kept.needs_human and state in kept.detail


def test_no_callback_not_kept_when_connected_or_judged_by_its_own_rule() -> None:
    for state, rule in (
        (CallbackPhase.CONNECTED, None),
        (CallbackPhase.UNREACHABLE, "callback_unreachable"),
        (CallbackPhase.EXPIRED, "callback_expired"),
    ):
        d = decision(kind="callback", callback=CallbackView(state=state))
        found = rules(report(transfer_statuses=[]), d)
        assert "callback_not_kept" not in found
        assert rule is None or rule in found


# ---------------------------------------------------------------- structured outputs


def test_final_category_comes_from_structured_output_named_issue_category() -> None:
    outputs = {"so-1": {"name": "issue_category", "result": "Billing"}}
    data = report(structured_outputs=outputs, final_category="technical")
    assert final_category(data) == "billing"
    assert "category_mismatch" in rules(data, decision())


def test_final_category_comes_from_escalation_output_then_edge_value() -> None:
    nested = report(
        structured_outputs={"so-2": {"name": "escalation", "result": {"issue_category": "account"}}}
    )
    assert final_category(nested) == "account"
    empty = report(
        structured_outputs={"so-3": {"name": "issue_category", "result": ""}}, final_category="Technical"
    )
    assert final_category(empty) == "technical"
    assert rules(empty, decision()) == []


def test_promise_breached_when_routing_saw_the_callbacks_promise_broken() -> None:
    due = NOW - timedelta(minutes=30)
    callback = CallbackView(
        state=CallbackPhase.CONNECTED,
        enqueued_at=NOW - timedelta(hours=1),
        finished_at=NOW,
        promise_state="breached",
        promised_by=due,
    )
    d = decision(kind="callback", callback=callback, estimated_wait_seconds=None)
    found = {f.rule: f.detail for f in apply_review_rules(report(), d, now=NOW)}
    assert found["promise_breached"] == (
        "the caller was promised a callback by 2026-11-23 11:30 UTC and it did not start in time"
    )
    # reviews that judged before promises (version 2) replay without the finding
    assert "promise_breached" not in [f.rule for f in apply_review_rules(report(), d, now=NOW, version=2)]


def test_no_promise_finding_when_the_promise_was_kept() -> None:
    callback = CallbackView(state=CallbackPhase.CONNECTED, promise_state="kept", promised_by=NOW)
    d = decision(kind="callback", callback=callback, estimated_wait_seconds=None)
    assert "promise_breached" not in rules(report(), d)
