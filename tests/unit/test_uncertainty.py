"""The rules of honest uncertainty (routing_service.domain.uncertainty) and the policy section that sets
them: pure functions, no store, no I/O."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from types import MappingProxyType

import pytest

from routing_service.domain.complexity import assess_complexity
from routing_service.domain.decision import confirm_category_decision
from routing_service.domain.models import (
    Complexity,
    Decision,
    DecisionKind,
    EscalationRequest,
    Policy,
    TraceOutcome,
    TraceStep,
    UncertaintyAction,
    UncertaintyPolicy,
)
from routing_service.domain.uncertainty import (
    LOW_CONFIDENCE,
    SECOND_TRANSFER,
    STAGE,
    Confidence,
    UncertainCount,
    candidate_teams,
    count_uncertain,
    response_to,
    second_transfer_step,
    was_uncertain,
    weigh_confidence,
)
from routing_service.policy import PolicyError, parse_policy
from tests.support.routing_builders import NOW, TECHCORP_POLICY, techcorp_policy

KEYWORDS = MappingProxyType(
    {
        "technical": ("error", "crash", "api", "outage"),
        "billing": ("invoice", "refund", "charged"),
        "account": ("password", "locked out"),
    }
)
RULES = UncertaintyPolicy(
    threshold=0.5, action=UncertaintyAction.UNION, generalist_team="general", category_keywords=KEYWORDS
)
CATEGORIES = ("technical", "billing", "account", "product")


@cache
def techcorp() -> Policy:
    return techcorp_policy()


@pytest.fixture(scope="module")
def policy() -> Policy:
    return techcorp()


def weigh(
    policy: Policy,
    *,
    category: str = "technical",
    stated: float | None = None,
    claimed: Complexity | None = Complexity.INTERMEDIATE,
    context: str = "",
    transcript: str = "",
    category_stated: bool = True,
    rules: UncertaintyPolicy = RULES,
) -> Confidence:
    texts = {"customer_context": context, "transcript": transcript}
    assessment = assess_complexity(
        claimed=claimed, texts=texts, tier="standard", previous_escalations=0, policy=policy.complexity
    )
    return weigh_confidence(
        rules,
        stated=stated,
        category=category,
        category_stated=category_stated,
        claimed=claimed,
        assessment=assessment,
        categories=CATEGORIES,
    )


def test_confidence_is_full_when_nothing_in_the_call_contradicts_the_assistant(policy: Policy) -> None:
    weighed = weigh(policy, context="The mobile app shows an error after the update")

    assert (weighed.category_agreement, weighed.complexity_agreement, weighed.confidence) == (1.0, 1.0, 1.0)
    assert not weighed.low
    assert weighed.candidate_categories == ("technical",)
    assert weighed.steps[-1].subject == "confidence"


def test_category_agreement_is_zero_when_only_another_categorys_keywords_are_found(policy: Policy) -> None:
    weighed = weigh(policy, category="technical", transcript="I was charged twice and want a refund")

    assert weighed.category_agreement == 0.0
    assert weighed.low
    assert weighed.candidate_categories == ("technical", "billing")
    low = weighed.steps[-1]
    assert (low.stage, low.subject, low.outcome) == (STAGE, LOW_CONFIDENCE, TraceOutcome.MATCHED)
    category = next(s for s in weighed.steps if s.subject == "category")
    assert "billing ('refund' in transcript)" in category.detail  # the first of its keywords found


def test_category_agreement_is_half_when_the_stated_and_another_category_are_both_found(
    policy: Policy,
) -> None:
    weighed = weigh(policy, category="billing", context="The invoice page shows an error")

    assert weighed.category_agreement == 0.5
    assert not weighed.low  # 0.5 is not below the threshold 0.5
    assert weighed.candidate_categories == ("billing", "technical")


def test_category_agreement_is_half_when_no_usable_category_was_stated(policy: Policy) -> None:
    weighed = weigh(policy, category="general", category_stated=False, context="locked out since Monday")

    assert weighed.category_agreement == 0.5
    assert weighed.candidate_categories == ("general", "account")
    assert "no usable category stated" in next(s for s in weighed.steps if s.subject == "category").detail


@pytest.mark.parametrize(
    ("claimed", "context", "expected"),
    [
        (Complexity.BASIC, "Regional outage since this morning", 0.0),  # basic claimed, critical found
        (Complexity.BASIC, "Our API key stopped working", 0.33),  # basic claimed, advanced found
        (Complexity.ADVANCED, "Regional outage", 0.67),
        (Complexity.CRITICAL, "Regional outage", 1.0),  # the keywords never lower a claim
        (None, "Regional outage", 1.0),  # no claim to disagree with
    ],
)
def test_complexity_agreement_falls_a_third_for_each_level_the_keywords_raise_the_claim(
    policy: Policy, claimed: Complexity | None, context: str, expected: float
) -> None:
    assert weigh(policy, claimed=claimed, context=context).complexity_agreement == expected


def test_confidence_is_the_lower_of_the_stated_one_and_the_agreement(policy: Policy) -> None:
    unsure = weigh(policy, stated=0.3, context="an error on login")
    sure_but_contradicted = weigh(policy, stated=0.95, transcript="a refund for the invoice")

    assert (unsure.confidence, unsure.low) == (0.3, True)
    assert "lower of stated 0.30 and agreement 1.00" in unsure.steps[-1].detail
    assert (sure_but_contradicted.confidence, sure_but_contradicted.low) == (0.0, True)


def test_keywords_match_whole_words_like_the_complexity_keywords(policy: Policy) -> None:
    # "terror" holds "error", "apis" is the plural of "api": only whole words (plurals allowed) count
    assert weigh(policy, category="billing", context="terror").category_agreement == 1.0
    assert weigh(policy, category="billing", context="two APIs").category_agreement == 0.0


def test_an_uncertain_decision_does_what_the_policy_says() -> None:
    low = Confidence(None, 0.0, 1.0, 0.0, True, ("technical", "billing"), ())
    confirm = replace(RULES, action=UncertaintyAction.CONFIRM, otherwise=UncertaintyAction.WIDEN)

    assert response_to(replace(low, low=False), RULES, can_confirm=True, asked_before=False) is None
    assert response_to(low, RULES, can_confirm=True, asked_before=False) is UncertaintyAction.UNION
    assert response_to(low, confirm, can_confirm=True, asked_before=False) is UncertaintyAction.CONFIRM
    # the transfer tool cannot ask; nobody is asked twice; a doubt about complexity alone is not asked
    assert response_to(low, confirm, can_confirm=False, asked_before=False) is UncertaintyAction.WIDEN
    assert response_to(low, confirm, can_confirm=True, asked_before=True) is UncertaintyAction.WIDEN
    complexity_only = replace(low, category_agreement=1.0, complexity_agreement=0.0)
    assert response_to(complexity_only, confirm, can_confirm=True, asked_before=False) is (
        UncertaintyAction.WIDEN
    )


def test_candidate_teams_follow_the_rules_for_each_category_once_each(policy: Policy) -> None:
    teams = candidate_teams(
        policy,
        tier="standard",
        categories=("technical", "billing", "account"),
        complexity=Complexity.ADVANCED,
    )
    critical = candidate_teams(
        policy, tier="standard", categories=("technical", "billing"), complexity=Complexity.CRITICAL
    )

    assert [(rule_id, team.team_id) for rule_id, team in teams] == [
        ("technical-specialists", "technical"),
        ("billing-and-account", "billing"),
    ]
    assert [team.team_id for _, team in critical] == ["enterprise"]


def decision(kind: DecisionKind, *trace: TraceStep, team_id: str = "technical") -> Decision:
    base = confirm_category_decision(
        techcorp(),
        EscalationRequest(call_id="c-1", tool_call_id="t-1"),
        template="confirm",
        other_categories=(),
        tier="standard",
        category="technical",
        complexity=Complexity.BASIC,
        decision_id="d-1",
        now=NOW,
        confidence=0.2,
        trace=trace,
    )
    return replace(base, kind=kind, team_id=team_id)


def test_a_second_transfer_is_noted_only_after_an_uncertain_transfer() -> None:
    low = TraceStep(STAGE, LOW_CONFIDENCE, TraceOutcome.MATCHED, "confidence 0.20 ...")
    uncertain = decision(DecisionKind.TRANSFER_AGENT, low)
    certain = decision(DecisionKind.TRANSFER_AGENT)
    asked = decision(DecisionKind.CONFIRM_CATEGORY, low)

    step = second_transfer_step(uncertain)
    assert step is not None and (step.stage, step.subject) == (STAGE, SECOND_TRANSFER)
    assert "transfer_agent to technical" in step.detail
    assert was_uncertain(uncertain) and not was_uncertain(certain)
    assert second_transfer_step(certain) is None
    assert second_transfer_step(asked) is None  # nothing was transferred
    assert second_transfer_step(None) is None


def test_counts_uncertain_decisions_by_team_and_the_transfers_a_call_needed_again() -> None:
    from datetime import timedelta

    low = TraceStep(STAGE, LOW_CONFIDENCE, TraceOutcome.MATCHED, "confidence 0.20 ...")

    def made(call_id: str, minutes_ago: int, kind: DecisionKind, team: str, *trace: TraceStep) -> Decision:
        return replace(
            decision(kind, *trace, team_id=team),
            call_id=call_id,
            decision_id=f"{call_id}-{minutes_ago}",
            decided_at=NOW - timedelta(minutes=minutes_ago),
        )

    decisions = [
        made("a", 10, DecisionKind.TRANSFER_AGENT, "technical", low),  # uncertain, decided again after
        made("a", 5, DecisionKind.TRANSFER_AGENT, "billing"),
        made("b", 20, DecisionKind.TRANSFER_AGENT, "technical", low),  # uncertain, the only decision
        made("c", 30, DecisionKind.CONFIRM_CATEGORY, "", low),  # asked: nothing was transferred
        made("c", 29, DecisionKind.TRANSFER_AGENT, "billing"),
        made("d", 90, DecisionKind.TRANSFER_AGENT, "technical", low),  # before the window
        made("d", 30, DecisionKind.TRANSFER_AGENT, "technical"),
        replace(made("e", 1, DecisionKind.TRANSFER_AGENT, "general", low), dry_run=True),
    ]

    counts = count_uncertain(decisions, since=NOW - timedelta(hours=1))

    assert counts == {"technical": UncertainCount(2, 1), "": UncertainCount(1, 0)}


def test_confirm_decision_names_the_other_categories_and_transfers_nothing(policy: Policy) -> None:
    request = EscalationRequest(call_id="c-1", tool_call_id="t-1", customer_context="refund please")
    assert policy.uncertainty is not None
    made = confirm_category_decision(
        policy,
        request,
        template=policy.uncertainty.confirm_message,
        other_categories=("billing", "account"),
        tier="standard",
        category="technical",
        complexity=Complexity.BASIC,
        decision_id="d-1",
        now=NOW,
        confidence=0.0,
    )

    assert made.kind is DecisionKind.CONFIRM_CATEGORY
    assert "is it technical, or billing or account?" in made.caller_message
    assert made.destination == policy.fallback.destination
    assert (made.team_id, made.agent_id, made.callback) == ("", None, None)


# -------------------------------------------------------------------------------------------------------
# The policy section
# -------------------------------------------------------------------------------------------------------
def with_section(section: str) -> str:
    text = TECHCORP_POLICY.read_text()
    start = text.index("\nuncertainty:")
    end = text.index("\n# ----", start)
    return text[:start] + "\n" + section + text[end:]


def test_techcorp_sets_the_section_the_docs_describe(policy: Policy) -> None:
    rules = policy.uncertainty
    assert rules is not None
    assert (rules.threshold, rules.action, rules.otherwise) == (
        0.5,
        UncertaintyAction.CONFIRM,
        UncertaintyAction.UNION,
    )
    assert rules.generalist_team == "general"
    assert "refund" in rules.category_keywords["billing"]


def test_a_policy_without_the_section_weighs_nothing() -> None:
    text = with_section("")
    assert parse_policy(text, source="p.yaml").uncertainty is None


@pytest.mark.parametrize(
    ("section", "field", "reason"),
    [
        ("uncertainty: {threshold: 0.5, action: widen}", "uncertainty.generalist_team", "required"),
        (
            "uncertainty: {threshold: 0.5, action: confirm, otherwise: widen}",
            "uncertainty.generalist_team",
            "required",
        ),
        (
            "uncertainty: {threshold: 0.5, action: widen, generalist_team: nobody}",
            "uncertainty.generalist_team",
            "unknown team 'nobody'",
        ),
        ("uncertainty: {threshold: 1.5, action: union}", "uncertainty.threshold", "less than or equal to 1"),
        ("uncertainty: {threshold: 0.5, action: guess}", "uncertainty.action", "'widen', 'union' or"),
        (
            "uncertainty: {threshold: 0.5, action: confirm, otherwise: confirm}",
            "uncertainty.otherwise",
            "",
        ),
        (
            "uncertainty: {threshold: 0.5, action: union, category_keywords: {shipping: [parcel]}}",
            "uncertainty.category_keywords.shipping",
            "unknown category 'shipping'",
        ),
        (
            "uncertainty: {threshold: 0.5, action: union, category_keywords: {billing: ['  ']}}",
            "uncertainty.category_keywords.billing[0]",
            "keyword is blank",
        ),
        (
            "uncertainty: {threshold: 0.5, action: confirm, confirm_message: 'is it {categroy}?'}",
            "uncertainty.confirm_message",
            "unknown placeholder {categroy}",
        ),
        (
            "uncertainty: {threshold: 0.5, action: union, widen_to: general}",
            "uncertainty.widen_to",
            "unknown",
        ),
    ],
)
def test_a_bad_section_is_refused_naming_the_field(section: str, field: str, reason: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(with_section(section), source="p.yaml")

    problems = {problem.field: problem.reason for problem in raised.value.problems}
    assert field in problems, problems
    assert reason in problems[field]
