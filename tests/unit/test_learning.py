"""The rules of learning from review verdicts (routing_service.domain.learning) and the policy section that
allows it: what each verdict says of the decision, what it teaches, how the next decision applies it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from routing_service.domain.learning import (
    ReviewOutcome,
    capped_complexity,
    category_was_wrong,
    learn_from_verdict,
    outcome_of,
    preferred_team,
)
from routing_service.domain.models import (
    Complexity,
    CustomerLearnings,
    Decision,
    DecisionKind,
    Destination,
    Policy,
    TransferMode,
)
from routing_service.policy import PolicyError, parse_policy
from tests.support.routing_builders import NOW, TECHCORP_POLICY, techcorp_policy


@pytest.fixture(scope="module")
def policy() -> Policy:
    return techcorp_policy()


def reviewed(**changes: object) -> Decision:
    """A premium caller's technical call routed to the technical team by `technical-specialists`."""
    decision = Decision(
        decision_id="dec-1",
        call_id="call-1",
        tool_call_id="tool-1",
        kind=DecisionKind.TRANSFER_TEAM,
        destination=Destination(number="+15550100200"),
        caller_message="",
        transfer_mode=TransferMode.BLIND_TRANSFER,
        effective_complexity=Complexity.ADVANCED,
        claimed_complexity=Complexity.ADVANCED,
        tier="premium",
        issue_category="technical",
        reason="",
        trace=(),
        decided_at=NOW,
        team_id="technical",
        rule_id="technical-specialists",
        caller_number="+1111111111",
    )
    return replace(decision, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdict", "rules", "outcome"),
    [
        ("wrong-category", (), ReviewOutcome.OVERTURNED),
        ("should-not-have-escalated", ("transfer_failed",), ReviewOutcome.OVERTURNED),
        ("confirmed", ("category_mismatch",), ReviewOutcome.OVERTURNED),
        ("confirmed", ("critical_not_routed_critical",), ReviewOutcome.OVERTURNED),
        ("confirmed", ("transfer_failed", "wait_over_target"), ReviewOutcome.CONFIRMED),
        ("dismissed", ("category_mismatch",), ReviewOutcome.CONFIRMED),
        ("resolved", ("category_mismatch",), ReviewOutcome.CONFIRMED),
    ],
)
def test_a_verdict_overturns_the_decision_only_when_it_says_the_routing_was_wrong(
    verdict: str, rules: tuple[str, ...], outcome: ReviewOutcome
) -> None:
    assert outcome_of(verdict, rules) is outcome


def test_the_category_was_wrong_by_a_finding_not_dismissed_or_by_the_verdict() -> None:
    assert category_was_wrong("", ("category_mismatch",))
    assert category_was_wrong("confirmed", ("category_mismatch",))
    assert category_was_wrong("wrong-category", ())
    assert not category_was_wrong("dismissed", ("category_mismatch",))
    assert not category_was_wrong("confirmed", ("transfer_failed",))


def test_a_wrong_category_teaches_the_team_the_rules_give_the_real_category(policy: Policy) -> None:
    learned = learn_from_verdict(
        policy,
        verdict="wrong-category",
        finding_rules=(),
        decision=reviewed(),
        actual_category="Billing",
        current=None,
        decided_at=NOW,
    )
    assert learned.learnings == CustomerLearnings(
        preferred_team="billing",
        preferred_team_category="technical",
        preferred_team_until=NOW + timedelta(days=30),
        preferred_team_call_id="call-1",
    )
    assert learned.notes[0].startswith("preferred team billing for calls stated as technical")


@pytest.mark.parametrize(
    ("actual", "note"),
    [
        ("", "the category the call was about is not known"),
        ("shipping", "'shipping', not in the policy"),
        ("technical", "technical goes to technical already"),
    ],
)
def test_no_team_is_learned_without_a_better_one(policy: Policy, actual: str, note: str) -> None:
    learned = learn_from_verdict(
        policy,
        verdict="wrong-category",
        finding_rules=(),
        decision=reviewed(),
        actual_category=actual,
        current=None,
        decided_at=NOW,
    )
    assert learned.learnings is None
    assert note in learned.notes[0]


def test_should_not_have_escalated_teaches_the_policy_ceiling(policy: Policy) -> None:
    learned = learn_from_verdict(
        policy,
        verdict="should-not-have-escalated",
        finding_rules=(),
        decision=reviewed(),
        actual_category="",
        current=None,
        decided_at=NOW,
    )
    assert learned.learnings is not None
    assert learned.learnings.complexity_ceiling is Complexity.INTERMEDIATE
    assert learned.learnings.complexity_ceiling_until == NOW + timedelta(days=14)


