"""Protobuf <-> domain conversion: the only module that knows both `routing_pb2` and the domain models.

Pure functions. `*_from_pb` functions validate what protobuf cannot (enum values outside the contract,
a missing oneof) and raise `InvalidRequest` with field violations; business validation (E.164 numbers,
capacity, lengths) belongs to the use cases.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.message import Message

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.app.promises import PromiseStats
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.fair_load import LoadSpread
from routing_service.domain.handoff import ComplexitySource, Entity, HandoffPacket, packet_text
from routing_service.domain.lifecycle import (
    AgentActivity,
    AgentActivityView,
    AssignmentRecord,
    AssignmentStage,
    CallEventKind,
)
from routing_service.domain.models import (
    Agent,
    AgentStatus,
    CallbackState,
    CallbackTicket,
    Complexity,
    Customer,
    CustomerLearnings,
    Decision,
    DecisionKind,
    Destination,
    EscalationRequest,
    SummaryMessage,
    TraceOutcome,
    TraceStep,
    TransferMode,
)
from routing_service.domain.promises import PromiseState, promise_state

# ---------------------------------------------------------------------------------------------------------
# Enums
# ---------------------------------------------------------------------------------------------------------
_COMPLEXITY_TO_PB = {
    Complexity.BASIC: pb.COMPLEXITY_BASIC,
    Complexity.INTERMEDIATE: pb.COMPLEXITY_INTERMEDIATE,
    Complexity.ADVANCED: pb.COMPLEXITY_ADVANCED,
    Complexity.CRITICAL: pb.COMPLEXITY_CRITICAL,
}
_E = TypeVar("_E")

_COMPLEXITY_FROM_PB: dict[int, Complexity] = {v: k for k, v in _COMPLEXITY_TO_PB.items()}

_KIND_TO_PB = {
    DecisionKind.TRANSFER_TEAM: pb.DECISION_KIND_TRANSFER_TEAM,
    DecisionKind.TRANSFER_AGENT: pb.DECISION_KIND_TRANSFER_AGENT,
    DecisionKind.CALLBACK: pb.DECISION_KIND_CALLBACK,
    DecisionKind.FALLBACK: pb.DECISION_KIND_FALLBACK,
    DecisionKind.CONFIRM_CATEGORY: pb.DECISION_KIND_CONFIRM_CATEGORY,
}
_KIND_FROM_PB: dict[int, DecisionKind] = {v: k for k, v in _KIND_TO_PB.items()}

_MODE_TO_PB = {
    TransferMode.BLIND_TRANSFER: pb.TRANSFER_MODE_BLIND_TRANSFER,
    TransferMode.BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER: (
        pb.TRANSFER_MODE_BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER
    ),
    TransferMode.WARM_TRANSFER_SAY_MESSAGE: pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE,
    TransferMode.WARM_TRANSFER_SAY_SUMMARY: pb.TRANSFER_MODE_WARM_TRANSFER_SAY_SUMMARY,
    TransferMode.WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_MESSAGE: (
        pb.TRANSFER_MODE_WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_MESSAGE
    ),
    TransferMode.WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_SUMMARY: (
        pb.TRANSFER_MODE_WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_SUMMARY
    ),
    TransferMode.WARM_TRANSFER_EXPERIMENTAL: pb.TRANSFER_MODE_WARM_TRANSFER_EXPERIMENTAL,
}
_MODE_FROM_PB = {v: k for k, v in _MODE_TO_PB.items()}

_STATUS_TO_PB = {
    AgentStatus.AVAILABLE: pb.AGENT_STATUS_AVAILABLE,
    AgentStatus.BUSY: pb.AGENT_STATUS_BUSY,
    AgentStatus.OFFLINE: pb.AGENT_STATUS_OFFLINE,
    AgentStatus.WRAP_UP: pb.AGENT_STATUS_WRAP_UP,
    AgentStatus.AWAY: pb.AGENT_STATUS_AWAY,
}
_STATUS_FROM_PB: dict[int, AgentStatus] = {v: k for k, v in _STATUS_TO_PB.items()}

_OUTCOME_TO_PB = {
    TraceOutcome.INFO: pb.TRACE_OUTCOME_INFO,
    TraceOutcome.MATCHED: pb.TRACE_OUTCOME_MATCHED,
    TraceOutcome.SKIPPED: pb.TRACE_OUTCOME_SKIPPED,
    TraceOutcome.REJECTED: pb.TRACE_OUTCOME_REJECTED,
    TraceOutcome.CHOSEN: pb.TRACE_OUTCOME_CHOSEN,
}
_OUTCOME_FROM_PB = {v: k for k, v in _OUTCOME_TO_PB.items()}

_STATE_TO_PB = {
    CallbackState.WAITING: pb.CALLBACK_STATE_WAITING,
    CallbackState.RESERVED: pb.CALLBACK_STATE_RESERVED,
    CallbackState.CONNECTED: pb.CALLBACK_STATE_CONNECTED,
    CallbackState.CANCELLED: pb.CALLBACK_STATE_CANCELLED,
    CallbackState.UNREACHABLE: pb.CALLBACK_STATE_UNREACHABLE,
    CallbackState.EXPIRED: pb.CALLBACK_STATE_EXPIRED,
}
_STATE_FROM_PB: dict[int, CallbackState] = {v: k for k, v in _STATE_TO_PB.items()}


def complexity_to_pb(value: Complexity | None) -> pb.Complexity.ValueType:
    """None (no claim) -> COMPLEXITY_UNSPECIFIED."""
    return _COMPLEXITY_TO_PB[value] if value is not None else pb.COMPLEXITY_UNSPECIFIED


def _enum_from_pb(table: Mapping[int, _E], value: int, *, what: str, field: str) -> _E | None:
    """UNSPECIFIED (0) -> None; a number outside the enum -> InvalidRequest naming `field`."""
    if value == 0:
        return None
    try:
        return table[value]
    except KeyError:
        raise InvalidRequest(f"unknown {what} {value}", [(field, f"unknown enum value {value}")]) from None


def complexity_from_pb(value: int, *, field: str = "complexity") -> Complexity | None:
    """UNSPECIFIED -> None; a number outside the enum -> InvalidRequest."""
    return _enum_from_pb(_COMPLEXITY_FROM_PB, value, what="complexity", field=field)


def kind_to_pb(value: DecisionKind) -> pb.DecisionKind.ValueType:
    """The proto DecisionKind."""
    return _KIND_TO_PB[value]


def kind_from_pb(value: int, *, field: str = "kind") -> DecisionKind | None:
    """UNSPECIFIED -> None (no filter); a number outside the enum -> InvalidRequest."""
    return _enum_from_pb(_KIND_FROM_PB, value, what="decision kind", field=field)


def transfer_mode_to_pb(value: TransferMode) -> pb.TransferMode.ValueType:
    """The proto TransferMode."""
    return _MODE_TO_PB[value]


def transfer_mode_from_pb(value: int) -> TransferMode:
    """The domain TransferMode (blind transfer for values it does not know)."""
    mode: TransferMode = _MODE_FROM_PB.get(value, TransferMode.BLIND_TRANSFER)  # type: ignore[call-overload]
    return mode


_STAGE_TO_PB: dict[AssignmentStage, pb.AssignmentStage.ValueType] = {
    AssignmentStage.RESERVED: pb.ASSIGNMENT_STAGE_RESERVED,
    AssignmentStage.OFFERED: pb.ASSIGNMENT_STAGE_OFFERED,
    AssignmentStage.CONNECTED: pb.ASSIGNMENT_STAGE_CONNECTED,
    AssignmentStage.WRAP_UP: pb.ASSIGNMENT_STAGE_WRAP_UP,
    AssignmentStage.COMPLETED: pb.ASSIGNMENT_STAGE_COMPLETED,
    AssignmentStage.MISSED: pb.ASSIGNMENT_STAGE_MISSED,
    AssignmentStage.RELEASED: pb.ASSIGNMENT_STAGE_RELEASED,
}
_STAGE_FROM_PB: dict[int, AssignmentStage] = {v: k for k, v in _STAGE_TO_PB.items()}
_ACTIVITY_TO_PB: dict[AgentActivity, pb.AgentActivity.ValueType] = {
    AgentActivity.AVAILABLE: pb.AGENT_ACTIVITY_AVAILABLE,
    AgentActivity.RESERVED: pb.AGENT_ACTIVITY_RESERVED,
    AgentActivity.TALKING: pb.AGENT_ACTIVITY_TALKING,
    AgentActivity.WRAP_UP: pb.AGENT_ACTIVITY_WRAP_UP,
    AgentActivity.AWAY: pb.AGENT_ACTIVITY_AWAY,
    AgentActivity.UNAVAILABLE: pb.AGENT_ACTIVITY_UNAVAILABLE,
}
_ACTIVITY_FROM_PB: dict[int, AgentActivity] = {v: k for k, v in _ACTIVITY_TO_PB.items()}
_EVENT_KIND_FROM_PB: dict[int, CallEventKind] = {
    pb.CALL_EVENT_KIND_FORWARDING: CallEventKind.FORWARDING,
    pb.CALL_EVENT_KIND_ENDED: CallEventKind.ENDED,
    pb.CALL_EVENT_KIND_TRANSFER_UPDATE: CallEventKind.TRANSFER_UPDATE,
}


def stage_to_pb(value: AssignmentStage) -> pb.AssignmentStage.ValueType:
    """The proto AssignmentStage."""
    return _STAGE_TO_PB[value]


def stage_from_pb(value: int) -> AssignmentStage | None:
    """UNSPECIFIED (or unknown) -> None."""
    return _STAGE_FROM_PB.get(value)


def agent_activity_from_pb(value: int) -> AgentActivity | None:
    """UNSPECIFIED (or unknown) -> None."""
    return _ACTIVITY_FROM_PB.get(value)


def call_event_kind_from_pb(value: int, *, field: str = "kind") -> CallEventKind | None:
    """UNSPECIFIED -> None; a number outside the enum -> InvalidRequest."""
    return _enum_from_pb(_EVENT_KIND_FROM_PB, value, what="call event kind", field=field)


def agent_status_to_pb(value: AgentStatus) -> pb.AgentStatus.ValueType:
    """The proto AgentStatus."""
    return _STATUS_TO_PB[value]


def agent_status_from_pb(value: int, *, field: str = "status") -> AgentStatus | None:
    """UNSPECIFIED -> None; a number outside the enum -> InvalidRequest."""
    return _enum_from_pb(_STATUS_FROM_PB, value, what="agent status", field=field)


def callback_state_to_pb(value: CallbackState) -> pb.CallbackState.ValueType:
    """The proto CallbackState."""
    return _STATE_TO_PB[value]


def callback_state_from_pb(value: int, *, field: str = "state") -> CallbackState | None:
    """UNSPECIFIED -> None; a number outside the enum -> InvalidRequest."""
    return _enum_from_pb(_STATE_FROM_PB, value, what="callback state", field=field)


# ---------------------------------------------------------------------------------------------------------
# Well-known types
# ---------------------------------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_to_pb(value: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp; naive datetimes are taken as UTC. (Whole seconds and non-negative nanos, as
    `Timestamp.FromDatetime` gives, computed from the difference to the epoch: FromDatetime converts through
    calendar functions, a noticeable share of a decision's servicer time.)"""
    since = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000
    )


