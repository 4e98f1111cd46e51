"""Widening over time (routing_service.domain.widening) and the policy's `widening` section: which step is in
force after a wait, what it relaxes, which overflow teams it allows, and what the loader rejects."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_service.app.availability import AvailabilityEvent
from routing_service.app.widening import woken_by
from routing_service.domain.models import (
    CallbackState,
    CallbackTicket,
    Complexity,
    Policy,
    TraceOutcome,
    WideningPolicy,
    WideningStep,
)
from routing_service.domain.widening import current_step, step_label, teams_widening_to, widening_scope
from routing_service.policy import load_policy
from routing_service.policy.errors import PolicyError
from routing_service.policy.loader import parse_policy
from tests.support.in_memory_store import InMemoryDatabase

ROOT = Path(__file__).resolve().parents[2]
TECHCORP = ROOT / "examples" / "techcorp.yaml"
T0 = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def techcorp() -> Policy:
    return load_policy(TECHCORP)


def ticket(
    team_id: str = "technical",
    *,
    tier: str = "standard",
    complexity: Complexity = Complexity.ADVANCED,
    enqueued_at: datetime = T0,
) -> CallbackTicket:
    return CallbackTicket(
        call_id="call-1",
        team_id=team_id,
        state=CallbackState.WAITING,
        caller_number="+15551230000",
        tier=tier,
        issue_category="technical",
        effective_complexity=complexity,
        priority=0,
        service_key=enqueued_at.timestamp(),
        enqueued_at=enqueued_at,
        decision_id="d-1",
    )


def test_techcorp_widens_technical_in_two_steps(techcorp: Policy) -> None:
    steps = techcorp.widening.steps["technical"]
    assert [s.after for s in steps] == [timedelta(minutes=5), timedelta(minutes=10)]
    assert steps[0].relax_complexity_levels == 1
    assert steps[1].overflow_teams == ("enterprise",)
    assert techcorp.widening.tier_exclusions["enterprise"] == frozenset({"general", "product"})


def test_a_fresh_callback_is_not_widened_and_knows_when_the_first_step_starts(techcorp: Policy) -> None:
    scope = widening_scope(techcorp, ticket(), T0 + timedelta(minutes=4))
    assert scope.step == 0
    assert scope.label == ""
    assert scope.complexity is Complexity.ADVANCED
    assert scope.overflow_teams == ()
    assert scope.next_step_at == T0 + timedelta(minutes=5)
    assert "not widened (waited 4 min; step 1:" in scope.steps[0].detail


def test_step_one_relaxes_the_complexity_ceiling_by_one_level(techcorp: Policy) -> None:
    scope = widening_scope(techcorp, ticket(), T0 + timedelta(minutes=5))
    assert scope.step == 1
    assert scope.complexity is Complexity.INTERMEDIATE
    assert scope.overflow_teams == ()
    assert scope.next_step_at == T0 + timedelta(minutes=10)
    assert scope.label == "step 1: complexity ceiling relaxed by 1 level after 5 min"


def test_step_two_keeps_step_one_and_adds_the_overflow_team(techcorp: Policy) -> None:
    scope = widening_scope(techcorp, ticket(), T0 + timedelta(minutes=12))
    assert scope.step == 2
    assert scope.complexity is Complexity.INTERMEDIATE
    assert scope.overflow_teams == ("enterprise",)
    assert scope.next_step_at is None
    assert scope.steps[0].outcome is TraceOutcome.MATCHED
    assert scope.steps[0].detail == (
        "widened: step 2: overflow to team enterprise after 10 min (waited 12 min)"
    )


def test_a_team_without_steps_never_widens(techcorp: Policy) -> None:
    scope = widening_scope(techcorp, ticket("product"), T0 + timedelta(days=1))
    assert (scope.step, scope.overflow_teams, scope.next_step_at, scope.steps) == (0, (), None, ())


def test_complexity_is_never_relaxed_below_basic(techcorp: Policy) -> None:
    scope = widening_scope(techcorp, ticket(complexity=Complexity.BASIC), T0 + timedelta(minutes=6))
    assert scope.complexity is Complexity.BASIC


def test_an_excluded_overflow_team_is_skipped_for_that_tier_with_a_reason(techcorp: Policy) -> None:
    billing = widening_scope(techcorp, ticket("billing", tier="enterprise"), T0 + timedelta(minutes=11))
    assert billing.step == 1
    assert billing.overflow_teams == ()
    skipped = [s for s in billing.steps if s.outcome is TraceOutcome.SKIPPED]
    assert [(s.subject, s.detail) for s in skipped] == [
        ("general", "team general is excluded for tier enterprise")
    ]
    standard = widening_scope(techcorp, ticket("billing"), T0 + timedelta(minutes=11))
    assert standard.overflow_teams == ("general",)


def test_the_label_names_every_change_of_a_step() -> None:
    step = WideningStep(
        after=timedelta(minutes=7.5), relax_skills=True, relax_complexity_levels=2, overflow_teams=("a", "b")
    )
    assert step_label(3, step) == (
        "step 3: relaxed skills and complexity ceiling relaxed by 2 levels and overflow to teams a, b "
        "after 7.5 min"
    )


def test_current_step_counts_the_steps_started() -> None:
    steps = [WideningStep(after=timedelta(minutes=m), relax_skills=True) for m in (5, 10, 20)]
    assert [current_step(steps, timedelta(minutes=m)) for m in (0, 4.9, 5, 19, 20, 99)] == [0, 0, 1, 2, 3, 3]


team_ids = st.sampled_from(["technical", "billing", "enterprise", "product", "general", "gone"])


@settings(max_examples=300, deadline=None)
@given(
    team=st.sampled_from(["technical", "billing", "enterprise"]),
    tier=st.sampled_from(["enterprise", "premium", "standard"]),
    steps=st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=120),
            st.booleans(),
            st.integers(min_value=0, max_value=3),
            st.lists(team_ids, max_size=4),
        ),
        min_size=1,
        max_size=5,
    ),
    exclusions=st.dictionaries(
        st.sampled_from(["enterprise", "premium", "standard"]), st.frozensets(team_ids), max_size=3
    ),
    waited=st.integers(min_value=0, max_value=200),
    complexity=st.sampled_from(list(Complexity)),
)
def test_never_widens_past_the_teams_the_policy_allows(
    techcorp: Policy,
    team: str,
    tier: str,
    steps: list[tuple[int, bool, int, list[str]]],
    exclusions: dict[str, frozenset[str]],
    waited: int,
    complexity: Complexity,
) -> None:
    """Whatever the steps and the wait: the overflow teams are teams of the policy that some started step
    named, never the callback's own team nor one excluded for its tier; the complexity never drops more
    than the started steps allow; and nothing widens before the first step."""
    ordered = sorted({after for after, *_ in steps})
    plan = tuple(
        WideningStep(
            after=timedelta(minutes=after),
            relax_skills=skills,
            relax_complexity_levels=levels,
            overflow_teams=tuple(dict.fromkeys(teams)),
        )
        for after, (_, skills, levels, teams) in zip(ordered, steps, strict=False)
    )
    policy = dataclasses.replace(
        techcorp,
        widening=WideningPolicy(
            steps=MappingProxyType({team: plan}), tier_exclusions=MappingProxyType(exclusions)
        ),
    )
    scope = widening_scope(
        policy, ticket(team, tier=tier, complexity=complexity), T0 + timedelta(minutes=waited)
    )
    started = [s for s in plan if s.after <= timedelta(minutes=waited)]
    named = {t for s in started for t in s.overflow_teams}
    assert scope.step == len(started)
    assert set(scope.overflow_teams) <= named & set(policy.teams)
    assert team not in scope.overflow_teams
    assert not set(scope.overflow_teams) & exclusions.get(tier, frozenset())
    assert len(set(scope.overflow_teams)) == len(scope.overflow_teams)
    allowed_drop = max((s.relax_complexity_levels for s in started), default=0)
    assert scope.complexity >= max(Complexity.BASIC, complexity - allowed_drop)
    assert scope.relax_skills == any(s.relax_skills for s in started)
    if not started:
        assert (scope.step, scope.overflow_teams, scope.complexity) == (0, (), complexity)


# ------------------------------------------------------------------------------------------------ loader
def _with_widening(section: str) -> str:
    text = TECHCORP.read_text()
    start = text.index("\nwidening:\n")
    end = text.index("\n# Where calls go when routing fails")
    return text[:start] + "\n" + section + "\n" + text[end:]


def _problems(section: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(_with_widening(section), source="p.yaml")
    return str(caught.value)


def test_a_step_naming_a_team_excluded_for_a_tier_the_rules_send_to_the_team_is_rejected() -> None:
    message = _problems(
        "widening:\n  tier_exclusions:\n    enterprise: [general]\n  teams:\n    enterprise:\n"
        "      - {after_minutes: 15, overflow_teams: [general]}\n"
    )
    assert (
        "p.yaml: widening.teams.enterprise[0].overflow_teams: team 'general' is excluded for tier "
        "'enterprise' (widening.tier_exclusions), whose callers rule 'enterprise-tier' sends to team "
        "'enterprise'"
    ) in message


def test_unknown_teams_and_tiers_self_overflow_and_steps_out_of_order_are_each_reported() -> None:
    message = _problems(
        "widening:\n  tier_exclusions:\n    platinum: [nowhere]\n  teams:\n    ghosts:\n"
        "      - {after_minutes: 5, relax_skills: true}\n    technical:\n"
        "      - {after_minutes: 10, overflow_teams: [technical, elsewhere]}\n"
        "      - {after_minutes: 10, relax_skills: true}\n"
    )
    for expected in (
        "widening.tier_exclusions.platinum: unknown tier 'platinum'",
        "widening.tier_exclusions.platinum: unknown team 'nowhere'",
        "widening.teams.ghosts: unknown team 'ghosts'",
        "widening.teams.technical[0].overflow_teams: team 'technical' cannot overflow to itself",
        "widening.teams.technical[0].overflow_teams: unknown team 'elsewhere'",
        "widening.teams.technical[1].after_minutes: must be later than the step before (10 min)",
    ):
        assert expected in message


def test_a_step_that_widens_nothing_or_an_unknown_key_is_rejected() -> None:
    assert "a step must relax skills" in _problems(
        "widening:\n  teams:\n    technical:\n      - {after_minutes: 5}\n"
    )
    assert "widening.teams.technical[0].overflow" in _problems(
        "widening:\n  teams:\n    technical:\n      - {after_minutes: 5, overflow: [general]}\n"
    )


def test_a_policy_without_the_section_never_widens() -> None:
    text = _with_widening("")
    policy = parse_policy(text, source="p.yaml")
    assert policy.widening == WideningPolicy()
    assert widening_scope(policy, ticket(), T0 + timedelta(days=1)).step == 0


def test_the_teams_that_widen_to_a_team_are_those_whose_steps_name_it(techcorp: Policy) -> None:
    assert teams_widening_to(techcorp.widening, "enterprise") == ("technical",)
    assert teams_widening_to(techcorp.widening, "technical") == ("enterprise",)
    assert teams_widening_to(techcorp.widening, "general") == ("billing",)
    assert teams_widening_to(techcorp.widening, "billing") == ()


async def test_a_freed_slot_wakes_the_head_of_each_queue_that_has_widened_to_its_team(
    techcorp: Policy,
) -> None:
    """eve (enterprise) frees up: technical's head is woken once it is at the overflow step (10 min), never
    a queue whose head has not widened that far, nor one whose tier excludes the team."""
    db = InMemoryDatabase()
    async with db.uow() as u:
        await u.callbacks.enqueue(dataclasses.replace(ticket(), call_id="tech-head"))
        await u.callbacks.enqueue(
            dataclasses.replace(ticket(enqueued_at=T0 + timedelta(minutes=1)), call_id="tech-next")
        )
        await u.commit()
    freed = AvailabilityEvent(team_id="enterprise", agent_id="eve", free_slots=2, at=T0)

    early = await woken_by(db.uow, techcorp, freed, T0 + timedelta(minutes=9, seconds=59))
    assert early == [freed], "step 1 does not overflow to enterprise yet"
    woken = await woken_by(db.uow, techcorp, freed, T0 + timedelta(minutes=10))
    assert woken == [freed, dataclasses.replace(freed, team_id="technical")]
    later = T0 + timedelta(minutes=10)
    assert await woken_by(db.uow, techcorp, freed, later, teams=["technical"]) == [woken[1]]
    assert await woken_by(db.uow, techcorp, freed, later, teams=["billing"]) == [], "nobody watches them"
    own = AvailabilityEvent(team_id="billing", agent_id="bea", free_slots=1, at=T0)
    assert await woken_by(db.uow, techcorp, own, T0 + timedelta(hours=1)) == [own], "nobody widens to it"


async def test_no_queue_is_woken_for_a_team_its_head_may_never_overflow_to(techcorp: Policy) -> None:
    excluded = dataclasses.replace(
        techcorp,
        widening=dataclasses.replace(
            techcorp.widening,
            tier_exclusions={**techcorp.widening.tier_exclusions, "premium": frozenset({"enterprise"})},
        ),
    )
    db = InMemoryDatabase()
    async with db.uow() as u:
        await u.callbacks.enqueue(ticket(tier="premium"))
        await u.commit()
    freed = AvailabilityEvent(team_id="enterprise", agent_id="eve", free_slots=1, at=T0)
    assert await woken_by(db.uow, excluded, freed, T0 + timedelta(hours=1)) == [freed]
