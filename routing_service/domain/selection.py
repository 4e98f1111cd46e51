"""Specialist selection: who, among a team's members, should take the call.

Qualified = status available, a free slot (active assignments below capacity), `max_complexity` at least
the call's effective complexity, every skill the team requires, and membership of the team. Among the
qualified, the order is:

1. the customer's last specialist, when the team is sticky and they qualify;
2. fewest active assignments (least busy);
3. longest idle (`idle_since` earliest; unknown counts as longest);
4. agent id (a stable, deterministic last resort).

With the policy's `fair_load` caps (see `routing_service.domain.fair_load`), qualified agents at a cap
come after every agent under their caps, least over first (then in the order above): they are passed over
while anyone else qualifies and taken only when nobody does. Each capped agent leaves a "fair-load" step
naming the caps it is at.

The store pre-filters candidates with an index; this module re-checks everything, so an unqualified or
full agent can never be ranked, whatever the store returned. Every agent seen leaves a trace step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from routing_service.domain.fair_load import STAGE as FAIR_LOAD
from routing_service.domain.fair_load import CapPassed, caps_passed
from routing_service.domain.models import (
    Agent,
    AgentStatus,
    Complexity,
    FairLoadPolicy,
    Team,
    TraceOutcome,
    TraceStep,
)

__all__ = ["Selection", "rank_specialists", "rejection_reasons"]

STAGE = "candidate"


@dataclass(frozen=True, slots=True)
class Selection:
    ranked: tuple[Agent, ...]
    """Qualified agents, best first. Reserve them in this order until one reservation succeeds."""
    steps: tuple[TraceStep, ...]
    over_cap: Mapping[str, tuple[CapPassed, ...]] = field(default_factory=dict)
    """The ranked agents at a fair-load cap (ranked after everyone under their caps), and which caps."""

    def caps_of(self, agent_id: str) -> str:
        """The caps `agent_id` is at, for a trace ("" when none)."""
        return "; ".join(cap.describe() for cap in self.over_cap.get(agent_id, ()))


def rejection_reasons(
    agent: Agent, *, complexity: Complexity, required_skills: Iterable[str], team_id: str | None = None
) -> list[str]:
    """Why `agent` cannot take the call; an empty list means qualified."""
    reasons: list[str] = []
    if team_id is not None and team_id not in agent.team_ids:
        reasons.append(f"not a member of team {team_id}")
    if agent.status is not AgentStatus.AVAILABLE:
        reasons.append(f"status {agent.status.value}")
    if agent.free_slots <= 0:
        reasons.append(f"at capacity ({agent.active_assignments}/{agent.capacity} active)")
    if agent.max_complexity < complexity:
        reasons.append(f"max_complexity {agent.max_complexity.label} < {complexity.label}")
    missing = sorted(set(required_skills) - agent.skills)
    if missing:
        reasons.append(f"missing skill{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return reasons


def rank_specialists(
    candidates: Sequence[Agent],
    others: Sequence[Agent],
    *,
    team: Team,
    complexity: Complexity,
    preferred_agent_id: str | None,
    fair_load: FairLoadPolicy | None = None,
    now: datetime | None = None,
) -> Selection:
    """Rank the qualified agents among `candidates` and `others`; explain every agent (see module doc).
    `fair_load` caps apply as of `now` (both needed)."""
    steps: list[TraceStep] = []
    qualified: list[Agent] = []
    seen: set[str] = set()
    for agent in [*candidates, *others]:
        if agent.agent_id in seen:
            continue
        seen.add(agent.agent_id)
        reasons = rejection_reasons(
            agent, complexity=complexity, required_skills=team.required_skills, team_id=team.team_id
        )
        if reasons:
            steps.append(
                TraceStep(STAGE, agent.agent_id, TraceOutcome.REJECTED, f"rejected ({'; '.join(reasons)})")
            )
        else:
            qualified.append(agent)

    sticky_id = preferred_agent_id if team.sticky else None
    if preferred_agent_id and not team.sticky:
        steps.append(
            TraceStep(STAGE, preferred_agent_id, TraceOutcome.INFO, f"team {team.team_id} is not sticky")
        )
    elif sticky_id and sticky_id not in {a.agent_id for a in qualified}:
        why = "not qualified or not free" if sticky_id in seen else "not among the team's candidates"
        steps.append(
            TraceStep(STAGE, sticky_id, TraceOutcome.INFO, f"customer's last specialist {why}: no preference")
        )

    over_cap: dict[str, tuple[CapPassed, ...]] = {}
    if fair_load is not None and now is not None and qualified:
        critical = complexity is Complexity.CRITICAL
        for agent in qualified:
            caps = fair_load.caps_for(team.team_id, agent.agent_id)
            if caps.any:
                passed = caps_passed(agent, caps, now=now, critical=critical)
                if passed:
                    over_cap[agent.agent_id] = passed
    ranked = sorted(qualified, key=lambda a: _rank_key(a, sticky_id))
    if over_cap:
        under = [a for a in ranked if a.agent_id not in over_cap]
        capped = sorted(
            (a for a in ranked if a.agent_id in over_cap),
            key=lambda a: sum(cap.excess for cap in over_cap[a.agent_id]),
        )  # stable: equally far over keep the order above
        ranked = [*under, *capped]
    for position, agent in enumerate(ranked, start=1):
        steps.append(
            TraceStep(
                STAGE, agent.agent_id, TraceOutcome.MATCHED, _qualified_detail(agent, position, sticky_id)
            )
        )
    if over_cap:
        steps.extend(_cap_steps(ranked, over_cap))
    if not ranked:
        steps.append(TraceStep(STAGE, team.team_id, TraceOutcome.INFO, "no qualified specialist is free"))
    return Selection(ranked=tuple(ranked), steps=tuple(steps), over_cap=over_cap)


def _cap_steps(ranked: Sequence[Agent], over_cap: Mapping[str, tuple[CapPassed, ...]]) -> list[TraceStep]:
    """One "fair-load" step per capped agent: skipped while someone under their caps qualifies, else the
    least over is the one to take."""
    under = sum(1 for a in ranked if a.agent_id not in over_cap)
    steps = []
    first_capped = True
    for agent in ranked:
        passed = over_cap.get(agent.agent_id)
        if passed is None:
            continue
        caps = "; ".join(cap.describe() for cap in passed)
        if under:
            outcome, verdict = (
                TraceOutcome.SKIPPED,
                f"skipped while {under} specialist(s) under their caps qualify",
            )
        elif first_capped:
            outcome, verdict = TraceOutcome.MATCHED, "nobody under their caps qualifies: least over, taken"
        else:
            outcome, verdict = TraceOutcome.SKIPPED, "further over than the specialist taken"
        first_capped = False
        steps.append(TraceStep(FAIR_LOAD, agent.agent_id, outcome, f"at cap: {caps}; {verdict}"))
    return steps


def _rank_key(agent: Agent, sticky_id: str | None) -> tuple[int, int, float, str]:
    idle = agent.idle_since.timestamp() if agent.idle_since is not None else float("-inf")
    return (0 if agent.agent_id == sticky_id else 1, agent.active_assignments, idle, agent.agent_id)


def _qualified_detail(agent: Agent, position: int, sticky_id: str | None) -> str:
    sticky = "customer's last specialist, " if agent.agent_id == sticky_id else ""
    return (
        f"qualified #{position} ({sticky}{agent.active_assignments}/{agent.capacity} active,"
        f" idle since {_when(agent.idle_since)}, max_complexity {agent.max_complexity.label})"
    )


def _when(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.isoformat(timespec="seconds")