def timestamp_from_pb(value: timestamp_pb2.Timestamp) -> datetime:
    """A timezone-aware UTC datetime."""
    return value.ToDatetime(tzinfo=UTC)


def load_spread_to_pb(spread: LoadSpread) -> pb.LoadSpread:
    """A team's spread of escalations per specialist."""
    return pb.LoadSpread(
        specialists=spread.specialists,
        escalations=spread.escalations,
        most=spread.most,
        fewest=spread.fewest,
        gini=spread.gini,
    )


def duration_to_pb(value: timedelta) -> duration_pb2.Duration:
    """A Duration: seconds and nanos of the same sign, as `Duration.FromTimedelta` gives."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    seconds, rest = divmod(abs(micros), 1_000_000)
    sign = -1 if micros < 0 else 1
    return duration_pb2.Duration(seconds=sign * seconds, nanos=sign * rest * 1000)


def duration_from_pb(value: duration_pb2.Duration) -> timedelta:
    """A timedelta."""
    return value.ToTimedelta()


# ---------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------
def destination_to_pb(value: Destination) -> pb.Destination:
    """The oneof target (number or sip_uri) plus the extension."""
    msg = pb.Destination(extension=value.extension or "")
    if value.number is not None:
        msg.number = value.number
    elif value.sip_uri is not None:
        msg.sip_uri = value.sip_uri
    return msg


def destination_from_pb(msg: pb.Destination, *, field: str = "destination") -> Destination:
    """A domain Destination; InvalidRequest when neither number nor sip_uri is set."""
    which = msg.WhichOneof("target")
    if which == "number":
        return Destination(number=msg.number, extension=msg.extension or None)
    if which == "sip_uri":
        return Destination(sip_uri=msg.sip_uri, extension=msg.extension or None)
    raise InvalidRequest(
        "destination needs a number or a SIP URI", [(field, "number or sip_uri is required")]
    )


def trace_step_to_pb(step: TraceStep) -> pb.TraceStep:
    """One trace step."""
    return pb.TraceStep(
        stage=step.stage, subject=step.subject, outcome=_OUTCOME_TO_PB[step.outcome], detail=step.detail
    )


def trace_step_from_pb(msg: pb.TraceStep) -> TraceStep:
    """One trace step (INFO for outcomes it does not know)."""
    outcome = _OUTCOME_FROM_PB.get(msg.outcome, TraceOutcome.INFO)
    return TraceStep(stage=msg.stage, subject=msg.subject, outcome=outcome, detail=msg.detail)


def _text(value: str) -> str:
    """Free text from a caller's conversation: NUL characters (which no database stores) are dropped."""
    return value.replace("\x00", "") if "\x00" in value else value