def test_other_verdicts_and_a_missing_section_teach_nothing(policy: Policy) -> None:
    for verdict in ("dismissed", "resolved", "confirmed"):
        learned = learn_from_verdict(
            policy,
            verdict=verdict,
            finding_rules=("transfer_failed",),
            decision=reviewed(),
            actual_category="billing",
            current=None,
            decided_at=NOW,
        )
        assert learned == learned.__class__(None, ())
    bare = replace(policy, review_learning=None)
    learned = learn_from_verdict(
        bare,
        verdict="wrong-category",
        finding_rules=(),
        decision=reviewed(),
        actual_category="billing",
        current=None,
        decided_at=NOW,
    )
    assert learned.learnings is None and "no review_learning section" in learned.notes[0]


def test_the_same_verdict_again_changes_nothing_and_a_longer_learning_is_kept(policy: Policy) -> None:
    def learn(current: CustomerLearnings | None, at: object) -> object:
        return learn_from_verdict(
            policy,
            verdict="wrong-category",
            finding_rules=(),
            decision=reviewed(),
            actual_category="billing",
            current=current,
            decided_at=at,  # type: ignore[arg-type]
        )

    first = learn(None, NOW).learnings  # type: ignore[attr-defined]
    assert learn(first, NOW).learnings is None  # type: ignore[attr-defined]
    older = learn(first, NOW - timedelta(days=1))
    assert older.learnings is None and "lasts longer" in older.notes[0]  # type: ignore[attr-defined]


def test_a_preferred_team_applies_to_its_category_until_it_expires() -> None:
    learned = CustomerLearnings(
        preferred_team="billing",
        preferred_team_category="technical",
        preferred_team_until=NOW + timedelta(days=1),
        preferred_team_call_id="call-1",
    )
    teams = ("technical", "billing")
    team, step = preferred_team(learned, category="technical", rule_team="technical", teams=teams, now=NOW)
    assert team == "billing" and step is not None and "review of call call-1" in step.detail
    assert preferred_team(learned, category="billing", rule_team="billing", teams=teams, now=NOW) == (
        None,
        None,
    )
    later = NOW + timedelta(days=2)
    assert preferred_team(learned, category="technical", rule_team="technical", teams=teams, now=later) == (
        None,
        None,
    )
    gone, skipped = preferred_team(
        learned, category="technical", rule_team="technical", teams=("technical",), now=NOW
    )
    assert gone is None and skipped is not None and "no longer in the policy" in skipped.detail


def test_a_ceiling_lowers_only_what_keywords_and_history_raised() -> None:
    learned = CustomerLearnings(
        complexity_ceiling=Complexity.INTERMEDIATE,
        complexity_ceiling_until=NOW + timedelta(days=1),
        complexity_ceiling_call_id="call-9",
    )
    level, step = capped_complexity(
        learned, effective=Complexity.CRITICAL, claimed=Complexity.BASIC, floor=None, now=NOW
    )
    assert level is Complexity.INTERMEDIATE and step is not None and "critical -> intermediate" in step.detail
    level, _ = capped_complexity(
        learned, effective=Complexity.CRITICAL, claimed=Complexity.ADVANCED, floor=None, now=NOW
    )
    assert level is Complexity.ADVANCED, "never below the claim"
    level, kept = capped_complexity(
        learned, effective=Complexity.ADVANCED, claimed=Complexity.BASIC, floor=Complexity.ADVANCED, now=NOW
    )
    assert level is Complexity.ADVANCED and kept is not None and "not applied" in kept.detail
    assert capped_complexity(
        learned, effective=Complexity.BASIC, claimed=Complexity.BASIC, floor=None, now=NOW
    ) == (Complexity.BASIC, None)
    expired = NOW + timedelta(days=2)
    assert capped_complexity(
        learned, effective=Complexity.CRITICAL, claimed=Complexity.BASIC, floor=None, now=expired
    ) == (Complexity.CRITICAL, None)


def _with_section(section: str) -> str:
    text = TECHCORP_POLICY.read_text()
    return text[: text.index("\nreview_learning:")] + "\n" + section + "\n"


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ("review_learning: {wrong_category: {expires_after_days: 0}}", "review_learning.wrong_category"),
        (
            "review_learning: {should_not_have_escalated: {complexity_ceiling: huge, expires_after_days: 3}}",
            "review_learning.should_not_have_escalated.complexity_ceiling",
        ),
        (
            "review_learning: {wrong_category: {expires_after_days: 3, team: x}}",
            "review_learning.wrong_category",
        ),
    ],
)
def test_a_bad_section_is_refused_naming_the_field(section: str, field: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(_with_section(section), source="p.yaml")
    assert any(problem.field.startswith(field) for problem in raised.value.problems), raised.value.problems


def test_techcorp_allows_both_learnings(policy: Policy) -> None:
    section = policy.review_learning
    assert section is not None and section.wrong_category is not None
    assert section.wrong_category.expires_after == timedelta(days=30)
    assert section.should_not_have_escalated is not None
    assert section.should_not_have_escalated.ceiling is Complexity.INTERMEDIATE
