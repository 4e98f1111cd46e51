"""Specialist ranking: qualification, tie-breaks, sticky preference, and an explanation for everyone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_service.domain.models import (
    Agent,
    AgentStatus,
    Complexity,
    Destination,
    Team,
    TraceOutcome,
    TransferMode,
    TransferTemplate,
)
from routing_service.domain.selection import rank_specialists, rejection_reasons

C = Complexity
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
TEAM = Team(
    team_id="technical",
    display_name="Technical",
    destination=Destination(number="+15550100200"),
    transfer=TransferTemplate("Hi", TransferMode.BLIND_TRANSFER),
)


def agent(agent_id: str, **changes: object) -> Agent:
    base = Agent(
        agent_id=agent_id,
        display_name=agent_id.title(),
        destination=Destination(number="+15550100201"),
        team_ids=("technical",),
        skills=frozenset({"api"}),
        max_complexity=C.ADVANCED,
        capacity=2,
        status=AgentStatus.AVAILABLE,
        active_assignments=0,
        idle_since=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def ids(agents: tuple[Agent, ...]) -> list[str]:
    return [a.agent_id for a in agents]


def test_least_busy_agent_ranks_first_when_several_qualify() -> None:
    selection = rank_specialists(
        [agent("a", active_assignments=1), agent("b"), agent("c", active_assignments=1, capacity=3)],
        [],
        team=TEAM,
        complexity=C.BASIC,
        preferred_agent_id=None,
    )
    assert ids(selection.ranked) == ["b", "a", "c"]


def test_longest_idle_breaks_ties_when_equally_busy() -> None:
    selection = rank_specialists(
        [
            agent("a", idle_since=T0),
            agent("b", idle_since=T0 - timedelta(minutes=30)),
            agent("c", idle_since=None),
            agent("d", idle_since=T0),
        ],
        [],
        team=TEAM,
        complexity=C.BASIC,
        preferred_agent_id=None,
    )
    assert ids(selection.ranked) == ["c", "b", "a", "d"]  # unknown idle counts as longest; then id


def test_sticky_preference_ranks_the_last_specialist_first_when_they_qualify() -> None:
    candidates = [agent("a"), agent("b", active_assignments=1)]
    selection = rank_specialists(candidates, [], team=TEAM, complexity=C.BASIC, preferred_agent_id="b")
    assert ids(selection.ranked) == ["b", "a"]
    assert "customer's last specialist" in next(s.detail for s in selection.steps if s.subject == "b")

    not_sticky = replace(TEAM, sticky=False)
    selection = rank_specialists(candidates, [], team=not_sticky, complexity=C.BASIC, preferred_agent_id="b")
    assert ids(selection.ranked) == ["a", "b"]


def test_sticky_preference_is_ignored_and_explained_when_the_last_specialist_is_full() -> None:
    selection = rank_specialists(
        [agent("a")],
        [agent("b", active_assignments=2)],
        team=TEAM,
        complexity=C.BASIC,
        preferred_agent_id="b",
    )
    assert ids(selection.ranked) == ["a"]
    details = [s.detail for s in selection.steps if s.subject == "b"]
    assert "rejected (at capacity (2/2 active))" in details
    assert "customer's last specialist not qualified or not free: no preference" in details


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"status": AgentStatus.BUSY}, "status busy"),
        ({"status": AgentStatus.WRAP_UP}, "status wrap-up"),
        ({"status": AgentStatus.OFFLINE}, "status offline"),
        ({"active_assignments": 2}, "at capacity (2/2 active)"),
        ({"max_complexity": C.INTERMEDIATE}, "max_complexity intermediate < advanced"),
        ({"skills": frozenset()}, "missing skill api"),
        ({"team_ids": ("billing",)}, "not a member of team technical"),
    ],
)
def test_unqualified_agents_are_rejected_with_the_reason_when_ranked(
    changes: dict[str, object], reason: str
) -> None:
    team = replace(TEAM, required_skills=frozenset({"api"}))
    bad = agent("tech-2", **changes)
    selection = rank_specialists([bad], [], team=team, complexity=C.ADVANCED, preferred_agent_id=None)
    assert selection.ranked == ()
    step = next(s for s in selection.steps if s.subject == "tech-2")
    assert step.outcome is TraceOutcome.REJECTED
    assert step.detail == f"rejected ({reason})"
    assert selection.steps[-1].detail == "no qualified specialist is free"


def test_rejection_reasons_lists_every_failure_when_several_apply() -> None:
    bad = agent("x", status=AgentStatus.OFFLINE, max_complexity=C.BASIC, skills=frozenset())
    assert rejection_reasons(bad, complexity=C.CRITICAL, required_skills={"api", "sql"}) == [
        "status offline",
        "max_complexity basic < critical",
        "missing skills api, sql",
    ]


def test_agents_seen_twice_are_explained_once_when_in_candidates_and_others() -> None:
    a = agent("a")
    selection = rank_specialists(
        [a], [a, agent("b", status=AgentStatus.BUSY)], team=TEAM, complexity=C.BASIC, preferred_agent_id=None
    )
    assert ids(selection.ranked) == ["a"]
    assert [s.subject for s in selection.steps] == ["b", "a"]


agents_strategy = st.lists(
    st.builds(
        agent,
        st.text(alphabet="abcdef", min_size=1, max_size=3),
        status=st.sampled_from(list(AgentStatus)),
        capacity=st.integers(min_value=1, max_value=3),
        active_assignments=st.integers(min_value=0, max_value=4),
        max_complexity=st.sampled_from(list(C)),
        skills=st.frozensets(st.sampled_from(["api", "sql"])),
        idle_since=st.none() | st.integers(0, 10_000).map(lambda s: T0 - timedelta(seconds=s)),
        team_ids=st.sampled_from([("technical",), ("billing",), ("technical", "billing")]),
    ),
    max_size=8,
)


@settings(deadline=None, max_examples=150)
@given(
    candidates=agents_strategy,
    others=agents_strategy,
    complexity=st.sampled_from(list(C)),
    required=st.frozensets(st.sampled_from(["api", "sql"])),
    preferred=st.none() | st.text(alphabet="abcdef", min_size=1, max_size=3),
)
def test_ranked_never_contains_an_unqualified_or_full_agent_when_ranking_anything(
    candidates: list[Agent],
    others: list[Agent],
    complexity: Complexity,
    required: frozenset[str],
    preferred: str | None,
) -> None:
    team = replace(TEAM, required_skills=required)
    selection = rank_specialists(
        candidates, others, team=team, complexity=complexity, preferred_agent_id=preferred
    )
    for chosen in selection.ranked:
        assert chosen.status is AgentStatus.AVAILABLE
        assert chosen.active_assignments < chosen.capacity
        assert chosen.max_complexity >= complexity
        assert required <= chosen.skills
        assert "technical" in chosen.team_ids
    assert len({a.agent_id for a in selection.ranked}) == len(selection.ranked)
    seen = {a.agent_id for a in [*candidates, *others]}
    explained = {
        s.subject for s in selection.steps if s.outcome in (TraceOutcome.REJECTED, TraceOutcome.MATCHED)
    }
    assert seen == explained
    rest = [a for a in selection.ranked if a.agent_id != preferred]
    keys = [
        (a.active_assignments, a.idle_since or datetime.min.replace(tzinfo=UTC), a.agent_id) for a in rest
    ]
    assert keys == sorted(keys)