def escalation_from_pb(msg: pb.ResolveEscalationRequest) -> EscalationRequest:
    """The edge's request as the domain reads it (lengths and presence are checked by the use case)."""
    return EscalationRequest(
        call_id=msg.call_id,
        tool_call_id=msg.tool_call_id,
        caller_number=msg.caller_number,
        caller_sip_uri=msg.caller_sip_uri,
        issue_category=_text(msg.issue_category),
        claimed_complexity=complexity_from_pb(msg.complexity),
        customer_context=_text(msg.customer_context),
        escalation_reason=_text(msg.escalation_reason),
        transcript=_text(msg.transcript),
        dry_run=msg.dry_run,
        arguments_problem=_text(msg.arguments_problem),
        callback_of_call_id=msg.callback_of_call_id,
        stated_confidence=msg.confidence if msg.HasField("confidence") else None,
        can_confirm=msg.can_confirm,
        assistant_summary=_text(msg.assistant_summary),
        steps_tried=tuple(_text(step) for step in msg.steps_tried),
        stated_entities=tuple((_text(e.kind), _text(e.value)) for e in msg.entities),
    )


def nul_violations(msg: Message, prefix: str = "") -> list[tuple[str, str]]:
    """Field paths of every string (nested, repeated) that holds a NUL character, which no store accepts."""
    found: list[tuple[str, str]] = []
    for descriptor, value in msg.ListFields():
        path = f"{prefix}{descriptor.name}"
        if descriptor.type == descriptor.TYPE_STRING:
            values = value if descriptor.is_repeated else [value]
            if any("\x00" in v for v in values):
                found.append((path, "must not contain NUL characters"))
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            items = value if descriptor.is_repeated else [value]
            for item in items:
                found += nul_violations(item, f"{path}.")
    return found


