"""Widening over time: who may take a callback grows the longer it waits.

A team's widening is a list of steps (policy `widening.teams.<team>`), each starting `after` a wait since the
callback was queued. Steps add up: step 2 keeps what step 1 relaxed. A step can

* relax the team's required skills (`relax_skills`),
* relax the complexity ceiling: a specialist whose max_complexity is up to `relax_complexity_levels` below
  the call's effective complexity qualifies (never below basic),
* name overflow teams, whose qualified specialists (by their own team's required skills) may then take it.

Nothing widens past what the policy allows: a team in `tier_exclusions[tier]` is never an overflow team for
a callback of that tier (the loader also rejects a step that names a team excluded for a tier the rules send
to the widening team), nor is the callback's own team or a team the policy no longer has.

Plain functions over the policy, the ticket and the time: no I/O; the claim (routing_service.app.callbacks)
asks the store for the specialists of each team in scope.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from routing_service.domain.models import (
    CallbackTicket,
    Complexity,
    Policy,
    TraceOutcome,
    TraceStep,
    WideningPolicy,
    WideningStep,
)

__all__ = [
    "STAGE",
    "WideningScope",
    "allowed_overflow",
    "current_step",
    "step_label",
    "teams_widening_to",
    "widening_scope",
]

STAGE = "widening"


@dataclass(frozen=True, slots=True)
class WideningScope:
    """Who may take a callback now: its own team (with relaxations) and the overflow teams in order."""

    step: int
    """0: not widened; n: the n-th step of the team's widening is in force."""
    label: str
    """What the step in force did, e.g. "step 2: overflow to team general after 10 min"; "" at step 0."""
    relax_skills: bool
    complexity: Complexity
    """The lowest max_complexity a specialist may have (the call's, lowered by the relaxations)."""
    overflow_teams: tuple[str, ...]
    """Teams beyond the callback's own whose specialists may take it now, in order (exclusions applied)."""
    next_step_at: datetime | None
    """When the next step starts; None when the last step is in force or the team never widens."""
    steps: tuple[TraceStep, ...]
    """The trace: the step in force and every overflow team left out, with the reason."""


def _minutes(wait: timedelta) -> str:
    """`10 min`, `7.5 min`; under a minute in seconds (`30 s`)."""
    return _span(wait.total_seconds())


def _span(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:g} min" if minutes == int(minutes) else f"{minutes:.1f} min"


@lru_cache(maxsize=1024)
def step_label(index: int, step: WideningStep) -> str:
    """`step 2: overflow to team general after 10 min`: what step `index` (1-based) adds."""
    parts = []
    if step.relax_skills:
        parts.append("relaxed skills")
    if step.relax_complexity_levels:
        levels = step.relax_complexity_levels
        parts.append(f"complexity ceiling relaxed by {levels} level{'s' if levels > 1 else ''}")
    if step.overflow_teams:
        teams = ", ".join(step.overflow_teams)
        parts.append(f"overflow to team{'s' if len(step.overflow_teams) > 1 else ''} {teams}")
    return f"step {index}: {' and '.join(parts) or 'no change'} after {_minutes(step.after)}"


def current_step(steps: Sequence[WideningStep], waited: timedelta) -> int:
    """How many of `steps` (ordered by `after`) have started after `waited`: 0 = none."""
    count = 0
    for step in steps:
        if waited < step.after:
            break
        count += 1
    return count


