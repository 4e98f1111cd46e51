"""Use cases for what reviews conclude: each reviewed call's outcome, what a verdict teaches routing about
the customer (policy `review_learning`, see routing_service.domain.learning), and the outcomes per team and
rule.

The review workflow reports a call twice: once judged (its findings, no verdict) and once a supervisor gave
a verdict. Each report is one unit of work and idempotent per call: the call's row is inserted once, a
category found wrong is counted once, and a verdict is recorded (and teaches) once; a repeat returns what
the first did not change. Observers (the metrics) hear each first time after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from routing_service.app.ports import OutcomeCount, ReviewOutcomeRow, UnitOfWorkFactory
from routing_service.domain.errors import InvalidRequest, NotFound
from routing_service.domain.learning import (
    VERDICT_CONFIRMED,
    VERDICT_SHOULD_NOT_HAVE_ESCALATED,
    VERDICT_WRONG_CATEGORY,
    category_was_wrong,
    learn_from_verdict,
    outcome_of,
    taught_by,
)
from routing_service.domain.models import Customer, Policy
from routing_service.domain.uncertainty import was_uncertain

__all__ = [
    "VERDICTS",
    "ReviewOutcomeObserver",
    "ReviewOutcomeResult",
    "observe_review_outcomes",
    "record_review_outcome",
    "review_outcome_counts",
]

VERDICTS = frozenset(
    {VERDICT_CONFIRMED, "dismissed", "resolved", VERDICT_WRONG_CATEGORY, VERDICT_SHOULD_NOT_HAVE_ESCALATED}
)
"""The verdicts a supervisor can give (`workflows.inputs.Verdict`); "" is a review judged without one."""
_MAX_RULES = 50
_MAX_TEXT = 64


class ReviewOutcomeObserver(Protocol):
    """What the metrics hear, once per call each."""

    def review_verdict(self, team_id: str, rule_id: str, outcome: str) -> None: ...
    def uncertain_category_wrong(self, team_id: str) -> None: ...


_observers: list[ReviewOutcomeObserver] = []


def observe_review_outcomes(observer: ReviewOutcomeObserver) -> Callable[[], None]:
    """Register `observer` (the routing metrics); returns the function that unregisters it."""
    _observers.append(observer)
    return lambda: _observers.remove(observer) if observer in _observers else None


@dataclass(frozen=True, slots=True)
class ReviewOutcomeResult:
    """What one report did."""

    outcome: str
    """`confirmed` / `overturned` once a verdict is recorded (by this report or an earlier one), else ""."""
    verdict_recorded: bool
    """This report recorded the verdict (False: none given, or a repeat)."""
    category_wrong: bool
    """The review says the decision's category was wrong."""
    uncertain: bool
    """The decision was below the policy's confidence threshold."""
    learned: tuple[str, ...]
    """What the verdict taught about the customer, or why nothing, one line a kind (on a repeat: what the
    call's review taught that is still on record)."""
    customer: Customer | None
    """The customer after the report (None: the call had no caller on record)."""


def _validate(call_id: str, verdict: str, finding_rules: Sequence[str], actual_category: str) -> None:
    violations: list[tuple[str, str]] = []
    if not call_id:
        violations.append(("call_id", "required"))
    elif len(call_id) > 128:
        violations.append(("call_id", "at most 128 characters"))
    if verdict and verdict not in VERDICTS:
        violations.append(("verdict", f"must be one of {', '.join(sorted(VERDICTS))}, or empty"))
    if len(finding_rules) > _MAX_RULES:
        violations.append(("finding_rules", f"at most {_MAX_RULES}"))
    if any(len(rule) > _MAX_TEXT for rule in finding_rules):
        violations.append(("finding_rules", f"each at most {_MAX_TEXT} characters"))
    if len(actual_category) > _MAX_TEXT:
        violations.append(("actual_category", f"at most {_MAX_TEXT} characters"))
    if violations:
        raise InvalidRequest("invalid review outcome", violations)


async def record_review_outcome(
    call_id: str,
    *,
    verdict: str,
    finding_rules: Sequence[str],
    actual_category: str,
    decided_at: datetime | None,
    uow: UnitOfWorkFactory,
    policy: Policy,
    now: datetime,
) -> ReviewOutcomeResult:
    """Record a reviewed call's findings and verdict (see the module docstring); `decided_at` (the verdict's
    time, `now` when not given) starts the expiry of what the verdict teaches."""
    _validate(call_id, verdict, finding_rules, actual_category)
    wrong = category_was_wrong(verdict, finding_rules)
    async with uow() as u:
        decision = await u.decisions.latest_for_call(call_id)
        if decision is None:
            raise NotFound(f"no decision for call {call_id!r}")
        uncertain = was_uncertain(decision)
        await u.review_outcomes.open(
            ReviewOutcomeRow(
                call_id=call_id,
                team_id=decision.team_id,
                rule_id=decision.rule_id,
                uncertain=uncertain,
                category_wrong=False,
                verdict="",
                outcome="",
                judged_at=now,
            )
        )
        wrong_counted = wrong and await u.review_outcomes.mark_category_wrong(call_id)
        outcome = outcome_of(verdict, finding_rules) if verdict else None
        recorded = outcome is not None and await u.review_outcomes.set_verdict(
            call_id, verdict, outcome.value, decided_at or now
        )
        customer = await u.customers.get(decision.caller_number) if decision.caller_number else None
        notes: tuple[str, ...] = ()
        if recorded:
            if customer is None:
                notes = ("nothing learned: the call had no customer on record",)
            else:
                learned = learn_from_verdict(
                    policy,
                    verdict=verdict,
                    finding_rules=finding_rules,
                    decision=decision,
                    actual_category=actual_category,
                    current=customer.learned,
                    decided_at=decided_at or now,
                )
                notes = learned.notes
                if learned.learnings is not None:
                    await u.customers.save_learnings(customer.number, learned.learnings, now)
                    customer = await u.customers.get(customer.number)
        elif outcome is not None and customer is not None:
            notes = taught_by(customer.learned, call_id)
        await u.commit()
    for observer in tuple(_observers):
        if recorded and outcome is not None:
            observer.review_verdict(decision.team_id, decision.rule_id, outcome.value)
        if wrong_counted and uncertain:
            observer.uncertain_category_wrong(decision.team_id)
    return ReviewOutcomeResult(
        outcome=outcome.value if outcome is not None else "",
        verdict_recorded=recorded,
        category_wrong=wrong,
        uncertain=uncertain,
        learned=notes,
        customer=customer,
    )


async def review_outcome_counts(*, uow: UnitOfWorkFactory, since: datetime) -> list[OutcomeCount]:
    """Per (team, rule): verdicts since `since` that confirmed or overturned its decisions, and the
    uncertain decisions judged since then whose category a review said was wrong."""
    async with uow() as u:
        return await u.review_outcomes.counts(since)
