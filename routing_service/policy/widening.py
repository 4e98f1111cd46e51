"""The policy file's `widening` section: pydantic models, their cross-check against the file's teams, tiers
and rules, and the domain `WideningPolicy` they build (the rules are in routing_service.domain.widening).

    widening:
      tier_exclusions:               # teams a tier's callbacks never overflow to
        enterprise: [general, product]
      teams:
        technical:                   # steps in order of after_minutes, each adding to the ones before
          - {after_minutes: 5, relax_complexity_levels: 1}
          - {after_minutes: 10, overflow_teams: [enterprise]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from routing_service.domain.models import WideningPolicy, WideningStep
from routing_service.policy.errors import Problem

__all__ = ["WideningDoc", "WideningStepDoc", "check_widening"]

TeamName = Annotated[str, Field(min_length=1, max_length=200)]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WideningStepDoc(_Doc):
    """From `after_minutes` of waiting on: relax the team's skills, its complexity ceiling, and/or let the
    `overflow_teams`' specialists take the callback."""

    after_minutes: Annotated[float, Field(gt=0, le=10080)]
    relax_skills: bool = False
    relax_complexity_levels: Annotated[int, Field(ge=0, le=3)] = 0
    overflow_teams: Annotated[list[TeamName], Field(max_length=100)] = Field(default_factory=list)

    @model_validator(mode="after")
    def _widens_something(self) -> WideningStepDoc:
        if not (self.relax_skills or self.relax_complexity_levels or self.overflow_teams):
            raise ValueError("a step must relax skills, relax the complexity ceiling or name overflow teams")
        return self

    def to_domain(self) -> WideningStep:
        return WideningStep(
            after=timedelta(minutes=self.after_minutes),
            relax_skills=self.relax_skills,
            relax_complexity_levels=self.relax_complexity_levels,
            overflow_teams=tuple(dict.fromkeys(self.overflow_teams)),
        )


class WideningDoc(_Doc):
    """Per team, the steps that widen who may take its waiting callbacks; per tier, the teams never used."""

    tier_exclusions: dict[TeamName, Annotated[list[TeamName], Field(max_length=1000)]] = Field(
        default_factory=dict
    )
    teams: dict[TeamName, Annotated[list[WideningStepDoc], Field(min_length=1, max_length=20)]] = Field(
        default_factory=dict
    )

    def to_domain(self) -> WideningPolicy:
        return WideningPolicy(
            steps=MappingProxyType(
                {team: tuple(step.to_domain() for step in steps) for team, steps in self.teams.items()}
            ),
            tier_exclusions=MappingProxyType(
                {tier: frozenset(teams) for tier, teams in self.tier_exclusions.items()}
            ),
        )


def check_widening(
    doc: WideningDoc | None,
    *,
    teams: set[str],
    tiers: set[str] | None,
    tier_rules: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
) -> list[Problem]:
    """Unknown teams and tiers, steps out of order, a team overflowing to itself, and a step naming a team
    that is excluded for a tier the rules send to the widening team (`tier_rules`: per team, the (rule id,
    tiers) of each rule that sends only those tiers to it)."""
    if doc is None:
        return []
    problems: list[Problem] = []
    known = ", ".join(sorted(teams))
    for tier, excluded in doc.tier_exclusions.items():
        where = f"widening.tier_exclusions.{tier}"
        if tiers is not None and tier not in tiers:
            problems.append(Problem(where, f"unknown tier {tier!r}; tiers are {', '.join(sorted(tiers))}"))
        for team in excluded:
            if team not in teams:
                problems.append(Problem(where, f"unknown team {team!r}; teams are {known}"))
    for team_id, steps in doc.teams.items():
        where = f"widening.teams.{team_id}"
        if team_id not in teams:
            problems.append(Problem(where, f"unknown team {team_id!r}; teams are {known}"))
        previous = 0.0
        for index, step in enumerate(steps):
            at = f"{where}[{index}]"
            if index and step.after_minutes <= previous:
                problems.append(
                    Problem(f"{at}.after_minutes", f"must be later than the step before ({previous:g} min)")
                )
            previous = step.after_minutes
            for other in step.overflow_teams:
                field = f"{at}.overflow_teams"
                if other == team_id:
                    problems.append(Problem(field, f"team {team_id!r} cannot overflow to itself"))
                elif other not in teams:
                    problems.append(Problem(field, f"unknown team {other!r}; teams are {known}"))
                for rule_id, rule_tiers in tier_rules.get(team_id, ()):
                    for tier in rule_tiers:
                        if other in doc.tier_exclusions.get(tier, ()):
                            problems.append(
                                Problem(
                                    field,
                                    f"team {other!r} is excluded for tier {tier!r} "
                                    f"(widening.tier_exclusions), whose callers rule {rule_id!r} sends to "
                                    f"team {team_id!r}",
                                )
                            )
    return problems
