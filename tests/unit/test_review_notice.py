"""Review notifications as pure rules: the policy section (loading and its errors), who is told when
(escalation schedule), and what the webhook receives (JSON and Slack bodies, link, idempotency key)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from routing_service.domain.review_notifications import NoticeFormat
from routing_service.policy import PolicyError, parse_policy
from tests.unit.test_policy_loader import DOC, TECHCORP, mutated
from workflows.client import prepare_review
from workflows.inputs import EscalationReviewInput, Finding, NotifyPlanInput
from workflows.payloads import DecisionView, NotifyParams
from workflows.review_notice import (
    NoticeStep,
    idempotency_key,
    notice_body,
    notice_steps,
    plan_for,
    temporal_ui_link,
)

LINK = "http://ui:8233/namespaces/default/workflows/review-call-1"


def params(**overrides: Any) -> NotifyParams:
    values: dict[str, Any] = {
        "call_id": "call-1",
        "team_id": "technical",
        "contact": "tech-lead",
        "step": 0,
        "state": "awaiting-review",
        "findings": [
            Finding("transfer_failed", "the transfer did not connect (no-answer)", True),
            Finding("transfer_retried", "1 transfer attempt(s) failed (busy) before one connected", False),
        ],
        "deadline": datetime(2026, 12, 9, 12, 0, tzinfo=UTC),
        "decision": DecisionView(
            decision_id="dec-1",
            kind="transfer_agent",
            team_id="technical",
            tier="enterprise",
            issue_category="technical",
            complexity="advanced",
            rule_id="enterprise-technical",
            reason="caller +15550100142 routed to technical",
            trace=["customer +15550100142: info (found)"],
            masked_caller="+1******0142",
        ),
    }
    values.update(overrides)
    return NotifyParams(**values)


# --- the policy section --------------------------------------------------------------------------------
def test_techcorp_example_names_contacts_per_team_and_a_default() -> None:
    notifications = parse_policy(TECHCORP, source="techcorp.yaml").review_notifications
    technical = notifications.for_team("technical")
    assert technical is not None
    assert [c.name for c in technical.contacts] == ["tech-supervisor", "support-manager"]
    assert technical.escalate_after == timedelta(hours=4)
    assert technical.contacts[1].format is NoticeFormat.SLACK
    billing = notifications.for_team("billing")
    assert billing is not None and billing is notifications.default
    assert billing.escalate_after is None


def test_policy_without_the_section_notifies_nobody() -> None:
    policy = parse_policy(mutated("review_notifications", ...), source="p.yaml")
    assert policy.review_notifications.for_team("technical") is None


@pytest.mark.parametrize(
    ("value", "field", "reason"),
    [
        ({"teams": {"nope": {"contacts": [{"name": "a", "url": "https://x.test/h"}]}}},
         "review_notifications.teams.nope", "unknown team 'nope'"),
        ({"default": {"contacts": [{"name": "a"}]}},
         "review_notifications.default.contacts[0]", "exactly one of url or url_env"),
        ({"default": {"contacts": [{"name": "a", "url": "ftp://x"}]}},
         "review_notifications.default.contacts[0].url", "http:// or https://"),
        ({"default": {"contacts": [{"name": "a", "url_env": "lower-case"}]}},
         "review_notifications.default.contacts[0].url_env", "not an environment variable name"),
        ({"default": {"contacts": [{"name": "a", "url": "https://x.test", "format": "teams"}]}},
         "review_notifications.default.contacts[0].format", "'json' or 'slack'"),
        ({"default": {"contacts": []}}, "review_notifications.default.contacts", "at least 1"),
        ({"default": {"contacts": [{"name": "a", "url": "https://x.test"}] * 2}},
         "review_notifications.default", "duplicate contact name(s): a"),
        ({"default": {"contacts": [{"name": "a", "url": "https://x.test"}], "escalate_after_minutes": 0}},
         "review_notifications.default.escalate_after_minutes", "greater than 0"),
        ({"default": {"contacts": [{"name": "a", "url": "https://x.test"}], "typo": 1}},
         "review_notifications.default.typo", "unknown field"),
    ],
)  # fmt: skip
def test_section_errors_name_the_field_and_the_reason(value: Any, field: str, reason: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(mutated("review_notifications", value), source="p.yaml")
    problems = {p.field: p.reason for p in caught.value.problems}
    assert field in problems, str(caught.value)
    assert reason in problems[field], str(caught.value)


def test_review_input_carries_contact_names_but_never_urls() -> None:
    doc_text = mutated(
        "review_notifications",
        {"teams": {"technical": {"contacts": [{"name": "lead", "url": "https://hooks.test/secret-token"}]}}},
    )
    prepared = prepare_review(EscalationReviewInput(call_id="c"), parse_policy(doc_text, source="p.yaml"))
    assert prepared.notify_plans == {"technical": NotifyPlanInput(contacts=["lead"])}
    assert prepared.default_notify_plan is None
    assert "secret-token" not in repr(prepared)
    assert DOC["review_notifications"]["teams"]["technical"]["escalate_after_minutes"] == 240
    techcorp = prepare_review(EscalationReviewInput(call_id="c"), parse_policy(TECHCORP, source="t.yaml"))
    assert techcorp.notify_plans["technical"].escalate_after_seconds == 4 * 3600
    assert techcorp.default_notify_plan == NotifyPlanInput(contacts=["support-lead", "support-manager"])


# --- who is told when ----------------------------------------------------------------------------------
def test_team_plan_else_default_else_nobody() -> None:
    team, default = NotifyPlanInput(["lead"]), NotifyPlanInput(["desk"])
    data = EscalationReviewInput(call_id="c", notify_plans={"technical": team}, default_notify_plan=default)
    assert plan_for(data, "technical") is team
    assert plan_for(data, "billing") is default
    assert plan_for(EscalationReviewInput(call_id="c"), "technical") is None
    assert plan_for(EscalationReviewInput(call_id="c", default_notify_plan=NotifyPlanInput([])), "x") is None


def test_each_contact_in_turn_every_escalate_after() -> None:
    plan = NotifyPlanInput(["lead", "manager", "director"], escalate_after_seconds=3600)
    assert notice_steps(plan, review_deadline_seconds=86_400) == [
        NoticeStep(0, "lead", 0),
        NoticeStep(1, "manager", 3600),
        NoticeStep(2, "director", 7200),
    ]


def test_without_escalate_after_the_next_contact_hears_at_the_review_deadline() -> None:
    assert notice_steps(NotifyPlanInput(["lead", "manager"]), review_deadline_seconds=172_800) == [
        NoticeStep(0, "lead", 0),
        NoticeStep(1, "manager", 172_800),
    ]


def test_a_single_contact_hears_again_when_the_review_is_overdue() -> None:
    assert notice_steps(NotifyPlanInput(["lead"]), review_deadline_seconds=100) == [
        NoticeStep(0, "lead", 0),
        NoticeStep(1, "lead", 100),
    ]


def test_no_plan_no_steps() -> None:
    assert notice_steps(None, 100) == []
    assert notice_steps(NotifyPlanInput([]), 100) == []


# --- what is sent --------------------------------------------------------------------------------------
def test_link_and_idempotency_key() -> None:
    assert temporal_ui_link("http://ui:8233/", "default", "review-call-1") == LINK
    assert temporal_ui_link("https://t.example", "prod ns", "review-a/b") == (
        "https://t.example/namespaces/prod%20ns/workflows/review-a%2Fb"
    )
    assert idempotency_key("call-1", 0) == "review-call-1-0"
    assert idempotency_key("call-1", 2) != idempotency_key("call-1", 1)


def test_json_body_holds_call_team_findings_explanation_and_link_with_numbers_masked() -> None:
    body = notice_body(NoticeFormat.JSON, params(), link=LINK, workflow_id="review-call-1")
    assert body["event"] == "review.needs_verdict"
    assert body["text"] == (
        "Escalade review of call call-1 (team technical) needs a verdict: transfer_failed"
    )
    assert (body["call_id"], body["caller"], body["team_id"], body["step"]) == (
        "call-1",
        "+1******0142",
        "technical",
        0,
    )
    assert [f["rule"] for f in body["findings"]] == ["transfer_failed", "transfer_retried"]
    assert body["decision"]["rule_id"] == "enterprise-technical"
    assert body["decision"]["reason"] == "caller +1******0142 routed to technical"
    assert body["decision"]["trace"] == ["customer +1******0142: info (found)"]
    assert body["deadline"] == "2026-12-09T12:00:00+00:00"
    assert (body["link"], body["workflow_id"]) == (LINK, "review-call-1")
    assert "5550100142" not in repr(body)


def test_escalation_says_how_long_the_review_waited() -> None:
    body = notice_body(
        NoticeFormat.JSON, params(step=1, waited_seconds=172_800, state="overdue"), link=LINK, workflow_id="w"
    )
    assert body["event"] == "review.escalated"
    assert "still has no verdict after 2 days, 0:00:00 (escalation 1)" in body["text"]
    assert body["review_state"] == "overdue"


def test_slack_body_is_text_and_blocks_with_findings_reason_and_link() -> None:
    body = notice_body(NoticeFormat.SLACK, params(), link=LINK, workflow_id="w")
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("Escalade review of call call-1")
    assert all(b["type"] == "section" and b["text"]["type"] == "mrkdwn" for b in body["blocks"])
    text = "\n".join(b["text"]["text"] for b in body["blocks"])
    assert "*transfer_failed*: the transfer did not connect (no-answer)" in text
    assert "by rule `enterprise-technical`" in text
    assert "caller +1******0142 routed to technical" in text
    assert f"<{LINK}|Open the review in the Temporal UI>" in text
    assert "5550100142" not in text


def test_bodies_without_a_decision_still_say_so() -> None:
    slack = notice_body(NoticeFormat.SLACK, params(decision=None, team_id=""), link=LINK, workflow_id="w")
    assert "routing has none for this call" in slack["blocks"][2]["text"]["text"]
    assert "(team unknown)" in slack["text"]
    plain = notice_body(NoticeFormat.JSON, params(decision=None), link=LINK, workflow_id="w")
    assert (plain["decision"], plain["caller"]) == (None, "")


def test_worker_reads_the_contacts_from_its_policy_file_when_it_sends(tmp_path: Path) -> None:
    from workflows.settings import WorkerSettings
    from workflows.worker import review_notifications

    path = tmp_path / "policy.yaml"
    path.write_text(TECHCORP)
    settings = WorkerSettings(policy=path)
    assert [c.name for c in review_notifications(settings).for_team("billing").contacts] == [  # type: ignore[union-attr]
        "support-lead",
        "support-manager",
    ]
    path.write_text(mutated("review_notifications", ...))
    assert review_notifications(settings).for_team("billing") is None  # edited file: applies at once
    assert review_notifications(WorkerSettings(policy=None)).for_team("billing") is None
    assert WorkerSettings().temporal_ui_url == "http://localhost:8233"
