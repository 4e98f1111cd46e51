"""Round trips and validation of the proto <-> domain mapping (routing_service/grpc/mapping.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import (
    Agent,
    AgentStatus,
    CallbackState,
    CallbackTicket,
    Complexity,
    Customer,
    Decision,
    DecisionKind,
    Destination,
    EscalationRequest,
    SummaryMessage,
    TraceOutcome,
    TraceStep,
    TransferMode,
)
from routing_service.grpc import mapping

NOW = datetime(2026, 11, 23, 9, 30, 15, 123000, tzinfo=UTC)


def _ticket() -> CallbackTicket:
    return CallbackTicket(
        call_id="call-1",
        team_id="technical",
        state=CallbackState.RESERVED,
        caller_number="+15551234567",
        tier="premium",
        issue_category="technical",
        effective_complexity=Complexity.ADVANCED,
        priority=30,
        service_key=0.0,
        enqueued_at=NOW,
        decision_id="d1",
        agent_id="a1",
        reserved_until=NOW + timedelta(minutes=5),
        position=2,
        first_message="Hello, this is TechCorp calling back about your technical issue.",
    )


def _decision(**changes: object) -> Decision:
    base = Decision(
        decision_id="0001",
        call_id="call-1",
        tool_call_id="tool-1",
        kind=DecisionKind.CALLBACK,
        destination=Destination(number="+15550100600", extension="12"),
        caller_message="All specialists are busy.",
        transfer_mode=TransferMode.WARM_TRANSFER_SAY_SUMMARY,
        effective_complexity=Complexity.CRITICAL,
        claimed_complexity=Complexity.BASIC,
        tier="enterprise",
        issue_category="technical",
        decided_at=NOW,
        trace=(
            TraceStep("rule", "r1", TraceOutcome.SKIPPED, "tier standard not in {enterprise}"),
            TraceStep("candidate", "a1", TraceOutcome.REJECTED, "busy"),
        ),
        reason="no specialist free",
        team_id="technical",
        team_display_name="Technical",
        handoff_message="hello {{transcript}}",
        summary_messages=(SummaryMessage("system", "Summarize {{transcript}}"),),
        estimated_wait=timedelta(minutes=7, seconds=30),
        rule_id="technical-advanced",
        caller_number="+15551234567",
        callback=_ticket(),
        replayed=True,
        dry_run=False,
        missed_agent_ids=("a7", "a9"),
        callback_of_call_id="call-0",
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def test_decision_round_trips_when_every_field_is_set() -> None:
    decision = _decision()
    back = mapping.decision_from_pb(mapping.decision_to_pb(decision))
    assert back.callback is not None and decision.callback is not None
    assert back.callback.agent_id == "a1" and back.callback.position == 2
    assert back.callback.reserved_until == decision.callback.reserved_until
    assert back.callback.first_message == decision.callback.first_message
    from dataclasses import replace

    assert replace(back, callback=None) == replace(decision, callback=None)


def test_decision_round_trips_when_optional_fields_are_empty() -> None:
    decision = _decision(
        kind=DecisionKind.TRANSFER_AGENT,
        destination=Destination(sip_uri="sip:a@example.com"),
        claimed_complexity=None,
        estimated_wait=None,
        callback=None,
        agent_id="a1",
        agent_display_name="Ann",
        summary_messages=(),
        replayed=False,
        dry_run=True,
    )
    assert mapping.decision_from_pb(mapping.decision_to_pb(decision)) == decision


def test_decision_to_pb_sets_the_callback_wait_when_queued() -> None:
    msg = mapping.decision_to_pb(_decision())
    assert msg.kind == pb.DECISION_KIND_CALLBACK
    assert msg.callback.estimated_wait.ToTimedelta() == timedelta(minutes=7, seconds=30)
    assert msg.callback.state == pb.CALLBACK_STATE_RESERVED
    assert msg.destination.WhichOneof("target") == "number"


@pytest.mark.parametrize("complexity", [None, *Complexity])
def test_escalation_round_trips_when_complexity_is(complexity: Complexity | None) -> None:
    request = EscalationRequest(
        call_id="c",
        tool_call_id="t",
        caller_number="+1 (555) 123-4567",
        caller_sip_uri="sip:x@y",
        issue_category="billing",
        claimed_complexity=complexity,
        customer_context="ctx",
        escalation_reason="why",
        transcript="long",
        dry_run=True,
        arguments_problem="absent",
        callback_of_call_id="call-0",
    )
    assert mapping.escalation_from_pb(mapping.escalation_to_pb(request)) == request


def test_escalation_from_pb_rejects_unknown_complexity_when_out_of_enum() -> None:
    with pytest.raises(InvalidRequest) as info:
        mapping.escalation_from_pb(
            pb.ResolveEscalationRequest(call_id="c", complexity=pb.Complexity.ValueType(42))
        )
    assert info.value.violations == (("complexity", "unknown enum value 42"),)


def test_agent_round_trips_when_given_a_number() -> None:
    agent = Agent(
        agent_id="a1",
        display_name="Ann",
        destination=Destination(number="+15550100201", extension="7"),
        team_ids=("technical", "enterprise"),
        skills=frozenset({"api", "sso"}),
        max_complexity=Complexity.CRITICAL,
        capacity=2,
        status=AgentStatus.WRAP_UP,
        active_assignments=1,
        idle_since=NOW,
        updated_at=NOW,
    )
    back, status_given = mapping.agent_from_pb(mapping.agent_to_pb(agent))
    assert back == agent
    assert status_given


def test_agent_from_pb_reports_every_problem_when_contact_and_enums_are_bad() -> None:
    msg = pb.Agent(
        agent_id="a", max_complexity=pb.Complexity.ValueType(9), status=pb.AgentStatus.ValueType(17)
    )
    with pytest.raises(InvalidRequest) as info:
        mapping.agent_from_pb(msg)
    fields = [f for f, _ in info.value.violations]
    assert fields == ["agent.number", "agent.max_complexity", "agent.status"]


def test_agent_from_pb_flags_missing_status_when_unspecified() -> None:
    agent, status_given = mapping.agent_from_pb(pb.Agent(agent_id="a", sip_uri="sip:a@b", capacity=1))
    assert not status_given
    assert agent.status is AgentStatus.AVAILABLE
    assert agent.max_complexity is Complexity.BASIC


def test_customer_round_trips_when_last_agent_is_set_or_not() -> None:
    for last in ("a1", None):
        customer = Customer("+1234567890", "enterprise", "TechCorp Enterprise", 3, last, NOW)
        assert mapping.customer_from_pb(mapping.customer_to_pb(customer)) == customer


@pytest.mark.parametrize("state", list(CallbackState))
def test_callback_state_round_trips_when(state: CallbackState) -> None:
    assert mapping.callback_state_from_pb(mapping.callback_state_to_pb(state)) is state


@pytest.mark.parametrize("status", list(AgentStatus))
def test_agent_status_round_trips_when(status: AgentStatus) -> None:
    assert mapping.agent_status_from_pb(mapping.agent_status_to_pb(status)) is status


def test_timestamp_keeps_utc_when_given_naive_or_aware_times() -> None:
    assert mapping.timestamp_from_pb(mapping.timestamp_to_pb(NOW)) == NOW
    naive = NOW.replace(tzinfo=None)
    assert mapping.timestamp_from_pb(mapping.timestamp_to_pb(naive)) == NOW


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=5, minutes=30))]
        ),
    )
)
def test_timestamp_matches_protobufs_own_conversion_for_any_aware_time(moment: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(moment)
    assert mapping.timestamp_to_pb(moment) == expected


@settings(max_examples=300, deadline=None)
@given(value=st.timedeltas(min_value=timedelta(days=-10_000), max_value=timedelta(days=10_000)))
def test_duration_matches_protobufs_own_conversion_for_any_sign(value: timedelta) -> None:
    expected = duration_pb2.Duration()
    expected.FromTimedelta(value)
    assert mapping.duration_to_pb(value) == expected
    assert mapping.duration_from_pb(mapping.duration_to_pb(value)) == value


def test_callback_to_pb_carries_the_caller_texts_only_when_asked() -> None:
    from dataclasses import replace

    ticket = replace(_ticket(), customer_context="API returns 500", escalation_reason="needs a specialist")
    plain = mapping.callback_to_pb(ticket)
    listed = mapping.callback_to_pb(ticket, with_texts=True)
    assert (plain.customer_context, plain.escalation_reason) == ("", "")
    assert (listed.customer_context, listed.escalation_reason) == ("API returns 500", "needs a specialist")
    back = mapping.callback_from_pb(listed)
    assert (back.customer_context, back.escalation_reason) == ("API returns 500", "needs a specialist")
