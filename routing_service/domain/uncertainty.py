"""Honest uncertainty: how sure a decision can be of the category and complexity it routes on, and what it
does when it is not sure enough (policy `uncertainty`).

    confidence = min(the assistant's stated confidence, when it gave one; agreement)
    agreement  = min(category agreement, complexity agreement)

Category agreement, from the policy's `category_keywords` found in customer_context, escalation_reason and
transcript (whole words or phrases, any case, as the complexity keywords are matched):

    1.0   no category's keywords found, or only the stated category's
    0.5   no usable category stated; or the stated category's keywords and another category's both found
    0.0   only other categories' keywords found

Complexity agreement, from the complexity keywords the assessment already looks for: 1.0 without a claim
or when the keywords do not raise it, else 1 - (levels raised) / 3 (basic claimed, critical keywords: 0.0).

Below the threshold the decision is uncertain and the policy's action applies: WIDEN (the generalist
team), UNION (the teams the candidate categories lead to: the stated one and those the keywords point to),
or CONFIRM (ask the assistant to confirm the category with the caller; only where it can ask, only when the
category is in doubt, and once per call: otherwise the policy's `otherwise` action). Every figure is a
trace step of stage "uncertainty"; the low-confidence step (subject `LOW_CONFIDENCE`) is what tells a later
decision of the same call that this one was uncertain.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from routing_service.domain.complexity import Assessment, leading_words, occurs
from routing_service.domain.matching import match_rule
from routing_service.domain.models import (
    Complexity,
    Decision,
    DecisionKind,
    Policy,
    Team,
    TraceOutcome,
    TraceStep,
    UncertaintyAction,
    UncertaintyPolicy,
)

__all__ = [
    "ASKED_BEFORE",
    "LOW_CONFIDENCE",
    "SECOND_TRANSFER",
    "STAGE",
    "Confidence",
    "UncertainCount",
    "candidate_teams",
    "count_uncertain",
    "response_to",
    "second_transfer_step",
    "was_uncertain",
    "weigh_confidence",
]

STAGE = "uncertainty"
LOW_CONFIDENCE = "low-confidence"
"""Subject of the trace step that marks a decision as uncertain."""
ASKED_BEFORE = "asked-before"
"""Subject of the trace step of a decision whose call was already asked to confirm its category."""
SECOND_TRANSFER = "second-transfer"
"""Subject of the trace step of a decision that follows an uncertain transfer of the same call."""
_LEVELS = len(Complexity) - 1
_TRANSFERS = frozenset(
    {DecisionKind.TRANSFER_AGENT, DecisionKind.TRANSFER_TEAM, DecisionKind.CALLBACK, DecisionKind.FALLBACK}
)


@dataclass(frozen=True, slots=True)
class Confidence:
    """How sure a decision is of its category and complexity, and why (see the module docstring)."""

    stated: float | None
    category_agreement: float
    complexity_agreement: float
    confidence: float
    low: bool
    candidate_categories: tuple[str, ...]
    """The stated (normalised) category first, then the categories the keywords point to."""
    steps: tuple[TraceStep, ...]

    @property
    def agreement(self) -> float:
        return min(self.category_agreement, self.complexity_agreement)

    @property
    def category_in_doubt(self) -> bool:
        return self.category_agreement < 1.0


def weigh_confidence(
    policy: UncertaintyPolicy,
    *,
    stated: float | None,
    category: str,
    category_stated: bool,
    claimed: Complexity | None,
    assessment: Assessment,
    categories: Sequence[str] = (),
) -> Confidence:
    """Weigh the decision's confidence. `category` is the category routing uses, `category_stated` whether
    the assistant named a known one; the category keywords are looked for in the texts `assessment` read;
    `categories` orders the candidate categories (the policy's list)."""
    hits = _category_hits(policy.category_keywords, assessment.texts)
    category_score, pointed = _category_agreement(category, category_stated, hits)
    complexity_score = 1.0
    level = assessment.keyword_level
    raised = claimed is not None and level is not None and level > claimed
    if raised and claimed is not None and level is not None:
        complexity_score = round(1.0 - (int(level) - int(claimed)) / _LEVELS, 2)
    agreement = min(category_score, complexity_score)
    confidence = agreement if stated is None else min(stated, agreement)
    low = confidence < policy.threshold
    basis = (
        f"agreement {agreement:.2f}, no confidence stated"
        if stated is None
        else f"lower of stated {stated:.2f} and agreement {agreement:.2f}"
    )
    candidates: tuple[str, ...] = (category,)
    if len(pointed - {category}) > 0:
        order = {name: i for i, name in enumerate(categories)}
        others = sorted(pointed - {category}, key=lambda c: (order.get(c, len(order)), c))
        candidates = (category, *others)

    steps: list[TraceStep] = []
    if agreement < 1.0 or low:  # where each figure came from; a confident, agreeing call gets one line
        said = (
            f"stated {category}"
            if category_stated
            else f"no usable category stated (routing uses {category})"
        )
        steps.append(
            _step("category", TraceOutcome.INFO, f"{said}; {_category_detail(category_score, hits)}")
        )
        if raised and claimed is not None and level is not None:
            keyword, where = assessment.keyword_hit or ("?", "?")
            detail = f"claimed {claimed.label}, keyword {keyword!r} in {where} says {level.label}"
        else:
            detail = (
                "no complexity claimed" if claimed is None else "no keyword raises the claimed complexity"
            )
        steps.append(_step("complexity", TraceOutcome.INFO, f"{detail}: agreement {complexity_score:.2f}"))
    if low:
        steps.append(
            _step(
                LOW_CONFIDENCE,
                TraceOutcome.MATCHED,
                f"confidence {confidence:.2f} ({basis}) is below the threshold {policy.threshold:.2f}",
            )
        )
    else:
        agrees = "" if agreement < 1.0 else "; nothing in the call contradicts the category or complexity"
        verdict = f"threshold {policy.threshold:.2f}: no widening{agrees}"
        steps.append(
            _step("confidence", TraceOutcome.INFO, f"confidence {confidence:.2f} ({basis}), {verdict}")
        )
    return Confidence(
        stated=stated,
        category_agreement=category_score,
        complexity_agreement=complexity_score,
        confidence=confidence,
        low=low,
        candidate_categories=candidates,
        steps=tuple(steps),
    )


def response_to(
    confidence: Confidence, policy: UncertaintyPolicy, *, can_confirm: bool, asked_before: bool
) -> UncertaintyAction | None:
    """What an uncertain decision does (None when it is not uncertain). CONFIRM stands only where the
    assistant can ask, has not asked in this call yet, and the category is what is in doubt; otherwise the
    policy's `otherwise` action applies."""
    if not confidence.low:
        return None
    if policy.action is not UncertaintyAction.CONFIRM:
        return policy.action
    if can_confirm and not asked_before and confidence.category_in_doubt:
        return UncertaintyAction.CONFIRM
    return policy.otherwise


def candidate_teams(
    policy: Policy, *, tier: str, categories: Sequence[str], complexity: Complexity
) -> tuple[tuple[str, Team], ...]:
    """(rule id, team) the policy's rules give each candidate category (first match each), in order, each
    team once."""
    teams: dict[str, tuple[str, Team]] = {}
    for category in categories:
        match = match_rule(policy, tier=tier, category=category, complexity=complexity)
        if match.team is not None and match.rule is not None:
            teams.setdefault(match.team.team_id, (match.rule.rule_id, match.team))
    return tuple(teams.values())


def was_uncertain(decision: Decision) -> bool:
    """Whether `decision` was taken below its policy's confidence threshold (its trace says so)."""
    return any(step.stage == STAGE and step.subject == LOW_CONFIDENCE for step in decision.trace)


def second_transfer_step(earlier: Decision | None) -> TraceStep | None:
    """The trace step saying this call needs another transfer after an uncertain one (`earlier`, the call's
    previous decision); None when there was none, it was certain, or it transferred nothing (CONFIRM)."""
    if earlier is None or earlier.kind not in _TRANSFERS or not was_uncertain(earlier):
        return None
    where = earlier.team_id or "the fallback line"
    return TraceStep(
        STAGE,
        SECOND_TRANSFER,
        TraceOutcome.INFO,
        f"the call's earlier decision {earlier.decision_id} ({earlier.kind.value} to {where}) was uncertain"
        " and the call needs another transfer",
    )


@dataclass(slots=True)
class UncertainCount:
    """A team's uncertain decisions, and after how many of those transfers the call was decided again."""

    uncertain: int = 0
    second_transfers: int = 0


def count_uncertain(decisions: Iterable[Decision], *, since: datetime) -> dict[str, UncertainCount]:
    """Per team (the uncertain decision's; "" for none), the uncertain decisions taken at or after `since`
    and those of them (transfers) after which the same call was decided again. Dry runs do not count."""
    by_call: dict[str, list[Decision]] = defaultdict(list)
    for decision in decisions:
        if not decision.dry_run:
            by_call[decision.call_id].append(decision)
    counts: dict[str, UncertainCount] = {}
    for calls in by_call.values():
        calls.sort(key=lambda d: (d.decided_at, d.decision_id))
        for position, decision in enumerate(calls):
            if decision.decided_at < since or not was_uncertain(decision):
                continue
            count = counts.setdefault(decision.team_id, UncertainCount())
            count.uncertain += 1
            if decision.kind in _TRANSFERS and position + 1 < len(calls):
                count.second_transfers += 1
    return counts


def _category_hits(
    keywords: Mapping[str, tuple[str, ...]], named: Sequence[tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """Per category whose keywords occur: (its first keyword found, the first text holding it). One
    substring scan of all the texts per keyword (joined by a line break, which no keyword spans) rules most
    keywords out; only a candidate is matched as a whole word, then its text is named."""
    hits: dict[str, tuple[str, str]] = {}
    if not named:
        return hits
    combined = named[0][1] if len(named) == 1 else "\n".join(lowered for _, lowered in named)
    for category, words in keywords.items():
        for first, keyword in leading_words(words):
            if first in combined and occurs(keyword, combined):
                where = next((name for name, lowered in named if occurs(keyword, lowered)), "call text")
                hits[category] = (keyword, where)
                break
    return hits


def _category_agreement(
    category: str, category_stated: bool, hits: Mapping[str, tuple[str, str]]
) -> tuple[float, set[str]]:
    pointed = set(hits)
    if not category_stated:
        return 0.5, pointed
    if not pointed or pointed == {category}:
        return 1.0, pointed
    if category in pointed:
        return 0.5, pointed
    return 0.0, pointed


def _category_detail(score: float, hits: Mapping[str, tuple[str, str]]) -> str:
    if not hits:
        return f"no category keywords in the call: agreement {score:.2f}"
    found = ", ".join(f"{name} ({keyword!r} in {where})" for name, (keyword, where) in sorted(hits.items()))
    return f"keywords point to {found}: agreement {score:.2f}"


def _step(subject: str, outcome: TraceOutcome, detail: str) -> TraceStep:
    return TraceStep(STAGE, subject, outcome, detail)
