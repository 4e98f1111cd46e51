"""`workflows.client` prepares the inputs the edge and the reconciler build: checked, the number judged, and
the policy's knobs filled in."""

from __future__ import annotations

import dataclasses
from datetime import time
from pathlib import Path

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import BusinessHours, Policy
from routing_service.policy.loader import load_policy
from workflows.client import prepare_callback, prepare_review
from workflows.inputs import EscalationReviewInput, QueueCallbackInput
from workflows.reconcile import callback_input_from_ticket

TECHCORP = Path(__file__).resolve().parents[2] / "examples" / "techcorp.yaml"


@pytest.fixture(scope="module")
def policy() -> Policy:
    loaded = load_policy(TECHCORP)
    hours = BusinessHours(
        timezone="Europe/Paris", days=frozenset({0, 1, 2, 3, 4}), opens=time(9), closes=time(17, 30)
    )
    teams = dict(loaded.teams)
    teams["billing"] = dataclasses.replace(teams["billing"], business_hours=hours)
    return dataclasses.replace(loaded, teams=teams)


def callback(**overrides: object) -> QueueCallbackInput:
    """What `webhook_edge.translate.callback_input` builds for a billing callback."""
    data = QueueCallbackInput(
        call_id="call-1",
        customer_number="+14155550123",
        masked_number="+1******0123",
        team_id="billing",
        tier="premium",
        category="billing",
        complexity="intermediate",
        priority=20,
        context="double charge",
        reason="refund above agent limit",
        decision_id="dec-1",
    )
    return dataclasses.replace(data, **overrides)  # type: ignore[arg-type]


def test_callback_takes_the_policy_knobs_and_keeps_the_edge_fields_when_policy_given(policy: Policy) -> None:
    given = callback()
    data = prepare_callback(given, policy)

    assert (
        dataclasses.replace(
            data,
            business_hours=None,
            max_attempts=given.max_attempts,
            retry_spacing_seconds=given.retry_spacing_seconds,
            reservation_hold_seconds=given.reservation_hold_seconds,
            expires_after_seconds=given.expires_after_seconds,
        )
        == given
    ), "only the policy's knobs change"
    assert data.business_hours is not None
    assert (data.business_hours.timezone, data.business_hours.days) == ("Europe/Paris", [0, 1, 2, 3, 4])
    assert (data.business_hours.opens, data.business_hours.closes) == ("09:00", "17:30")
    assert data.max_attempts == policy.queue.max_attempts
    assert data.retry_spacing_seconds == int(policy.queue.retry_spacing.total_seconds())
    assert data.reservation_hold_seconds == int(policy.queue.reservation_hold.total_seconds())
    assert data.expires_after_seconds == int(policy.queue.callback_ttl.total_seconds())
    assert given.business_hours is None, "the edge's input is left as it was"


def test_callback_keeps_its_own_defaults_when_no_policy_is_loaded() -> None:
    assert prepare_callback(callback()) == callback()


def test_callback_has_no_hours_when_team_has_none(policy: Policy) -> None:
    assert prepare_callback(callback(team_id="technical"), policy).business_hours is None


@pytest.mark.parametrize("missing", ["call_id", "customer_number", "team_id"])
def test_callback_rejected_when_required_field_missing(missing: str) -> None:
    with pytest.raises(InvalidRequest) as rejected:
        prepare_callback(callback(**{missing: ""}))
    assert rejected.value.violations == ((missing, "required"),)


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("+0987654321", "+******4321 is not an E.164 number (a '+', the country code and the number)"),
        ("+1234567890", "+1*****7890 is not a possible number for its country code"),
        ("555-0100", "****100 is not an E.164 number (a '+', the country code and the number)"),
    ],
)
def test_callback_names_why_a_number_cannot_be_dialled(number: str, problem: str) -> None:
    data = prepare_callback(callback(customer_number=number, masked_number=""))
    assert data.customer_number_problem == problem
    assert number not in problem
    assert data.masked_number == problem.split(" ")[0], "masked when the builder left it empty"


def test_review_takes_critical_keywords_and_target_waits_when_policy_given(policy: Policy) -> None:
    data = prepare_review(EscalationReviewInput(call_id="call-9", transfer_statuses=["connected"]), policy)
    assert data.transfer_statuses == ["connected"]
    assert "outage" in data.critical_keywords
    assert data.team_target_waits["technical"] == int(policy.teams["technical"].target_wait.total_seconds())


def test_review_rejected_when_call_id_missing() -> None:
    with pytest.raises(InvalidRequest):
        prepare_review(EscalationReviewInput(call_id="", ended_reason="customer-ended-call"))


def test_reconciled_input_carries_the_tickets_fields_and_first_message() -> None:
    ticket = pb.CallbackTicket(
        call_id="call-7",
        caller_number="+14155550123",
        team_id="technical",
        tier="premium",
        issue_category="technical",
        effective_complexity=pb.COMPLEXITY_ADVANCED,
        priority=40,
        customer_context="webhooks stopped",
        escalation_reason="needs a specialist",
        decision_id="dec-7",
        first_message="Hello, this is TechCorp Technical Support calling back about your technical issue.",
    )
    assert callback_input_from_ticket(ticket) == QueueCallbackInput(
        call_id="call-7",
        customer_number="+14155550123",
        masked_number="+1******0123",
        team_id="technical",
        tier="premium",
        category="technical",
        complexity="advanced",
        priority=40,
        context="webhooks stopped",
        reason="needs a specialist",
        decision_id="dec-7",
        first_message=ticket.first_message,
    )
