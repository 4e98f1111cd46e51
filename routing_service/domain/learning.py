"""What a review's verdict teaches routing about a customer, and how the next decision uses it (policy
`review_learning`).

A supervisor's verdict on a review either upholds the decision or overturns it:

    overturned   `wrong-category`, `should-not-have-escalated`, or `confirmed` on a review whose findings
                 say the routing itself was wrong (`category_mismatch`, `critical_not_routed_critical`)
    confirmed    any other verdict (`dismissed`, `resolved`, `confirmed` on findings about the transfer or
                 the wait, which the choice of team did not cause)

Two verdicts teach, when the policy's section allows it, each learning with its own expiry:

    wrong category               `wrong-category`, or `confirmed` with a `category_mismatch` finding: this
                                 customer's calls stated as the category routing used go to the team the
                                 policy's rules give the category the call was really about (preferred team)
    should not have escalated    `should-not-have-escalated`: keywords and history raise this customer's
                                 calls no higher than the policy's ceiling (the assistant's claim and the
                                 tier's floor still apply)

A later verdict replaces an earlier learning of the same kind unless the earlier one lasts longer; the same
verdict applied again (a retry) writes the same values. An expired learning is ignored.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from routing_service.domain.matching import match_rule, normalize_category
from routing_service.domain.models import (
    Complexity,
    CustomerLearnings,
    Decision,
    Policy,
    ReviewLearningPolicy,
    TraceOutcome,
    TraceStep,
)

__all__ = [
    "CATEGORY_MISMATCH",
    "ROUTING_FINDINGS",
    "STAGE",
    "VERDICT_CONFIRMED",
    "VERDICT_SHOULD_NOT_HAVE_ESCALATED",
    "VERDICT_WRONG_CATEGORY",
    "Learned",
    "ReviewOutcome",
    "capped_complexity",
    "category_was_wrong",
    "learn_from_verdict",
    "outcome_of",
    "preferred_team",
    "taught_by",
]

STAGE = "learned"
"""Stage of the trace steps a learning adds to a decision."""

VERDICT_CONFIRMED = "confirmed"
VERDICT_WRONG_CATEGORY = "wrong-category"
VERDICT_SHOULD_NOT_HAVE_ESCALATED = "should-not-have-escalated"
"""The verdicts' spellings (`workflows.inputs.Verdict` has the same values; a test holds them together)."""

CATEGORY_MISMATCH = "category_mismatch"
ROUTING_FINDINGS = frozenset({CATEGORY_MISMATCH, "critical_not_routed_critical"})
"""Review findings that say the routing itself was wrong (a confirmed verdict on them overturns it)."""


class ReviewOutcome(enum.StrEnum):
    """What a verdict says of the decision it reviewed."""

    CONFIRMED = "confirmed"
    OVERTURNED = "overturned"


def outcome_of(verdict: str, finding_rules: Iterable[str]) -> ReviewOutcome:
    """Whether `verdict` upholds or overturns the reviewed decision (see the module docstring)."""
    if verdict in (VERDICT_WRONG_CATEGORY, VERDICT_SHOULD_NOT_HAVE_ESCALATED):
        return ReviewOutcome.OVERTURNED
    if verdict == VERDICT_CONFIRMED and ROUTING_FINDINGS.intersection(finding_rules):
        return ReviewOutcome.OVERTURNED
    return ReviewOutcome.CONFIRMED


def category_was_wrong(verdict: str, finding_rules: Iterable[str]) -> bool:
    """The review says the call was routed under the wrong category: a `category_mismatch` finding not
    dismissed, or a `wrong-category` verdict."""
    rules = set(finding_rules)
    if verdict == VERDICT_WRONG_CATEGORY:
        return True
    return CATEGORY_MISMATCH in rules and verdict not in ("dismissed",)


@dataclass(frozen=True, slots=True)
class Learned:
    """What one verdict taught: the customer's learnings afterwards (None: unchanged) and why, one line a
    kind (what was learned, or why nothing was)."""

    learnings: CustomerLearnings | None
    notes: tuple[str, ...]


def learn_from_verdict(
    policy: Policy,
    *,
    verdict: str,
    finding_rules: Iterable[str],
    decision: Decision,
    actual_category: str,
    current: CustomerLearnings | None,
    decided_at: datetime,
) -> Learned:
    """The customer's learnings after `verdict` on the review of `decision` (decided at `decided_at`, which
    starts each expiry, so that applying the same verdict again gives the same values)."""
    section = policy.review_learning
    rules = tuple(finding_rules)
    wrong_category = verdict == VERDICT_WRONG_CATEGORY or (
        verdict == VERDICT_CONFIRMED and CATEGORY_MISMATCH in rules
    )
    not_needed = verdict == VERDICT_SHOULD_NOT_HAVE_ESCALATED
    if not (wrong_category or not_needed):
        return Learned(None, ())
    if section is None:
        return Learned(None, ("nothing learned: the policy has no review_learning section",))
    learned = current or CustomerLearnings()
    notes: list[str] = []
    if wrong_category:
        learned, note = _learn_team(policy, section, learned, decision, actual_category, decided_at)
        notes.append(note)
    if not_needed:
        learned, note = _learn_ceiling(section, learned, decision, decided_at)
        notes.append(note)
    return Learned(None if learned == (current or CustomerLearnings()) else learned, tuple(notes))


