"""Rule matching (first match wins, every rule explained) and category normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing_service.domain.matching import known_categories, match_rule, normalize_category
from routing_service.domain.models import Complexity, Policy, TraceOutcome
from routing_service.policy import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
C = Complexity


@pytest.fixture(scope="module")
def techcorp() -> Policy:
    return load_policy(ROOT / "examples" / "techcorp.yaml")


def test_first_matching_rule_wins_when_several_match(techcorp: Policy) -> None:
    match = match_rule(techcorp, tier="enterprise", category="technical", complexity=C.ADVANCED)
    assert match.rule is not None and match.rule.rule_id == "enterprise-tier"
    assert match.team is not None and match.team.team_id == "enterprise"
    assert [s.outcome for s in match.steps] == [TraceOutcome.MATCHED]
    assert match.steps[0].detail == "matched (tier enterprise in [enterprise]) -> team enterprise"


def test_skipped_rules_name_the_failed_condition_when_tried(techcorp: Policy) -> None:
    match = match_rule(techcorp, tier="standard", category="technical", complexity=C.BASIC)
    assert match.team is not None and match.team.team_id == "general"
    details = [(s.subject, s.outcome, s.detail) for s in match.steps]
    assert details == [
        ("enterprise-tier", TraceOutcome.SKIPPED, "skipped (tier standard not in [enterprise])"),
        ("critical-complexity", TraceOutcome.SKIPPED, "skipped (complexity basic not in [critical])"),
        (
            "technical-specialists",
            TraceOutcome.SKIPPED,
            "skipped (complexity basic not in [intermediate, advanced])",
        ),
        (
            "billing-and-account",
            TraceOutcome.SKIPPED,
            "skipped (category technical not in [account, billing])",
        ),
        ("product", TraceOutcome.SKIPPED, "skipped (category technical not in [product])"),
        ("general", TraceOutcome.MATCHED, "matched (no conditions) -> team general"),
    ]


MINIMAL = """
name: min
default_tier: standard
default_category: general
categories: [technical]
teams:
  t1:
    name: T1
    destination: {number: "+15550100200"}
    transfer: {mode: blind-transfer, caller_message: "Hi"}
  t2:
    name: T2
    destination: {sip_uri: "sip:t2@example.com"}
    transfer: {mode: blind-transfer, caller_message: "Hi"}
rules:
  - {id: hard-tech, when: {categories: [technical], min_complexity: advanced}, team: t1}
  - {id: gold, when: {tiers: [gold]}, team: t2}
queue:
  line: {number: "+15550100600"}
  transfer: {mode: blind-transfer, caller_message: "Busy"}
fallback:
  destination: {number: "+15550100900"}
  transfer: {mode: blind-transfer, caller_message: "Sorry"}
"""


@pytest.mark.parametrize(
    ("tier", "category", "complexity", "rule"),
    [
        ("standard", "technical", C.ADVANCED, "hard-tech"),
        ("standard", "technical", C.CRITICAL, "hard-tech"),
        ("gold", "technical", C.INTERMEDIATE, "gold"),
        ("standard", "technical", C.INTERMEDIATE, None),
    ],
)
def test_min_complexity_matches_at_or_above_the_level_when_set(
    tier: str, category: str, complexity: Complexity, rule: str | None
) -> None:
    policy = parse_policy(MINIMAL, source="min.yaml")
    match = match_rule(policy, tier=tier, category=category, complexity=complexity)
    assert (match.rule.rule_id if match.rule else None) == rule
    if rule is None:
        assert match.team is None
        assert match.steps[0].detail == "skipped (complexity intermediate < advanced)"
        assert match.steps[-1].detail == "no rule matched"


@pytest.mark.parametrize(
    ("raw", "category", "note"),
    [
        ("technical", "technical", None),
        ("  Billing ", "billing", None),
        ("ACCOUNT", "account", None),
        ("general", "general", None),
        ("", "general", "no category given: using general"),
        ("shipping", "general", "category 'shipping' is not one of"),
    ],
)
def test_normalize_category_lowercases_and_defaults_when_unknown(
    techcorp: Policy, raw: str, category: str, note: str | None
) -> None:
    result, step = normalize_category(techcorp, raw)
    assert result == category
    if note is None:
        assert step is None
    else:
        assert step is not None and note in step.detail


def test_known_categories_include_default_and_rule_categories_when_listed(techcorp: Policy) -> None:
    assert known_categories(techcorp) == {"technical", "billing", "account", "product", "general"}
