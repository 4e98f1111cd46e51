"""Policy rules: which team takes the call. Rules are tried in order and the first match wins.

A rule's conditions (tiers, categories, complexities, min_complexity) must all hold; an absent condition
matches anything. Every rule tried leaves a trace step: SKIPPED with the first condition that failed, or
MATCHED for the winner, so the trace reads as "why did this call go there?".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from routing_service.domain.models import Complexity, Policy, Rule, Team, TraceOutcome, TraceStep

__all__ = ["RuleMatch", "known_categories", "match_rule", "normalize_category", "rule_failure"]

STAGE = "rule"


@dataclass(frozen=True, slots=True)
class RuleMatch:
    rule: Rule | None
    team: Team | None
    steps: tuple[TraceStep, ...]


def match_rule(
    policy: Policy, *, tier: str, category: str, complexity: Complexity, after: Rule | None = None
) -> RuleMatch:
    """Try the policy's rules in order; return the first that matches, with its team and the trace.
    `after` resumes the search past that rule (its team could not take the call)."""
    steps: list[TraceStep] = []
    rules = policy.rules
    if after is not None:
        rules = rules[next(i for i, rule in enumerate(rules) if rule is after) + 1 :]
    for rule in rules:
        failure = rule_failure(rule, tier=tier, category=category, complexity=complexity)
        if failure is not None:
            steps.append(TraceStep(STAGE, rule.rule_id, TraceOutcome.SKIPPED, f"skipped ({failure})"))
            continue
        team = policy.teams.get(rule.team_id)
        if team is None:  # the loader forbids this; stay total anyway
            steps.append(
                TraceStep(STAGE, rule.rule_id, TraceOutcome.SKIPPED, f"skipped (unknown team {rule.team_id})")
            )
            continue
        steps.append(
            TraceStep(
                STAGE,
                rule.rule_id,
                TraceOutcome.MATCHED,
                f"matched ({_describe(rule, tier=tier, category=category, complexity=complexity)})"
                f" -> team {team.team_id}",
            )
        )
        return RuleMatch(rule=rule, team=team, steps=tuple(steps))
    steps.append(TraceStep(STAGE, "(none)", TraceOutcome.INFO, "no rule matched"))
    return RuleMatch(rule=None, team=None, steps=tuple(steps))


def rule_failure(rule: Rule, *, tier: str, category: str, complexity: Complexity) -> str | None:
    """The first condition of `rule` that does not hold, described; None when the rule matches."""
    if rule.tiers is not None and tier not in rule.tiers:
        return f"tier {tier or '(none)'} not in {_list(rule.tiers)}"
    if rule.categories is not None and category not in rule.categories:
        return f"category {category or '(none)'} not in {_list(rule.categories)}"
    if rule.complexities is not None and complexity not in rule.complexities:
        return f"complexity {complexity.label} not in {_levels(rule.complexities)}"
    if rule.min_complexity is not None and complexity < rule.min_complexity:
        return f"complexity {complexity.label} < {rule.min_complexity.label}"
    return None


def known_categories(policy: Policy) -> frozenset[str]:
    """Categories the policy understands: those offered to the assistant, the default, and any in rules."""
    names = set(policy.categories)
    names.add(policy.default_category)
    for rule in policy.rules:
        if rule.categories is not None:
            names.update(rule.categories)
    return frozenset(names)


def normalize_category(policy: Policy, raw: str) -> tuple[str, TraceStep | None]:
    """Lower-case and trim the assistant's category; empty or unknown -> the policy's default (explained)."""
    text = (raw or "").strip().lower()
    if not text:
        return policy.default_category, TraceStep(
            "category",
            policy.default_category,
            TraceOutcome.INFO,
            f"no category given: using {policy.default_category}",
        )
    if text not in known_categories(policy):
        shown = text if len(text) <= 40 else text[:40] + "..."
        return policy.default_category, TraceStep(
            "category",
            policy.default_category,
            TraceOutcome.INFO,
            f"category {shown!r} is not one of {_list(known_categories(policy))}: "
            f"using {policy.default_category}",
        )
    return text, None


def _describe(rule: Rule, *, tier: str, category: str, complexity: Complexity) -> str:
    parts: list[str] = []
    if rule.tiers is not None:
        parts.append(f"tier {tier} in {_list(rule.tiers)}")
    if rule.categories is not None:
        parts.append(f"category {category} in {_list(rule.categories)}")
    if rule.complexities is not None:
        parts.append(f"complexity {complexity.label} in {_levels(rule.complexities)}")
    if rule.min_complexity is not None:
        parts.append(f"complexity {complexity.label} >= {rule.min_complexity.label}")
    return ", ".join(parts) if parts else "no conditions"


def _list(names: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(names)) + "]"


def _levels(levels: Iterable[Complexity]) -> str:
    return "[" + ", ".join(level.label for level in sorted(levels)) + "]"