def escalation_to_pb(value: EscalationRequest) -> pb.ResolveEscalationRequest:
    """The request a client (the edge, the CLI) sends."""
    return pb.ResolveEscalationRequest(
        call_id=value.call_id,
        tool_call_id=value.tool_call_id,
        caller_number=value.caller_number,
        caller_sip_uri=value.caller_sip_uri,
        issue_category=value.issue_category,
        complexity=complexity_to_pb(value.claimed_complexity),
        customer_context=value.customer_context,
        escalation_reason=value.escalation_reason,
        transcript=value.transcript,
        dry_run=value.dry_run,
        arguments_problem=value.arguments_problem,
        callback_of_call_id=value.callback_of_call_id,
        assistant_summary=value.assistant_summary,
        steps_tried=list(value.steps_tried),
        entities=[pb.HandoffEntity(kind=kind, value=text) for kind, text in value.stated_entities],
    )


_PROMISE_TO_PB = {
    PromiseState.ON_TRACK: pb.PROMISE_STATE_ON_TRACK,
    PromiseState.AT_RISK: pb.PROMISE_STATE_AT_RISK,
    PromiseState.BREACHED: pb.PROMISE_STATE_BREACHED,
    PromiseState.KEPT: pb.PROMISE_STATE_KEPT,
}


def promise_state_of(ticket: CallbackTicket, now: datetime | None) -> PromiseState | None:
    """The ticket's promise state at `now` (None: as it was made, e.g. in a decision), judged at its end
    when it ended without starting; a breach routing recorded stays one."""
    at = now or ticket.promise_from or ticket.enqueued_at
    if not ticket.state.is_open and ticket.finished_at is not None:
        at = min(at, ticket.finished_at)
    state = promise_state(
        at_risk_at=ticket.at_risk_at, due_by=ticket.promised_by, started_at=ticket.started_at, now=at
    )
    if ticket.breached_at is not None and state is not None and state is not PromiseState.KEPT:
        return PromiseState.BREACHED
    return state