def allowed_overflow(
    widening: WideningPolicy, *, team_id: str, tier: str, teams: Sequence[str], known_teams: Collection[str]
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The teams of `teams` a callback of `tier` queued on `team_id` may overflow to, in order, and each left
    out with why (excluded for the tier, the callback's own team, unknown to the policy, named twice)."""
    excluded = widening.tier_exclusions.get(tier, frozenset())
    allowed: list[str] = []
    skipped: list[tuple[str, str]] = []
    for other in teams:
        if other == team_id or other in allowed:
            continue
        if other in excluded:
            skipped.append((other, f"team {other} is excluded for tier {tier}"))
        elif other not in known_teams:
            skipped.append((other, f"team {other} is not in the policy"))
        else:
            allowed.append(other)
    return tuple(allowed), tuple(skipped)


def teams_widening_to(widening: WideningPolicy, team_id: str) -> tuple[str, ...]:
    """The other teams with a widening step that names `team_id` as an overflow team: a specialist of
    `team_id` who frees up may take the head of their queues once it has waited long enough (whether it
    has, and whether its tier allows `team_id`, is `widening_scope`'s answer for that callback)."""
    return tuple(
        other
        for other, steps in widening.steps.items()
        if other != team_id and any(team_id in step.overflow_teams for step in steps)
    )


def widening_scope(policy: Policy, ticket: CallbackTicket, now: datetime) -> WideningScope:
    """The scope of `ticket` at `now` (see the module doc); steps count from `ticket.enqueued_at`."""
    steps = policy.widening.steps.get(ticket.team_id, ())
    complexity = ticket.effective_complexity
    if not steps:
        return WideningScope(0, "", False, complexity, (), None, ())
    waited = max(now - ticket.enqueued_at, timedelta(0))
    waited_text = _span(int(waited.total_seconds()))
    index = current_step(steps, waited)
    next_at = ticket.enqueued_at + steps[index].after if index < len(steps) else None
    if index == 0:
        detail = f"not widened (waited {waited_text}; {step_label(1, steps[0])})"
        not_yet = (TraceStep(STAGE, ticket.team_id, TraceOutcome.INFO, detail),)
        return WideningScope(0, "", False, complexity, (), next_at, not_yet)
    step = _in_force(
        steps,
        index,
        ticket.team_id,
        ticket.tier,
        complexity,
        policy.widening.tier_exclusions.get(ticket.tier, frozenset()),
        frozenset(policy.teams),
    )
    widened = TraceStep(
        STAGE, ticket.team_id, TraceOutcome.MATCHED, f"widened: {step.label} (waited {waited_text})"
    )
    return WideningScope(
        index,
        step.label,
        step.relax_skills,
        step.complexity,
        step.overflow_teams,
        next_at,
        (widened, *step.steps),
    )


@lru_cache(maxsize=4096)
def _in_force(
    steps: tuple[WideningStep, ...],
    index: int,
    team_id: str,
    tier: str,
    complexity: Complexity,
    excluded: frozenset[str],
    known_teams: frozenset[str],
) -> WideningScope:
    """What the first `index` steps allow, for a callback of `tier` and `complexity` on `team_id` (the same
    for every claim of such a callback: cached); `steps` holds the trace lines after the "widened" one."""
    in_force = steps[:index]
    relax_skills = any(s.relax_skills for s in in_force)
    levels = max(s.relax_complexity_levels for s in in_force)
    relaxed = Complexity(max(Complexity.BASIC, complexity - levels))
    named = [team for s in in_force for team in s.overflow_teams]
    allowed, skipped = allowed_overflow(
        WideningPolicy(tier_exclusions={tier: excluded}),
        team_id=team_id,
        tier=tier,
        teams=named,
        known_teams=known_teams,
    )
    trace = []
    if relax_skills:
        trace.append(TraceStep(STAGE, team_id, TraceOutcome.INFO, "team's required skills relaxed"))
    if relaxed < complexity:
        trace.append(
            TraceStep(
                STAGE,
                team_id,
                TraceOutcome.INFO,
                f"complexity ceiling relaxed: max_complexity {relaxed.label} or above qualifies "
                f"for a {complexity.label} call",
            )
        )
    trace += [TraceStep(STAGE, team, TraceOutcome.SKIPPED, why) for team, why in skipped]
    label = step_label(index, steps[index - 1])
    return WideningScope(index, label, relax_skills, relaxed, allowed, None, tuple(trace))
