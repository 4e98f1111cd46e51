"""Fair load: which caps a specialist is at, how selection passes over them or takes the least over, how
a policy's caps combine, and the load spread (Gini) figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_service.domain.fair_load import (
    STAGE,
    caps_passed,
    escalations_in_window,
    gini,
    load_spread,
)
from routing_service.domain.models import (
    Agent,
    AgentStatus,
    Complexity,
    Destination,
    EscalationTimes,
    FairLoadPolicy,
    LoadCaps,
    Team,
    TraceOutcome,
    TransferMode,
    TransferTemplate,
)
from routing_service.domain.selection import rank_specialists
from routing_service.policy import PolicyError, parse_policy
from tests.support.routing_builders import TECHCORP_POLICY, techcorp_policy

C = Complexity
NOW = datetime(2026, 12, 7, 14, 0, tzinfo=UTC)
TEAM = Team(
    team_id="enterprise",
    display_name="Enterprise",
    destination=Destination(number="+15550100100"),
    transfer=TransferTemplate("Hi", TransferMode.BLIND_TRANSFER),
)


def senior(agent_id: str, **changes: object) -> Agent:
    base = Agent(
        agent_id=agent_id,
        display_name=agent_id.title(),
        destination=Destination(number="+15550100101"),
        team_ids=("enterprise",),
        skills=frozenset(),
        max_complexity=C.CRITICAL,
        capacity=1,
        status=AgentStatus.AVAILABLE,
        idle_since=NOW - timedelta(hours=1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def taken(*minutes_ago: float) -> EscalationTimes:
    """Reservation times so many minutes before NOW."""
    return EscalationTimes.of(
        int((NOW - timedelta(minutes=m)).timestamp()) for m in sorted(minutes_ago, reverse=True)
    )


HOURLY = LoadCaps(max_escalations_per_hour=3)
COOLDOWN = LoadCaps(critical_cooldown=timedelta(minutes=10))
IN_A_ROW = LoadCaps(max_consecutive_critical=2)


# ---------------------------------------------------------------------------------------------------------
# Each cap
# ---------------------------------------------------------------------------------------------------------
def test_the_hourly_cap_counts_only_reservations_of_the_rolling_hour() -> None:
    assert escalations_in_window(taken(5, 30, 59, 61, 120), NOW) == 3
    under = senior("a", recent_escalations=taken(5, 30, 61, 90))
    at = senior("b", recent_escalations=taken(5, 30, 59))
    assert caps_passed(under, HOURLY, now=NOW, critical=False) == ()
    [cap] = caps_passed(at, HOURLY, now=NOW, critical=False)
    assert cap.cap == "escalations per hour"
    assert cap.detail == "3/3 in the last hour"
    assert cap.excess == pytest.approx(1 / 3)


def test_the_cooldown_holds_for_critical_calls_until_it_has_run() -> None:
    fresh = senior("a", last_critical_at=NOW - timedelta(minutes=4))
    assert caps_passed(fresh, COOLDOWN, now=NOW, critical=False) == ()
    [cap] = caps_passed(fresh, COOLDOWN, now=NOW, critical=True)
    assert cap.cap == "critical cool-down"
    assert "10 min after the critical call" in cap.detail
    assert cap.excess == pytest.approx(0.6)
    rested = senior("b", last_critical_at=NOW - timedelta(minutes=10))
    assert caps_passed(rested, COOLDOWN, now=NOW, critical=True) == ()
    never = senior("c")
    assert caps_passed(never, COOLDOWN, now=NOW, critical=True) == ()


def test_consecutive_critical_caps_only_critical_calls_and_the_run_ends_after_an_hour() -> None:
    run = senior("a", critical_in_row=2, last_critical_at=NOW - timedelta(minutes=20))
    [cap] = caps_passed(run, IN_A_ROW, now=NOW, critical=True)
    assert cap.cap == "consecutive critical"
    assert cap.detail == "2/2 critical calls in a row"
    assert caps_passed(run, IN_A_ROW, now=NOW, critical=False) == ()
    old_run = replace(run, last_critical_at=NOW - timedelta(minutes=61))
    assert caps_passed(old_run, IN_A_ROW, now=NOW, critical=True) == ()
    short_run = replace(run, critical_in_row=1)
    assert caps_passed(short_run, IN_A_ROW, now=NOW, critical=True) == ()


def test_a_specialists_own_caps_override_their_teams_cap_by_cap() -> None:
    policy = FairLoadPolicy(
        teams={"enterprise": LoadCaps(max_escalations_per_hour=3, max_consecutive_critical=2)},
        specialists={"linus": LoadCaps(max_escalations_per_hour=6)},
    )
    assert policy.caps_for("enterprise", "linus") == LoadCaps(
        max_escalations_per_hour=6, max_consecutive_critical=2
    )
    assert policy.caps_for("enterprise", "margaret") == LoadCaps(
        max_escalations_per_hour=3, max_consecutive_critical=2
    )
    assert policy.caps_for("billing", "linus") == LoadCaps(max_escalations_per_hour=6)
    assert not policy.caps_for("billing", "barbara").any


# ---------------------------------------------------------------------------------------------------------
# Selection with caps
# ---------------------------------------------------------------------------------------------------------
POLICY = FairLoadPolicy(
    teams={"enterprise": LoadCaps(max_escalations_per_hour=3, critical_cooldown=timedelta(minutes=10))}
)


def rank(*agents: Agent, complexity: Complexity = C.CRITICAL, policy: FairLoadPolicy | None = POLICY):  # type: ignore[no-untyped-def]
    return rank_specialists(
        agents, [], team=TEAM, complexity=complexity, preferred_agent_id=None, fair_load=policy, now=NOW
    )


def test_a_capped_specialist_is_passed_over_while_anyone_else_qualifies() -> None:
    # Linus freed first (least busy, longest idle) but took a critical call four minutes ago.
    linus = senior("linus", idle_since=NOW - timedelta(hours=2), last_critical_at=NOW - timedelta(minutes=4))
    margaret = senior("margaret", idle_since=NOW - timedelta(minutes=1))
    selection = rank(linus, margaret)
    assert [a.agent_id for a in selection.ranked] == ["margaret", "linus"]
    [step] = [s for s in selection.steps if s.stage == STAGE]
    assert step.subject == "linus"
    assert step.outcome is TraceOutcome.SKIPPED
    assert "critical cool-down" in step.detail
    assert "skipped while 1 specialist(s) under their caps qualify" in step.detail
    assert "critical cool-down" in selection.caps_of("linus")
    assert selection.caps_of("margaret") == ""


def test_without_caps_the_least_busy_order_is_unchanged() -> None:
    linus = senior("linus", idle_since=NOW - timedelta(hours=2), last_critical_at=NOW - timedelta(minutes=4))
    margaret = senior("margaret", idle_since=NOW - timedelta(minutes=1))
    assert [a.agent_id for a in rank(linus, margaret, policy=None).ranked] == ["linus", "margaret"]
    other_team = FairLoadPolicy(teams={"billing": LoadCaps(critical_cooldown=timedelta(minutes=10))})
    selection = rank(linus, margaret, policy=other_team)
    assert [a.agent_id for a in selection.ranked] == ["linus", "margaret"]
    assert not [s for s in selection.steps if s.stage == STAGE]


def test_when_everyone_is_capped_the_least_over_is_taken_and_the_trace_says_which_cap() -> None:
    # Linus: 5 escalations in the hour against a cap of 3 (excess 1.0); Margaret: cool-down 1 minute left
    # of 10 (excess 0.1). Margaret is least over although Linus is the least busy.
    linus = senior("linus", idle_since=NOW - timedelta(hours=2), recent_escalations=taken(5, 15, 25, 35, 45))
    margaret = senior("margaret", last_critical_at=NOW - timedelta(minutes=9))
    selection = rank(linus, margaret)
    assert [a.agent_id for a in selection.ranked] == ["margaret", "linus"]
    steps = {s.subject: s for s in selection.steps if s.stage == STAGE}
    assert steps["margaret"].outcome is TraceOutcome.MATCHED
    assert "nobody under their caps qualifies: least over, taken" in steps["margaret"].detail
    assert "critical cool-down" in steps["margaret"].detail
    assert steps["linus"].outcome is TraceOutcome.SKIPPED
    assert "escalations per hour 5/3 in the last hour" in steps["linus"].detail


def test_caps_never_make_an_unqualified_specialist_rank() -> None:
    busy = senior("busy", active_assignments=1)
    capped = senior("capped", last_critical_at=NOW - timedelta(minutes=1))
    selection = rank(busy, capped)
    assert [a.agent_id for a in selection.ranked] == ["capped"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=6),  # escalations in the hour
            st.one_of(st.none(), st.integers(min_value=0, max_value=30)),  # minutes since a critical call
            st.integers(min_value=0, max_value=1),  # busy
        ),
        min_size=1,
        max_size=8,
    )
)
def test_an_under_cap_specialist_always_ranks_before_every_capped_one(
    specs: list[tuple[int, int | None, int]],
) -> None:
    agents = [
        senior(
            f"s{i}",
            capacity=2,
            active_assignments=busy,
            recent_escalations=taken(*[1 + j for j in range(count)]),
            last_critical_at=None if since is None else NOW - timedelta(minutes=since),
        )
        for i, (count, since, busy) in enumerate(specs)
    ]
    selection = rank(*agents)
    capped = [a.agent_id in selection.over_cap for a in selection.ranked]
    assert capped == sorted(capped)  # every False (under) before every True (capped)
    assert len(selection.ranked) == len(agents)
    excess = [
        sum(c.excess for c in selection.over_cap[a.agent_id])
        for a in selection.ranked
        if a.agent_id in selection.over_cap
    ]
    assert excess == sorted(excess)


# ---------------------------------------------------------------------------------------------------------
# Load spread
# ---------------------------------------------------------------------------------------------------------
def test_gini_of_known_spreads() -> None:
    assert gini([]) == 0.0
    assert gini([5]) == 0.0
    assert gini([0, 0, 0]) == 0.0
    assert gini([4, 4, 4, 4]) == 0.0
    assert gini([0, 0, 0, 8]) == pytest.approx(0.75)
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        gini([3, -1])


def test_load_spread_counts_every_specialist_including_those_who_took_none() -> None:
    spread = load_spread([5, 0, 1])
    assert (spread.specialists, spread.escalations, spread.most, spread.fewest) == (3, 6, 5, 0)
    assert spread.gini == pytest.approx(gini([5, 0, 1]))
    empty = load_spread([])
    assert (empty.specialists, empty.escalations, empty.gini) == (0, 0, 0.0)


counts = st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(counts)
def test_gini_lies_between_zero_and_n_minus_one_over_n(values: list[int]) -> None:
    n = len(values)
    assert 0.0 <= gini(values) <= (n - 1) / n + 1e-9


@settings(max_examples=200, deadline=None)
@given(counts, st.randoms(use_true_random=False), st.integers(min_value=1, max_value=50))
def test_gini_ignores_order_and_scale(values: list[int], rng, factor: int) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(values)
    rng.shuffle(shuffled)
    assert gini(shuffled) == pytest.approx(gini(values), abs=1e-9)
    assert gini([v * factor for v in values]) == pytest.approx(gini(values), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(counts)
def test_gini_is_the_mean_absolute_difference_over_twice_the_mean(values: list[int]) -> None:
    n, total = len(values), sum(values)
    if total == 0:
        assert gini(values) == 0.0
        return
    pairs = sum(abs(a - b) for a in values for b in values)
    assert gini(values) == pytest.approx(pairs / (2 * n * total), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=2, max_value=30), st.integers(min_value=1, max_value=100))
def test_one_specialist_taking_everything_is_the_most_uneven(n: int, total: int) -> None:
    assert gini([total] + [0] * (n - 1)) == pytest.approx((n - 1) / n)
    assert gini([total] * n) == 0.0


# ---------------------------------------------------------------------------------------------------------
# The policy section
# ---------------------------------------------------------------------------------------------------------
def with_section(section: str) -> str:
    text = TECHCORP_POLICY.read_text()
    start = text.index("\nfair_load:")
    end = text.index("\n# ----", start)
    return text[:start] + "\n" + section + text[end:]


def test_techcorp_caps_the_enterprise_seniors() -> None:
    policy = techcorp_policy()
    assert policy.fair_load is not None
    assert policy.fair_load.caps_for("enterprise", "ent-2") == LoadCaps(
        max_escalations_per_hour=8, critical_cooldown=timedelta(minutes=3), max_consecutive_critical=3
    )
    assert policy.fair_load.caps_for("enterprise", "ent-1").max_escalations_per_hour == 12
    assert not policy.fair_load.caps_for("technical", "tech-1").any


def test_a_policy_without_the_section_caps_nobody() -> None:
    assert parse_policy(with_section(""), source="p.yaml").fair_load is None


@pytest.mark.parametrize(
    ("section", "field", "reason"),
    [
        (
            "fair_load: {teams: {nobody: {max_escalations_per_hour: 3}}}",
            "fair_load.teams.nobody",
            "unknown team 'nobody'",
        ),
        ("fair_load: {teams: {enterprise: {}}}", "fair_load.teams.enterprise", "set at least one of"),
        (
            "fair_load: {teams: {enterprise: {max_escalations_per_hour: 0}}}",
            "fair_load.teams.enterprise.max_escalations_per_hour",
            "greater than or equal to 1",
        ),
        (
            "fair_load: {specialists: {ent-1: {critical_cooldown_minutes: -5}}}",
            "fair_load.specialists.ent-1.critical_cooldown_minutes",
            "greater than 0",
        ),
        (
            "fair_load: {teams: {enterprise: {max_consecutive_critical: 2, max_calls: 3}}}",
            "fair_load.teams.enterprise.max_calls",
            "",
        ),
    ],
)
def test_a_bad_section_is_refused_naming_the_field(section: str, field: str, reason: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(with_section(section), source="p.yaml")
    problems = {p.field: p.reason for p in refused.value.problems}
    assert field in problems, problems
    assert reason in problems[field]


# ---------------------------------------------------------------------------------------------------------
# The reservation times as the store keeps them
# ---------------------------------------------------------------------------------------------------------
epochs = st.lists(st.integers(min_value=1_700_000_000, max_value=1_800_000_000), max_size=70).map(sorted)


@settings(max_examples=300, deadline=None)
@given(epochs, st.floats(min_value=1_699_999_000, max_value=1_800_001_000))
def test_counting_after_a_moment_agrees_with_counting_each_time(times: list[int], moment: float) -> None:
    recent = EscalationTimes.of(times)
    assert recent.times() == tuple(times)
    assert len(recent) == len(times)
    assert recent.count_after(moment) == sum(1 for t in times if t > moment)


@settings(max_examples=100, deadline=None)
@given(epochs, st.integers(min_value=1_800_000_000, max_value=1_800_000_100))
def test_appending_keeps_the_latest(times: list[int], latest: int) -> None:
    appended = EscalationTimes.of(times).appended(latest, 64)
    assert appended.times() == (*times, latest)[-64:]