def callback_to_pb(
    ticket: CallbackTicket,
    *,
    estimated_wait: timedelta | None = None,
    with_texts: bool = False,
    now: datetime | None = None,
) -> pb.CallbackTicket:
    """A queue ticket, with the estimated wait when known and its promise's state at `now`; `with_texts`
    adds the caller's context and reason (ListCallbacks only: decisions and claims do not need up to 8 KiB
    more per ticket)."""
    msg = pb.CallbackTicket(
        call_id=ticket.call_id,
        team_id=ticket.team_id,
        state=_STATE_TO_PB[ticket.state],
        position=ticket.position,
        priority=ticket.priority,
        enqueued_at=timestamp_to_pb(ticket.enqueued_at),
        agent_id=ticket.agent_id or "",
        tier=ticket.tier,
        issue_category=ticket.issue_category,
        effective_complexity=complexity_to_pb(ticket.effective_complexity),
        decision_id=ticket.decision_id,
        caller_number=ticket.caller_number,
        first_message=ticket.first_message,
    )
    if ticket.reserved_until is not None:
        msg.reserved_until.CopyFrom(timestamp_to_pb(ticket.reserved_until))
    if ticket.finished_at is not None:
        msg.finished_at.CopyFrom(timestamp_to_pb(ticket.finished_at))
    if estimated_wait is not None:
        msg.estimated_wait.CopyFrom(duration_to_pb(estimated_wait))
    if ticket.promised_by is not None:
        msg.promised_by.CopyFrom(timestamp_to_pb(ticket.promised_by))
        if ticket.promise_from is not None:
            msg.promise_from.CopyFrom(timestamp_to_pb(ticket.promise_from))
        if ticket.at_risk_at is not None:
            msg.promise_at_risk_at.CopyFrom(timestamp_to_pb(ticket.at_risk_at))
        promise = promise_state_of(ticket, now)
        if promise is not None:
            msg.promise_state = _PROMISE_TO_PB[promise]
    if ticket.started_at is not None:
        msg.started_at.CopyFrom(timestamp_to_pb(ticket.started_at))
    if with_texts:
        msg.customer_context = ticket.customer_context
        msg.escalation_reason = ticket.escalation_reason
    return msg


def callback_from_pb(msg: pb.CallbackTicket) -> CallbackTicket:
    """Lossy for fields the proto does not carry (service_key, note); the context and reason are empty
    unless the ticket came from ListCallbacks."""
    return CallbackTicket(
        call_id=msg.call_id,
        team_id=msg.team_id,
        state=_STATE_FROM_PB.get(msg.state, CallbackState.WAITING),
        caller_number=msg.caller_number,
        tier=msg.tier,
        issue_category=msg.issue_category,
        effective_complexity=complexity_from_pb(msg.effective_complexity) or Complexity.BASIC,
        priority=msg.priority,
        service_key=0.0,
        enqueued_at=timestamp_from_pb(msg.enqueued_at),
        decision_id=msg.decision_id,
        customer_context=msg.customer_context,
        escalation_reason=msg.escalation_reason,
        agent_id=msg.agent_id or None,
        reserved_until=timestamp_from_pb(msg.reserved_until) if msg.HasField("reserved_until") else None,
        finished_at=timestamp_from_pb(msg.finished_at) if msg.HasField("finished_at") else None,
        position=msg.position,
        first_message=msg.first_message,
        promise_from=timestamp_from_pb(msg.promise_from) if msg.HasField("promise_from") else None,
        promised_by=timestamp_from_pb(msg.promised_by) if msg.HasField("promised_by") else None,
        at_risk_at=(
            timestamp_from_pb(msg.promise_at_risk_at) if msg.HasField("promise_at_risk_at") else None
        ),
        started_at=timestamp_from_pb(msg.started_at) if msg.HasField("started_at") else None,
    )


