"""The assignment lifecycle's pure rules: what each Vapi event means in each stage, which stages hold a
slot, and what a specialist is doing now (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing_service.domain.lifecycle import (
    ALLOWED_FROM,
    HOLDS_SLOT,
    AgentActivity,
    AssignmentRecord,
    AssignmentStage,
    CallEventKind,
    agent_activity,
    classify_call_event,
)
from routing_service.domain.models import AgentStatus

S = AssignmentStage
K = CallEventKind
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
STAGES = st.sampled_from(list(AssignmentStage))
KINDS = st.sampled_from(list(CallEventKind))
VAPI_TEXT = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "assistant-forwarded-call",
            "call.forwarding.operator-busy",
            "call.in-progress.error-warm-transfer-max-duration",
            "customer-ended-call",
            "busy",
            "failed",
            "connected",
            "cancelled",
        ]
    ),
)


def test_slot_holding_stages_are_the_ones_before_the_end() -> None:
    assert {s for s in AssignmentStage if s.holds_slot} == HOLDS_SLOT
    assert {S.RESERVED, S.OFFERED, S.CONNECTED, S.WRAP_UP} == HOLDS_SLOT
    assert ALLOWED_FROM[S.RESERVED] == frozenset(), "nothing moves back to reserved"
    assert all(not source - HOLDS_SLOT for source in ALLOWED_FROM.values()), "freed is final"


@pytest.mark.parametrize(
    ("stage", "kind", "reason", "status", "expected"),
    [
        (S.RESERVED, K.FORWARDING, "", "", (S.OFFERED, False)),
        (S.OFFERED, K.FORWARDING, "", "", None),
        (S.OFFERED, K.ENDED, "assistant-forwarded-call", "", (S.CONNECTED, False)),
        (S.RESERVED, K.ENDED, "assistant-forwarded-call", "", (S.CONNECTED, False)),
        (S.OFFERED, K.ENDED, "call.forwarding.operator-busy", "", (S.MISSED, True)),
        (S.OFFERED, K.ENDED, "call.forwarding.no-answer", "", (S.MISSED, True)),
        (S.OFFERED, K.ENDED, "call.in-progress.error-transfer-failed", "", (S.MISSED, True)),
        (
            S.OFFERED,
            K.ENDED,
            "call.in-progress.error-warm-transfer-assistant-cancelled",
            "",
            (S.MISSED, True),
        ),
        (S.OFFERED, K.ENDED, "customer-ended-call-before-warm-transfer", "", (S.RELEASED, False)),
        (S.OFFERED, K.ENDED, "customer-ended-call-after-warm-transfer-attempt", "", (S.RELEASED, False)),
        (S.OFFERED, K.ENDED, "customer-ended-call-during-transfer", "", (S.RELEASED, False)),
        (S.OFFERED, K.ENDED, "some-reason-vapi-added-later", "", (S.RELEASED, False)),
        (S.RESERVED, K.ENDED, "customer-ended-call", "", (S.RELEASED, False)),
        (S.RESERVED, K.ENDED, "", "", (S.RELEASED, False)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "connected", (S.CONNECTED, False)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "completed", (S.CONNECTED, False)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "busy", (S.MISSED, True)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "no-answer", (S.MISSED, True)),
        (S.RESERVED, K.TRANSFER_UPDATE, "", "voicemail", (S.MISSED, True)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "FAILED", (S.MISSED, True)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "cancelled", (S.RELEASED, False)),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "ringing", None),
        (S.OFFERED, K.TRANSFER_UPDATE, "", "", None),
        (S.CONNECTED, K.ENDED, "call.forwarding.no-answer", "", None),
        (S.CONNECTED, K.ENDED, "customer-ended-call", "", None),
        (S.CONNECTED, K.TRANSFER_UPDATE, "", "failed", None),
        (S.WRAP_UP, K.ENDED, "assistant-forwarded-call", "", None),
        (S.COMPLETED, K.FORWARDING, "", "", None),
    ],
)
def test_vapi_events_move_the_assignment_as_the_brief_says(
    stage: AssignmentStage,
    kind: CallEventKind,
    reason: str,
    status: str,
    expected: tuple[AssignmentStage, bool] | None,
) -> None:
    effect = classify_call_event(stage, kind, ended_reason=reason, transfer_status=status)
    assert (None if effect is None else (effect.to_stage, effect.counts_as_miss)) == expected
    if effect is not None:
        assert effect.reason


@given(stage=st.sampled_from([S.CONNECTED, S.WRAP_UP]), kind=KINDS, reason=VAPI_TEXT, status=VAPI_TEXT)
def test_a_connected_conversation_is_never_freed_by_any_vapi_event(
    stage: AssignmentStage, kind: CallEventKind, reason: str, status: str
) -> None:
    assert classify_call_event(stage, kind, ended_reason=reason, transfer_status=status) is None


@given(stage=STAGES, kind=KINDS, reason=VAPI_TEXT, status=VAPI_TEXT)
def test_every_effect_is_a_move_the_store_allows_and_only_misses_count(
    stage: AssignmentStage, kind: CallEventKind, reason: str, status: str
) -> None:
    effect = classify_call_event(stage, kind, ended_reason=reason, transfer_status=status)
    if effect is None:
        return
    assert stage in ALLOWED_FROM[effect.to_stage]
    assert effect.counts_as_miss == (effect.to_stage is S.MISSED)
    assert len(effect.reason) <= 300


@given(reason=st.text(max_size=80).filter(lambda r: r.strip() != "assistant-forwarded-call"))
def test_an_ended_call_without_hand_over_never_leaves_a_reservation_holding_the_slot(reason: str) -> None:
    effect = classify_call_event(S.RESERVED, K.ENDED, ended_reason=reason)
    assert effect is not None and not effect.to_stage.holds_slot


def _held(stage: AssignmentStage, minutes: int, *, purpose: str = "live") -> AssignmentRecord:
    at = T0 + timedelta(minutes=minutes)
    return AssignmentRecord(
        call_id=f"c{minutes}",
        purpose=purpose,
        agent_id="alice",
        stage=stage,
        reserved_at=at,
        expires_at=at + timedelta(hours=1),
        offered_at=at if stage is not S.RESERVED else None,
        connected_at=at if stage in (S.CONNECTED, S.WRAP_UP, S.COMPLETED) else None,
        completed_at=at + timedelta(minutes=1) if stage in (S.WRAP_UP, S.COMPLETED) else None,
    )


@pytest.mark.parametrize(
    ("status", "held", "expected"),
    [
        (AgentStatus.AVAILABLE, [], (AgentActivity.AVAILABLE, T0)),
        (AgentStatus.AWAY, [], (AgentActivity.AWAY, T0 + timedelta(hours=1))),
        (AgentStatus.OFFLINE, [], (AgentActivity.UNAVAILABLE, T0 + timedelta(hours=1))),
        (AgentStatus.AVAILABLE, [_held(S.RESERVED, 5)], (AgentActivity.RESERVED, T0 + timedelta(minutes=5))),
        (AgentStatus.AWAY, [_held(S.OFFERED, 7)], (AgentActivity.RESERVED, T0 + timedelta(minutes=7))),
        (
            AgentStatus.AVAILABLE,
            [_held(S.RESERVED, 1), _held(S.WRAP_UP, 2)],
            (AgentActivity.WRAP_UP, T0 + timedelta(minutes=3)),
        ),
        (
            AgentStatus.OFFLINE,
            [_held(S.WRAP_UP, 1), _held(S.CONNECTED, 9), _held(S.CONNECTED, 4)],
            (AgentActivity.TALKING, T0 + timedelta(minutes=4)),
        ),
        (AgentStatus.AVAILABLE, [_held(S.COMPLETED, 3)], (AgentActivity.AVAILABLE, T0)),
    ],
)
def test_agent_activity_shows_the_busiest_thing_they_do(
    status: AgentStatus, held: list[AssignmentRecord], expected: tuple[AgentActivity, datetime]
) -> None:
    view = agent_activity(status, held, idle_since=T0, status_since=T0 + timedelta(hours=1))
    assert (view.activity, view.since) == expected
