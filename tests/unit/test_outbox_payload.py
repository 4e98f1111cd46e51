"""An outbox row's payload is the workflow input under its own field names, decoded into the same dataclass;
rows the previous edge wrote (other key spellings) still decode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing_service.domain.errors import InvalidRequest
from webhook_edge.outbox_payload import decode, encode, outbox_kind
from workflows.inputs import BusinessHoursInput, EscalationReviewInput, QueueCallbackInput


def test_callback_input_round_trips_when_encoded_and_decoded() -> None:
    data = QueueCallbackInput(
        call_id="call-1",
        customer_number="+14155550123",
        masked_number="+1******0123",
        team_id="billing",
        tier="premium",
        category="billing",
        complexity="intermediate",
        priority=20,
        business_hours=BusinessHoursInput("Europe/Paris", [0, 1], "09:00", "17:30"),
        not_before=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
        first_message="Hello from TechCorp.",
    )
    payload = encode(data)
    assert outbox_kind(data) == "callback"
    assert payload["customer_number"] == "+14155550123" and "caller_number" not in payload
    assert payload["not_before"] == "2026-01-05T09:30:00+00:00"
    assert decode("callback", payload) == data


def test_review_input_round_trips_when_encoded_and_decoded() -> None:
    data = EscalationReviewInput(
        call_id="call-9",
        ended_reason="assistant-forwarded-call",
        started_at=datetime(2025, 11, 18, 14, 2, 11, 482000, tzinfo=UTC),
        duration_seconds=58.9,
        transfer_statuses=["connected"],
        destination="+15550100110",
        structured_outputs={"so-1": {"name": "issue_category", "result": "billing"}},
    )
    assert outbox_kind(data) == "review"
    assert decode("review", encode(data)) == data


def test_review_row_of_the_previous_edge_is_read_when_pending_across_an_upgrade() -> None:
    old = {
        "call_id": "call-9",
        "ended_reason": "assistant-forwarded-call",
        "started_at": "2025-11-18T14:02:11.482Z",
        "ended_at": "2025-11-18T14:03:10.382Z",
        "duration_seconds": 58.9,
        "summary": "401s on the batch API",
        "transcript": "...",
        "transfers": [{"status": "connected", "mode": "warm-transfer-say-summary"}, {"status": ""}, "junk"],
        "destination": {"type": "number", "number": "+15550100110"},
        "final_category": "technical",
        "structured_outputs": {"so-1": {"name": "issue_category", "result": "billing"}, "bad": "x"},
        "decision_id": "d",
        "decision_known": True,
    }
    data = decode("review", old)
    assert isinstance(data, EscalationReviewInput)
    assert data.transfer_statuses == ["connected"]
    assert data.destination == "+15550100110"
    assert data.started_at == datetime(2025, 11, 18, 14, 2, 11, 482000, tzinfo=UTC)
    assert data.ended_at == datetime(2025, 11, 18, 14, 3, 10, 382000, tzinfo=UTC)
    assert (data.duration_seconds, data.summary, data.final_category) == (
        58.9,
        "401s on the batch API",
        "technical",
    )
    assert data.structured_outputs == {"so-1": {"name": "issue_category", "result": "billing"}}


def test_callback_row_of_the_previous_reconciler_is_read_when_it_lacks_the_estimated_wait() -> None:
    old = {
        "call_id": "call-7",
        "caller_number": "+14155550123",
        "team_id": "technical",
        "tier": "",
        "issue_category": "technical",
        "effective_complexity": "",
        "priority": 0,
        "customer_context": "",
        "escalation_reason": "",
        "decision_id": "",
        "first_message": "Hello, this is TechCorp Technical Support calling back.",
    }
    data = decode("callback", old)
    assert isinstance(data, QueueCallbackInput)
    assert (data.customer_number, data.masked_number, data.category) == (
        "+14155550123",
        "+1******0123",
        "technical",
    )
    assert data.first_message == old["first_message"]


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        (
            "callback",
            {"call_id": "c1", "customer_number": "+14155550123", "team_id": "t"},
        ),  # no masked_number
        ("callback", {"call_id": "c1", "customer_number": 5, "masked_number": "x", "team_id": "t"}),
        ("review", {"call_id": "c1", "started_at": "yesterday"}),
        ("other", {"call_id": "c1"}),
    ],
    ids=["missing-field", "wrong-type", "bad-time", "unknown-kind"],
)
def test_payload_is_refused_as_invalid_when_it_is_not_an_input(kind: str, payload: dict[str, object]) -> None:
    with pytest.raises(InvalidRequest):
        decode(kind, payload)