def decision_to_pb(value: Decision, *, with_handoff: bool = True) -> pb.Decision:
    """The full decision, trace and callback ticket included; its handoff packet unless `with_handoff` is
    False (replies whose request did not ask for it)."""
    # Sub-messages as dicts, which the constructor builds in place (typed Any: the stubs name only message
    # objects). A message built first is copied in: the trace's dozen or more steps built that way were a
    # third of this function's time.
    outcomes = _OUTCOME_TO_PB
    trace: Any = [
        {"stage": s.stage, "subject": s.subject, "outcome": outcomes[s.outcome], "detail": s.detail}
        for s in value.trace
    ]
    summaries: Any = [{"role": m.role, "content": m.content} for m in value.summary_messages]
    msg = pb.Decision(
        decision_id=value.decision_id,
        call_id=value.call_id,
        tool_call_id=value.tool_call_id,
        kind=_KIND_TO_PB[value.kind],
        team_id=value.team_id,
        team_display_name=value.team_display_name,
        agent_id=value.agent_id or "",
        agent_display_name=value.agent_display_name,
        destination=destination_to_pb(value.destination),
        caller_message=value.caller_message,
        transfer_mode=_MODE_TO_PB[value.transfer_mode],
        handoff_message=value.handoff_message,
        summary_messages=summaries,
        trace=trace,
        effective_complexity=complexity_to_pb(value.effective_complexity),
        claimed_complexity=complexity_to_pb(value.claimed_complexity),
        tier=value.tier,
        issue_category=value.issue_category,
        rule_id=value.rule_id,
        replayed=value.replayed,
        dry_run=value.dry_run,
        decided_at=timestamp_to_pb(value.decided_at),
        reason=value.reason,
        caller_number=value.caller_number,
        missed_agent_ids=list(value.missed_agent_ids),
        callback_of_call_id=value.callback_of_call_id,
    )
    if value.estimated_wait is not None:
        msg.estimated_wait.CopyFrom(duration_to_pb(value.estimated_wait))
    if value.callback is not None:
        msg.callback.CopyFrom(callback_to_pb(value.callback, estimated_wait=value.estimated_wait))
    if with_handoff and value.handoff is not None:
        msg.handoff.CopyFrom(handoff_to_pb(value.handoff))
    return msg


def handoff_to_pb(value: HandoffPacket) -> pb.HandoffPacket:
    """The handoff packet, with its text (`{handoff_summary}`)."""
    msg = pb.HandoffPacket(
        decision_id=value.decision_id,
        call_id=value.call_id,
        summary=value.summary,
        escalation_reason=value.escalation_reason,
        customer_context=value.customer_context,
        issue_category=value.issue_category,
        category_source=value.category_source,
        complexity=complexity_to_pb(value.complexity),
        claimed_complexity=complexity_to_pb(value.claimed_complexity),
        complexity_sources=[
            pb.ComplexitySource(source=s.source, level=complexity_to_pb(s.level), detail=s.detail)
            for s in value.complexity_sources
        ],
        entities=[pb.HandoffEntity(kind=e.kind, value=e.value, source=e.source) for e in value.entities],
        steps_tried=list(value.steps_tried),
        tier=value.tier,
        account_name=value.account_name,
        previous_escalations=value.previous_escalations,
        last_agent_id=value.last_agent_id,
        caller_number=value.caller_number,
        earlier_call_id=value.earlier_call_id,
        earlier_decision_id=value.earlier_decision_id,
        truncated=list(value.truncated),
        text=packet_text(value),
    )
    if value.stated_confidence is not None:
        msg.stated_confidence = value.stated_confidence
    if value.decision_confidence is not None:
        msg.decision_confidence = value.decision_confidence
    return msg


def handoff_from_pb(msg: pb.HandoffPacket) -> HandoffPacket:
    """For clients and round-trip tests."""
    return HandoffPacket(
        decision_id=msg.decision_id,
        call_id=msg.call_id,
        issue_category=msg.issue_category,
        category_source=msg.category_source,
        complexity=complexity_from_pb(msg.complexity) or Complexity.BASIC,
        summary=msg.summary,
        escalation_reason=msg.escalation_reason,
        customer_context=msg.customer_context,
        claimed_complexity=complexity_from_pb(msg.claimed_complexity),
        complexity_sources=tuple(
            ComplexitySource(s.source, complexity_from_pb(s.level) or Complexity.BASIC, s.detail)
            for s in msg.complexity_sources
        ),
        entities=tuple(Entity(e.kind, e.value, e.source) for e in msg.entities),
        steps_tried=tuple(msg.steps_tried),
        stated_confidence=msg.stated_confidence if msg.HasField("stated_confidence") else None,
        decision_confidence=msg.decision_confidence if msg.HasField("decision_confidence") else None,
        tier=msg.tier,
        account_name=msg.account_name,
        previous_escalations=msg.previous_escalations,
        last_agent_id=msg.last_agent_id,
        caller_number=msg.caller_number,
        earlier_call_id=msg.earlier_call_id,
        earlier_decision_id=msg.earlier_decision_id,
        truncated=tuple(msg.truncated),
    )


