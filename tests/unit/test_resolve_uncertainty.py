"""Uncertain decisions in `resolve_escalation` on the in-memory store: what widening, the union of candidate
teams and the confirm step do to who takes the call, what the trace says, and what is counted. The same
through the real edge and routing service is in tests/edge/test_real_routing.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest

from routing_service.app.resolve import resolve_escalation
from routing_service.app.uncertainty import observe_uncertainty
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import (
    Complexity,
    Customer,
    Decision,
    DecisionKind,
    EscalationRequest,
    Policy,
    UncertaintyAction,
)
from routing_service.domain.uncertainty import LOW_CONFIDENCE, SECOND_TRANSFER, STAGE
from tests.support.in_memory_store import InMemoryDatabase
from tests.support.routing_builders import NOW, make_agent, new_decision_id, seed, techcorp_policy

CALLER = "+15551110003"
REFUND = "I was charged twice and need a refund"


@dataclass
class Counted:
    uncertain: list[tuple[str, str]] = field(default_factory=list)
    second: list[str] = field(default_factory=list)

    def uncertain_decision(self, team_id: str, action: str) -> None:
        self.uncertain.append((team_id, action))

    def second_transfer(self, team_id: str) -> None:
        self.second.append(team_id)


@pytest.fixture
def counted() -> Iterator[Counted]:
    observer = Counted()
    stop = observe_uncertainty(observer)
    yield observer
    stop()


def techcorp(action: UncertaintyAction, otherwise: UncertaintyAction = UncertaintyAction.UNION) -> Policy:
    policy = techcorp_policy()
    assert policy.uncertainty is not None
    return replace(policy, uncertainty=replace(policy.uncertainty, action=action, otherwise=otherwise))


async def staffed() -> InMemoryDatabase:
    db = InMemoryDatabase()
    await seed(
        db,
        make_agent("tess", teams=("technical",)),
        make_agent("bill", teams=("billing",)),
        make_agent("gene", teams=("general",)),
        customers=(Customer(number=CALLER, tier="standard"),),
    )
    return db


async def resolve(
    db: InMemoryDatabase,
    policy: Policy,
    *,
    tool_call_id: str = "t-1",
    category: str = "technical",
    context: str = REFUND,
    confidence: float | None = None,
    can_confirm: bool = False,
    dry_run: bool = False,
) -> Decision:
    request = EscalationRequest(
        call_id="call-1",
        tool_call_id=tool_call_id,
        caller_number=CALLER,
        issue_category=category,
        claimed_complexity=Complexity.INTERMEDIATE,
        customer_context=context,
        stated_confidence=confidence,
        can_confirm=can_confirm,
        dry_run=dry_run,
    )
    return await resolve_escalation(request, uow=db, policy=policy, now=NOW, new_id=new_decision_id)


def uncertainty_steps(decision: Decision) -> dict[str, str]:
    return {step.subject: step.detail for step in decision.trace if step.stage == STAGE}


async def test_a_confident_decision_takes_the_narrow_pool_and_says_why(counted: Counted) -> None:
    db = await staffed()
    decision = await resolve(
        db, techcorp(UncertaintyAction.WIDEN), context="The app shows an error", confidence=0.9
    )

    assert (decision.kind, decision.team_id, decision.agent_id) == (
        DecisionKind.TRANSFER_AGENT,
        "technical",
        "tess",
    )
    steps = uncertainty_steps(decision)
    assert "confidence 0.90 (lower of stated 0.90 and agreement 1.00), threshold 0.50" in steps["confidence"]
    assert LOW_CONFIDENCE not in steps
    assert counted.uncertain == []


async def test_an_uncertain_decision_widens_to_the_generalist_team(counted: Counted) -> None:
    db = await staffed()
    decision = await resolve(db, techcorp(UncertaintyAction.WIDEN))

    assert (decision.kind, decision.team_id, decision.agent_id) == (
        DecisionKind.TRANSFER_AGENT,
        "general",
        "gene",
    )
    steps = uncertainty_steps(decision)
    assert "below the threshold 0.50" in steps[LOW_CONFIDENCE]
    assert steps["general"] == "uncertain: the generalist team general instead of technical"
    assert counted.uncertain == [("general", "widen")]


async def test_a_stated_low_confidence_widens_even_when_the_call_agrees(counted: Counted) -> None:
    db = await staffed()
    decision = await resolve(db, techcorp(UncertaintyAction.WIDEN), context="an error", confidence=0.2)

    assert decision.team_id == "general"
    assert "confidence 0.20" in uncertainty_steps(decision)[LOW_CONFIDENCE]


async def test_the_union_keeps_the_stated_categorys_team_first_when_it_has_someone_free() -> None:
    db = await staffed()
    decision = await resolve(db, techcorp(UncertaintyAction.UNION))

    assert (decision.team_id, decision.agent_id) == ("technical", "tess")
    assert "union of the candidate teams technical, billing" in uncertainty_steps(decision)["union"]


async def test_the_union_takes_a_free_specialist_of_another_candidate_team_instead_of_queueing(
    counted: Counted,
) -> None:
    db = await staffed()
    async with db.uow() as u:  # the technical specialist is on another call
        await u.assignments.reserve(
            agent_id="tess", call_id="other", purpose="live", now=NOW, expires_at=NOW.replace(hour=20)
        )
        await u.commit()
    narrow = await resolve(db, techcorp(UncertaintyAction.UNION), context="an error", dry_run=True)
    widened = await resolve(db, techcorp(UncertaintyAction.UNION))

    assert narrow.kind is DecisionKind.CALLBACK  # confident: it waits for the technical team
    assert (widened.kind, widened.team_id, widened.agent_id) == (
        DecisionKind.TRANSFER_AGENT,
        "billing",
        "bill",
    )
    assert widened.rule_id == "billing-and-account"
    assert any("union: specialist of team billing reserved" in s.detail for s in widened.trace)
    assert counted.uncertain == [("billing", "union")]


async def test_the_union_queues_on_the_stated_categorys_team_when_nobody_is_free_anywhere() -> None:
    db = await staffed()
    await seed(db, busy={"tess": 1, "bill": 1})
    decision = await resolve(db, techcorp(UncertaintyAction.UNION))

    assert (decision.kind, decision.team_id) == (DecisionKind.CALLBACK, "technical")
    assert any("nobody free in the candidate teams" in s.detail for s in decision.trace)


async def test_the_function_tool_is_asked_to_confirm_the_category_and_nothing_is_reserved(
    counted: Counted,
) -> None:
    db = await staffed()
    policy = techcorp(UncertaintyAction.CONFIRM)
    decision = await resolve(db, policy, can_confirm=True)

    assert decision.kind is DecisionKind.CONFIRM_CATEGORY
    assert "is it technical, or billing?" in decision.caller_message
    assert decision.agent_id is None
    async with db.uow() as u:
        assert await u.assignments.live_for_call("call-1") is None
        assert (await u.agents.get("tess")) is not None
    assert counted.uncertain == [("", "confirm")]


async def test_the_transfer_tool_cannot_be_asked_so_the_otherwise_action_applies() -> None:
    db = await staffed()
    decision = await resolve(db, techcorp(UncertaintyAction.CONFIRM, UncertaintyAction.WIDEN))

    assert (decision.kind, decision.team_id) == (DecisionKind.TRANSFER_AGENT, "general")


async def test_after_a_confirm_the_call_is_not_asked_again_and_is_not_a_second_transfer(
    counted: Counted,
) -> None:
    db = await staffed()
    policy = techcorp(UncertaintyAction.CONFIRM)
    await resolve(db, policy, can_confirm=True)
    # the caller said it is technical after all; the keywords still disagree, so it is still uncertain
    again = await resolve(db, policy, tool_call_id="t-2", confidence=1.0, can_confirm=True)

    assert again.kind is DecisionKind.TRANSFER_AGENT
    steps = uncertainty_steps(again)
    assert "asked-before" in steps
    assert SECOND_TRANSFER not in steps
    assert counted.second == []


async def test_a_second_decision_after_an_uncertain_transfer_is_counted_against_its_team(
    counted: Counted,
) -> None:
    db = await staffed()
    policy = techcorp(UncertaintyAction.WIDEN)
    first = await resolve(db, policy)
    # the generalist did not take it (or sent it back): the assistant escalates again, now sure
    second = await resolve(db, policy, tool_call_id="t-2", category="billing", confidence=1.0)

    assert first.team_id == "general"
    assert (second.team_id, second.agent_id) == ("billing", "bill")
    assert (
        f"earlier decision {first.decision_id} (transfer_agent to general) was uncertain"
        in (uncertainty_steps(second)[SECOND_TRANSFER])
    )
    assert counted.second == ["general"]
    assert counted.uncertain == [("general", "widen")]


async def test_a_repeated_delivery_is_replayed_and_counted_once(counted: Counted) -> None:
    db = await staffed()
    policy = techcorp(UncertaintyAction.WIDEN)
    first = await resolve(db, policy)
    repeat = await resolve(db, policy)

    assert repeat.replayed and repeat.decision_id == first.decision_id
    assert counted.uncertain == [("general", "widen")]
    assert counted.second == []


async def test_a_dry_run_explains_without_counting(counted: Counted) -> None:
    db = await staffed()
    decision = await resolve(db, techcorp(UncertaintyAction.WIDEN), dry_run=True)

    assert decision.dry_run and decision.team_id == "general"
    assert counted.uncertain == []


async def test_a_policy_without_the_section_weighs_nothing() -> None:
    db = await staffed()
    decision = await resolve(db, replace(techcorp_policy(), uncertainty=None), confidence=0.1)

    assert decision.team_id == "technical"
    assert uncertainty_steps(decision) == {}


@pytest.mark.parametrize("confidence", [-0.1, 1.5, float("nan")])
async def test_a_confidence_outside_0_to_1_is_refused_naming_the_field(confidence: float) -> None:
    db = await staffed()
    with pytest.raises(InvalidRequest) as raised:
        await resolve(db, techcorp_policy(), confidence=confidence)

    assert [name for name, _ in raised.value.violations] == ["confidence"]