def _learn_team(
    policy: Policy,
    section: ReviewLearningPolicy,
    learned: CustomerLearnings,
    decision: Decision,
    actual_category: str,
    decided_at: datetime,
) -> tuple[CustomerLearnings, str]:
    rule = section.wrong_category
    if rule is None:
        return learned, "no preferred team learned: review_learning.wrong_category is not set"
    category, unknown = normalize_category(policy, actual_category)
    if not actual_category.strip() or unknown is not None:
        stated = actual_category.strip()
        why = f"{stated!r}, not in the policy" if stated else "not known"
        return learned, f"no preferred team learned: the category the call was about is {why}"
    match = match_rule(
        policy, tier=decision.tier, category=category, complexity=decision.effective_complexity
    )
    if match.team is None:
        return learned, f"no preferred team learned: no rule routes {category} for tier {decision.tier}"
    if match.team.team_id == decision.team_id:
        return learned, f"no preferred team learned: {category} goes to {decision.team_id} already"
    until = decided_at + rule.expires_after
    if learned.preferred_team_until is not None and learned.preferred_team_until > until:
        return learned, "no preferred team learned: a later verdict's lasts longer"
    learned = replace(
        learned,
        preferred_team=match.team.team_id,
        preferred_team_category=decision.issue_category,
        preferred_team_until=until,
        preferred_team_call_id=decision.call_id,
    )
    return learned, (
        f"preferred team {match.team.team_id} for calls stated as {decision.issue_category} "
        f"(they were about {category}), until {until:%Y-%m-%d %H:%M} UTC"
    )


def _learn_ceiling(
    section: ReviewLearningPolicy, learned: CustomerLearnings, decision: Decision, decided_at: datetime
) -> tuple[CustomerLearnings, str]:
    rule = section.should_not_have_escalated
    if rule is None:
        return learned, "no complexity ceiling learned: review_learning.should_not_have_escalated is not set"
    until = decided_at + rule.expires_after
    if learned.complexity_ceiling_until is not None and learned.complexity_ceiling_until > until:
        return learned, "no complexity ceiling learned: a later verdict's lasts longer"
    learned = replace(
        learned,
        complexity_ceiling=rule.ceiling,
        complexity_ceiling_until=until,
        complexity_ceiling_call_id=decision.call_id,
    )
    return learned, f"complexity ceiling {rule.ceiling.label}, until {until:%Y-%m-%d %H:%M} UTC"


def taught_by(learned: CustomerLearnings | None, call_id: str) -> tuple[str, ...]:
    """What the review of `call_id` taught that the customer still has on record, one line a kind (for a
    repeated report, which teaches nothing anew but should say the same)."""
    if learned is None:
        return ()
    lines: list[str] = []
    if learned.preferred_team_call_id == call_id and learned.preferred_team_until is not None:
        lines.append(
            f"preferred team {learned.preferred_team} for calls stated as {learned.preferred_team_category}, "
            f"until {learned.preferred_team_until:%Y-%m-%d %H:%M} UTC (recorded before)"
        )
    if (
        learned.complexity_ceiling_call_id == call_id
        and learned.complexity_ceiling is not None
        and learned.complexity_ceiling_until is not None
    ):
        lines.append(
            f"complexity ceiling {learned.complexity_ceiling.label}, "
            f"until {learned.complexity_ceiling_until:%Y-%m-%d %H:%M} UTC (recorded before)"
        )
    return tuple(lines)


def preferred_team(
    learned: CustomerLearnings | None, *, category: str, rule_team: str, teams: Iterable[str], now: datetime
) -> tuple[str | None, TraceStep | None]:
    """The team a learning sends this call to instead of `rule_team` (None: the rule's team stands), and
    the trace step saying so (None: no learning applies to this call)."""
    if (
        learned is None
        or learned.preferred_team is None
        or learned.preferred_team_until is None
        or learned.preferred_team_until <= now
        or learned.preferred_team_category != category
        or learned.preferred_team == rule_team
    ):
        return None, None
    source = f"review of call {learned.preferred_team_call_id}"
    if learned.preferred_team not in teams:
        detail = f"preferred team {learned.preferred_team} ({source}) is no longer in the policy: ignored"
        return None, TraceStep(STAGE, learned.preferred_team, TraceOutcome.SKIPPED, detail)
    detail = (
        f"{source}: this customer's calls stated as {category} go to {learned.preferred_team} instead of "
        f"{rule_team} (until {learned.preferred_team_until:%Y-%m-%d %H:%M} UTC)"
    )
    return learned.preferred_team, TraceStep(STAGE, learned.preferred_team, TraceOutcome.CHOSEN, detail)


def capped_complexity(
    learned: CustomerLearnings | None,
    *,
    effective: Complexity,
    claimed: Complexity,
    floor: Complexity | None,
    now: datetime,
) -> tuple[Complexity, TraceStep | None]:
    """The effective complexity under the customer's learned ceiling: what keywords and history raised
    above it comes down to it, never below the claim (or the policy's default) or the tier's floor."""
    if (
        learned is None
        or learned.complexity_ceiling is None
        or learned.complexity_ceiling_until is None
        or learned.complexity_ceiling_until <= now
        or effective <= learned.complexity_ceiling
    ):
        return effective, None
    capped = max(learned.complexity_ceiling, claimed, floor or Complexity.BASIC)
    if capped >= effective:
        detail = (
            f"ceiling {learned.complexity_ceiling.label} "
            f"(review of call {learned.complexity_ceiling_call_id}) not applied: "
            f"the claim or the tier's floor is {effective.label}"
        )
        return effective, TraceStep(STAGE, "complexity-ceiling", TraceOutcome.INFO, detail)
    detail = (
        f"review of call {learned.complexity_ceiling_call_id}: this customer's calls are raised no higher "
        f"than {learned.complexity_ceiling.label}: {effective.label} -> {capped.label} "
        f"(until {learned.complexity_ceiling_until:%Y-%m-%d %H:%M} UTC)"
    )
    return capped, TraceStep(STAGE, "complexity-ceiling", TraceOutcome.MATCHED, detail)