def handoff_response_to_pb(decision: Decision) -> pb.GetHandoffPacketResponse:
    """`GetHandoffPacket`'s answer: the decision's packet and where the decision sent the call."""
    msg = pb.GetHandoffPacketResponse(
        team_id=decision.team_id,
        agent_id=decision.agent_id or "",
        kind=_KIND_TO_PB[decision.kind],
        decided_at=timestamp_to_pb(decision.decided_at),
    )
    if decision.handoff is not None:
        msg.packet.CopyFrom(handoff_to_pb(decision.handoff))
    return msg


def decision_from_pb(msg: pb.Decision) -> Decision:
    """For clients and round-trip tests."""
    return Decision(
        decision_id=msg.decision_id,
        call_id=msg.call_id,
        tool_call_id=msg.tool_call_id,
        kind=_KIND_FROM_PB.get(msg.kind, DecisionKind.FALLBACK),
        destination=destination_from_pb(msg.destination),
        caller_message=msg.caller_message,
        transfer_mode=transfer_mode_from_pb(msg.transfer_mode),
        effective_complexity=complexity_from_pb(msg.effective_complexity) or Complexity.BASIC,
        claimed_complexity=complexity_from_pb(msg.claimed_complexity),
        tier=msg.tier,
        issue_category=msg.issue_category,
        decided_at=timestamp_from_pb(msg.decided_at),
        trace=tuple(trace_step_from_pb(s) for s in msg.trace),
        reason=msg.reason,
        team_id=msg.team_id,
        team_display_name=msg.team_display_name,
        agent_id=msg.agent_id or None,
        agent_display_name=msg.agent_display_name,
        handoff_message=msg.handoff_message,
        summary_messages=tuple(SummaryMessage(role=m.role, content=m.content) for m in msg.summary_messages),
        estimated_wait=duration_from_pb(msg.estimated_wait) if msg.HasField("estimated_wait") else None,
        rule_id=msg.rule_id,
        caller_number=msg.caller_number,
        callback=callback_from_pb(msg.callback) if msg.HasField("callback") else None,
        replayed=msg.replayed,
        dry_run=msg.dry_run,
        missed_agent_ids=tuple(msg.missed_agent_ids),
        callback_of_call_id=msg.callback_of_call_id,
        handoff=handoff_from_pb(msg.handoff) if msg.HasField("handoff") else None,
    )


def customer_to_pb(value: Customer) -> pb.Customer:
    """A customer record."""
    msg = pb.Customer(
        number=value.number,
        tier=value.tier,
        account_name=value.account_name,
        previous_escalations=value.previous_escalations,
        last_agent_id=value.last_agent_id or "",
    )
    if value.updated_at is not None:
        msg.updated_at.CopyFrom(timestamp_to_pb(value.updated_at))
    if value.learned is not None:
        msg.learnings.extend(customer_learnings_to_pb(value.learned))
    return msg


PREFERRED_TEAM = "preferred-team"
COMPLEXITY_CEILING = "complexity-ceiling"
"""`CustomerLearning.kind` values."""


def customer_learnings_to_pb(value: CustomerLearnings) -> list[pb.CustomerLearning]:
    """What reviews taught about a customer, one message a kind that was ever learned (expired included)."""
    found: list[pb.CustomerLearning] = []
    if value.preferred_team is not None:
        item = pb.CustomerLearning(
            kind=PREFERRED_TEAM,
            value=value.preferred_team,
            category=value.preferred_team_category or "",
            source_call_id=value.preferred_team_call_id or "",
        )
        if value.preferred_team_until is not None:
            item.expires_at.CopyFrom(timestamp_to_pb(value.preferred_team_until))
        found.append(item)
    if value.complexity_ceiling is not None:
        item = pb.CustomerLearning(
            kind=COMPLEXITY_CEILING,
            value=value.complexity_ceiling.label,
            source_call_id=value.complexity_ceiling_call_id or "",
        )
        if value.complexity_ceiling_until is not None:
            item.expires_at.CopyFrom(timestamp_to_pb(value.complexity_ceiling_until))
        found.append(item)
    return found


def customer_from_pb(msg: pb.Customer) -> Customer:
    """As given (the number is normalised and validated by the use case)."""
    return Customer(
        number=msg.number,
        tier=msg.tier,
        account_name=msg.account_name,
        previous_escalations=msg.previous_escalations,
        last_agent_id=msg.last_agent_id or None,
        updated_at=timestamp_from_pb(msg.updated_at) if msg.HasField("updated_at") else None,
    )


