"""`workflows.client` turns the edge's outbox payloads (and the policy) into workflow inputs."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import BusinessHours, Policy
from routing_service.policy.loader import load_policy
from workflows.client import callback_input_from_payload, review_input_from_payload
from workflows.reconcile import callback_payload_from_ticket

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


def payload(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "call_id": "call-1",
        "caller_number": "+14155550123",
        "team_id": "billing",
        "tier": "premium",
        "issue_category": "billing",
        "effective_complexity": "intermediate",
        "priority": 20,
        "customer_context": "double charge",
        "escalation_reason": "refund above agent limit",
        "decision_id": "dec-1",
        "estimated_wait_seconds": 600.0,
    }
    values.update(overrides)
    return values


def test_callback_input_masks_number_and_takes_policy_knobs_when_policy_given(policy: Policy) -> None:
    data = callback_input_from_payload(payload(), policy)

    assert (data.customer_number, data.masked_number) == ("+14155550123", "+1******0123")
    assert (data.team_id, data.tier, data.category, data.complexity, data.priority) == (
        "billing",
        "premium",
        "billing",
        "intermediate",
        20,
    )
    assert (data.context, data.reason, data.decision_id) == (
        "double charge",
        "refund above agent limit",
        "dec-1",
    )
    assert data.business_hours is not None
    assert (data.business_hours.timezone, data.business_hours.days) == ("Europe/Paris", [0, 1, 2, 3, 4])
    assert (data.business_hours.opens, data.business_hours.closes) == ("09:00", "17:30")
    assert data.max_attempts == policy.queue.max_attempts
    assert data.retry_spacing_seconds == int(policy.queue.retry_spacing.total_seconds())
    assert data.reservation_hold_seconds == int(policy.queue.reservation_hold.total_seconds())
    assert data.expires_after_seconds == int(policy.queue.callback_ttl.total_seconds())


def test_callback_input_has_no_hours_when_team_has_none(policy: Policy) -> None:
    assert callback_input_from_payload(payload(team_id="technical"), policy).business_hours is None


@pytest.mark.parametrize("missing", ["call_id", "caller_number", "team_id"])
def test_callback_payload_rejected_when_required_field_missing(missing: str) -> None:
    with pytest.raises(InvalidRequest) as rejected:
        callback_input_from_payload(payload(**{missing: ""}))
    assert rejected.value.violations == ((missing, "required"),)


def test_review_input_reads_transfers_destination_and_times_when_edge_payload_given(policy: Policy) -> None:
    data = review_input_from_payload(
        {
            "call_id": "call-9",
            "ended_reason": "assistant-forwarded-call",
            "started_at": "2025-11-18T14:02:11.482Z",
            "ended_at": "2025-11-18T14:03:10.382Z",
            "duration_seconds": 58.9,
            "summary": "401s on the batch API",
            "transcript": "...",
            "transfers": [
                {"status": "connected", "mode": "warm-transfer-say-summary"},
                {"status": ""},
                "junk",
            ],
            "destination": {"type": "number", "number": "+15550100110"},
            "decision_id": "d",
            "decision_known": True,
        },
        policy,
    )
    assert data.transfer_statuses == ["connected"]
    assert data.destination == "+15550100110"
    assert data.started_at == datetime(2025, 11, 18, 14, 2, 11, 482000, tzinfo=UTC)
    assert data.duration_seconds == 58.9
    assert "outage" in data.critical_keywords
    assert data.team_target_waits["technical"] == int(policy.teams["technical"].target_wait.total_seconds())


def test_review_payload_rejected_when_call_id_missing() -> None:
    with pytest.raises(InvalidRequest):
        review_input_from_payload({"ended_reason": "customer-ended-call"})


def test_callback_input_takes_the_first_message_and_judges_the_number() -> None:
    greeting = "Hello, this is TechCorp calling back about the billing issue you called us about earlier."
    data = callback_input_from_payload(payload(first_message=greeting))
    assert (data.first_message, data.customer_number_problem) == (greeting, "")
    assert callback_input_from_payload(payload()).first_message == ""  # older payloads


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("+0987654321", "+******4321 is not an E.164 number (a '+', the country code and the number)"),
        ("+1234567890", "+1*****7890 is not a possible number for its country code"),
        ("555-0100", "****100 is not an E.164 number (a '+', the country code and the number)"),
    ],
)
def test_callback_input_names_why_a_number_cannot_be_dialled(number: str, problem: str) -> None:
    data = callback_input_from_payload(payload(caller_number=number))
    assert data.customer_number_problem == problem
    assert number not in problem


def test_reconciled_payload_carries_the_tickets_first_message() -> None:
    ticket = pb.CallbackTicket(
        call_id="call-7",
        caller_number="+14155550123",
        team_id="technical",
        issue_category="technical",
        first_message="Hello, this is TechCorp Technical Support calling back about your technical issue.",
    )
    data = callback_input_from_payload(callback_payload_from_ticket(ticket))
    assert data.first_message == ticket.first_message


def test_review_input_keeps_structured_outputs_when_the_edge_sends_them() -> None:
    outputs = {"so-1": {"name": "issue_category", "result": "billing"}, "bad": "not an output"}
    data = review_input_from_payload({"call_id": "call-3", "structured_outputs": outputs})
    assert data.structured_outputs == {"so-1": {"name": "issue_category", "result": "billing"}}
    assert review_input_from_payload({"call_id": "call-4"}).structured_outputs == {}
