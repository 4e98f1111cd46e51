"""One spelling per state and outcome: where a state crosses the gRPC boundary (routing's domain enum ->
`routing_pb2` -> the workflows' enum), both sides spell it the same, and the workflows' own vocabularies
agree where they name the same thing."""

from __future__ import annotations

import pytest

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.app.callbacks import ClaimOutcome as RoutingClaimOutcome
from routing_service.domain.lifecycle import (
    TRANSFER_CONNECTED,
    TRANSFER_NOT_TAKEN,
    AgentActivity,
    AssignmentStage,
    TransferStatus,
)
from routing_service.domain.models import AgentStatus, CallbackState
from routing_service.grpc import mapping
from routing_service.grpc.servicer import _CLAIM_TO_PB
from workflows.activities import _CLAIM_OUTCOMES, _phase
from workflows.callback import initial_search_attributes
from workflows.inputs import CallbackPhase, QueueCallbackInput, ReviewState, Verdict
from workflows.ledger import ENDED_STATES, DialState
from workflows.payloads import ClaimOutcome, DialOutcome
from workflows.review import VERDICTS
from workflows.search_attributes import CALLBACK_STATE


@pytest.mark.parametrize("state", list(CallbackState))
def test_ticket_state_reaches_the_workflows_with_its_spelling(state: CallbackState) -> None:
    assert _phase(mapping.callback_state_to_pb(state)) == CallbackPhase(state.value)


def test_workflow_phases_are_routings_ticket_states_plus_their_own() -> None:
    own = {CallbackPhase.UNSPECIFIED, CallbackPhase.CLOSED, CallbackPhase.DIALLING, CallbackPhase.RETRY_WAIT}
    assert {p.value for p in CallbackPhase} - {p.value for p in own} == {s.value for s in CallbackState}
    assert {p for p in CallbackPhase if p.is_open_ticket} == {
        CallbackPhase(s.value) for s in CallbackState if s.is_open
    }
    assert _phase(pb.CALLBACK_STATE_UNSPECIFIED) is CallbackPhase.UNSPECIFIED


@pytest.mark.parametrize("outcome", list(RoutingClaimOutcome))
def test_claim_outcome_reaches_the_workflows_with_its_spelling(outcome: RoutingClaimOutcome) -> None:
    received = _CLAIM_OUTCOMES[_CLAIM_TO_PB[outcome]]
    assert received is ClaimOutcome(outcome.value)


def test_every_workflow_claim_outcome_is_one_routing_gives() -> None:
    assert {o.value for o in ClaimOutcome} == {o.value for o in RoutingClaimOutcome}


def test_ledger_verdicts_are_spelled_as_the_dial_outcomes() -> None:
    assert {s.value for s in ENDED_STATES} == {DialOutcome.CONNECTED.value, DialOutcome.NOT_REACHED.value}
    assert DialState(DialOutcome.UNCERTAIN.value) is DialState.UNCERTAIN
    assert DialState("reached") is DialState.CONNECTED, "rows of earlier versions"
    with pytest.raises(ValueError):
        DialState("connected-ish")


def test_wrap_up_is_spelled_alike_in_stage_status_and_activity() -> None:
    spellings = {AssignmentStage.WRAP_UP.value, AgentActivity.WRAP_UP.value, AgentStatus.WRAP_UP.value}
    assert spellings == {"wrap-up"}
    assert mapping.agent_activity_from_pb(pb.AGENT_ACTIVITY_WRAP_UP) is AgentActivity.WRAP_UP


def test_transfer_status_groups_are_disjoint_and_leave_out_cancelled() -> None:
    assert not TRANSFER_CONNECTED & TRANSFER_NOT_TAKEN
    assert TransferStatus.CANCELLED not in TRANSFER_CONNECTED | TRANSFER_NOT_TAKEN
    assert "no-answer" in TRANSFER_NOT_TAKEN, "Vapi's spelling"


def test_search_attribute_starts_as_the_waiting_phase() -> None:
    data = QueueCallbackInput(call_id="c", customer_number="+14155550123", masked_number="x", team_id="t")
    assert initial_search_attributes(data).get(CALLBACK_STATE) == CallbackPhase.WAITING.value == "waiting"


def test_review_vocabulary_keeps_the_recorded_spellings() -> None:
    assert [s.value for s in ReviewState] == [
        "gathering",
        "waiting-callback",
        "recorded",
        "awaiting-review",
        "overdue",
        "completed",
        "abandoned",
    ]
    assert VERDICTS == (
        Verdict.CONFIRMED,
        Verdict.DISMISSED,
        Verdict.RESOLVED,
        Verdict.WRONG_CATEGORY,
        Verdict.SHOULD_NOT_HAVE_ESCALATED,
    )
    assert [v.value for v in VERDICTS] == [
        "confirmed",
        "dismissed",
        "resolved",
        "wrong-category",
        "should-not-have-escalated",
    ]


def test_routing_knows_every_verdict_by_the_workflow_spelling() -> None:
    """Routing reads verdicts as strings (it imports no workflow code): the spellings must agree."""
    from routing_service.app.review_outcomes import VERDICTS as ROUTING_VERDICTS
    from routing_service.domain import learning

    assert {v.value for v in Verdict} == set(ROUTING_VERDICTS)
    assert Verdict.WRONG_CATEGORY.value == learning.VERDICT_WRONG_CATEGORY
    assert Verdict.SHOULD_NOT_HAVE_ESCALATED.value == learning.VERDICT_SHOULD_NOT_HAVE_ESCALATED
    assert Verdict.CONFIRMED.value == learning.VERDICT_CONFIRMED