def assignment_to_pb(value: AssignmentRecord) -> pb.Assignment:
    """One assignment of a specialist to a call."""
    msg = pb.Assignment(
        call_id=value.call_id,
        agent_id=value.agent_id,
        team_id=value.team_id or "",
        purpose=value.purpose,
        stage=_STAGE_TO_PB[value.stage],
        reserved_at=timestamp_to_pb(value.reserved_at),
        reason=value.reason,
    )
    for name in ("offered_at", "connected_at", "completed_at", "released_at"):
        at = getattr(value, name)
        if at is not None:
            getattr(msg, name).CopyFrom(timestamp_to_pb(at))
    if value.holds_slot:
        msg.expires_at.CopyFrom(timestamp_to_pb(value.expires_at))
    return msg


def agent_to_pb(value: Agent, activity: AgentActivityView | None = None) -> pb.Agent:
    """A specialist, with the read-only load fields (and what they are doing now, when known)."""
    msg = pb.Agent(
        agent_id=value.agent_id,
        display_name=value.display_name,
        extension=value.destination.extension or "",
        team_ids=list(value.team_ids),
        skills=sorted(value.skills),
        max_complexity=complexity_to_pb(value.max_complexity),
        capacity=value.capacity,
        status=_STATUS_TO_PB[value.status],
        active_assignments=value.active_assignments,
        missed_in_row=value.missed_in_row,
    )
    if activity is not None:
        msg.activity = _ACTIVITY_TO_PB[activity.activity]
        if activity.since is not None:
            msg.activity_since.CopyFrom(timestamp_to_pb(activity.since))
    if value.destination.number is not None:
        msg.number = value.destination.number
    elif value.destination.sip_uri is not None:
        msg.sip_uri = value.destination.sip_uri
    if value.idle_since is not None:
        msg.idle_since.CopyFrom(timestamp_to_pb(value.idle_since))
    if value.updated_at is not None:
        msg.updated_at.CopyFrom(timestamp_to_pb(value.updated_at))
    return msg


def agent_from_pb(msg: pb.Agent, *, field: str = "agent") -> tuple[Agent, bool]:
    """(agent, status_given). A missing status means AVAILABLE for a new agent and "keep" for an existing
    one, hence the flag. A missing max_complexity means BASIC. Raises InvalidRequest for a missing contact
    or enum values outside the contract (all problems at once)."""
    violations: list[tuple[str, str]] = []
    which = msg.WhichOneof("contact")
    destination: Destination | None = None
    if which == "number":
        destination = Destination(number=msg.number, extension=msg.extension or None)
    elif which == "sip_uri":
        destination = Destination(sip_uri=msg.sip_uri, extension=msg.extension or None)
    else:
        violations.append((f"{field}.number", "a number (E.164) or sip_uri is required"))
    max_complexity: Complexity | None = Complexity.BASIC
    status: AgentStatus | None = None
    try:
        max_complexity = complexity_from_pb(msg.max_complexity, field=f"{field}.max_complexity")
    except InvalidRequest as exc:
        violations += exc.violations
    try:
        status = agent_status_from_pb(msg.status, field=f"{field}.status")
    except InvalidRequest as exc:
        violations += exc.violations
    if violations or destination is None:
        raise InvalidRequest("invalid agent", violations)
    agent = Agent(
        agent_id=msg.agent_id,
        display_name=msg.display_name,
        destination=destination,
        team_ids=tuple(msg.team_ids),
        skills=frozenset(msg.skills),
        max_complexity=max_complexity or Complexity.BASIC,
        capacity=msg.capacity,
        status=status or AgentStatus.AVAILABLE,
        active_assignments=msg.active_assignments,
        idle_since=timestamp_from_pb(msg.idle_since) if msg.HasField("idle_since") else None,
        updated_at=timestamp_from_pb(msg.updated_at) if msg.HasField("updated_at") else None,
        missed_in_row=msg.missed_in_row,
    )
    return agent, status is not None


def promise_stats_to_pb(stats: PromiseStats | None, msg: pb.TeamQueueStatus) -> None:
    """A team's kept rates and estimate accuracy into its queue status (unset fields: no data)."""
    if stats is None:
        return
    if stats.kept_rate_1h is not None:
        msg.promises_kept_last_hour = stats.kept_rate_1h
    if stats.kept_rate_24h is not None:
        msg.promises_kept_last_day = stats.kept_rate_24h
    if stats.accuracy is not None:
        msg.promise_error_median.CopyFrom(duration_to_pb(stats.accuracy.median))
        msg.promise_error_p90.CopyFrom(duration_to_pb(stats.accuracy.p90))
        msg.promise_error_samples = stats.accuracy.samples
