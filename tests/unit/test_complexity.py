"""Effective complexity: claim, keywords (whole words), history, tier floors; never lowered."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing_service.domain.complexity import assess_complexity, find_keyword, first_hit, named_texts
from routing_service.domain.models import Complexity, ComplexityPolicy, KeywordRule, TraceOutcome

C = Complexity
SEED = ComplexityPolicy(
    keyword_rules=(
        KeywordRule(C.CRITICAL, ("down", "outage", "critical", "urgent", "emergency")),
        KeywordRule(C.ADVANCED, ("api", "integration", "custom", "enterprise", "migration")),
    ),
    history_threshold=2,
    history_level=C.CRITICAL,
    tier_floors={"enterprise": C.ADVANCED},
)


def assess(
    text: str, *, claimed: Complexity | None = C.BASIC, tier: str = "standard", history: int = 0
) -> Complexity:
    return assess_complexity(
        claimed=claimed, texts=[text], tier=tier, previous_escalations=history, policy=SEED
    ).effective


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rapid response needed", C.BASIC),  # "rapid" contains "api"
        ("the API returns 500", C.ADVANCED),
        ("our apis are slow", C.ADVANCED),  # plural
        ("the api's docs", C.ADVANCED),
        ("a capital idea", C.BASIC),
        ("download fails", C.BASIC),  # "download" contains "down"
        ("countdown widget", C.BASIC),
        ("the site is down", C.CRITICAL),
        ("the cluster broke down overnight", C.CRITICAL),
        ("DOWN again", C.CRITICAL),
        ("outage!", C.CRITICAL),
        ("(urgent)", C.CRITICAL),
        ("re-integration of the CRM", C.ADVANCED),  # hyphen is a word boundary
        ("customer wants a customized report", C.BASIC),  # "customized" is another word
        ("data migration, and critical", C.CRITICAL),  # the highest level wins
        ("", C.BASIC),
    ],
)
def test_keywords_raise_complexity_when_they_occur_as_whole_words(text: str, expected: Complexity) -> None:
    assert assess(text) is expected


def test_phrase_keywords_match_across_spacing_and_case_when_the_words_are_whole() -> None:
    assert find_keyword(["system down"], "the SYSTEM   Down since 9") == "system down"
    assert find_keyword(["system down"], "system\ndown") == "system down"
    assert find_keyword(["system down"], "system download") is None
    assert find_keyword(["system down"], "subsystem down") is None
    assert find_keyword(["break down"], "it will break down soon") == "break down"
    assert find_keyword(["   "], "anything") is None


def test_assessment_explains_where_a_keyword_was_found_when_texts_are_named() -> None:
    result = assess_complexity(
        claimed=C.BASIC,
        texts={"customer_context": "fine", "transcript": "total outage here"},
        tier="standard",
        previous_escalations=0,
        policy=SEED,
    )
    assert result.effective is C.CRITICAL
    details = [step.detail for step in result.steps]
    assert "complexity raised basic -> critical: keyword 'outage' in transcript" in details
    assert all(step.stage == "complexity" for step in result.steps)


@pytest.mark.parametrize(
    ("history", "expected"), [(0, C.BASIC), (2, C.BASIC), (3, C.CRITICAL), (50, C.CRITICAL)]
)
def test_history_raises_to_critical_when_previous_escalations_exceed_the_threshold(
    history: int, expected: Complexity
) -> None:
    assert assess("", history=history) is expected


def test_history_step_says_not_more_than_when_below_the_threshold() -> None:
    result = assess_complexity(
        claimed=C.BASIC, texts=[], tier="standard", previous_escalations=2, policy=SEED
    )
    assert any("2 previous escalations, not more than 2" in step.detail for step in result.steps)


@pytest.mark.parametrize(
    ("tier", "claimed", "expected"),
    [
        ("enterprise", C.BASIC, C.ADVANCED),
        ("enterprise", C.INTERMEDIATE, C.ADVANCED),
        ("enterprise", C.CRITICAL, C.CRITICAL),
        ("premium", C.BASIC, C.BASIC),
        ("standard", C.INTERMEDIATE, C.INTERMEDIATE),
    ],
)
def test_tier_floor_raises_complexity_when_the_tier_has_one(
    tier: str, claimed: Complexity, expected: Complexity
) -> None:
    assert assess("", claimed=claimed, tier=tier) is expected


def test_policy_default_is_used_when_the_assistant_claims_nothing() -> None:
    policy = ComplexityPolicy(default=C.INTERMEDIATE)
    result = assess_complexity(claimed=None, texts=[], tier="x", previous_escalations=0, policy=policy)
    assert result.effective is C.INTERMEDIATE
    assert result.steps[0].detail == "no complexity claimed: starting from intermediate"


def test_a_fact_that_does_not_raise_is_still_explained_when_the_claim_is_higher() -> None:
    result = assess_complexity(
        claimed=C.CRITICAL, texts=["api question"], tier="enterprise", previous_escalations=0, policy=SEED
    )
    assert result.effective is C.CRITICAL
    infos = [s.detail for s in result.steps if s.outcome is TraceOutcome.INFO]
    assert "keyword 'api' in call text (advanced): no change, already critical" in infos
    assert "tier enterprise has floor advanced (advanced): no change, already critical" in infos


@settings(deadline=None, max_examples=150)
@given(
    claimed=st.none() | st.sampled_from(list(C)),
    text=st.text(max_size=80)
    | st.lists(st.sampled_from(["down", "api", "rapid", "x", "Outage", " "])).map(" ".join),
    tier=st.sampled_from(["enterprise", "premium", "standard", ""]),
    history=st.integers(min_value=0, max_value=10),
)
def test_effective_complexity_is_never_below_the_claim_when_assessed(
    claimed: Complexity | None, text: str, tier: str, history: int
) -> None:
    result = assess_complexity(
        claimed=claimed, texts=[text], tier=tier, previous_escalations=history, policy=SEED
    )
    assert result.effective >= (claimed or SEED.default)
    if history > 2:
        assert result.effective is C.CRITICAL
    if tier == "enterprise":
        assert result.effective >= C.ADVANCED
    raised = [s for s in result.steps if s.outcome is TraceOutcome.MATCHED and "raised" in s.detail]
    assert (len(raised) > 0) == (result.effective > (claimed or SEED.default))


@settings(deadline=None, max_examples=300)
@given(
    keyword=st.sampled_from(["api", "down", "system down", "e", "custom"]),
    text=st.text(alphabet=st.sampled_from(list("apidownsyemcut _-!\n")), max_size=40),
)
def test_keyword_search_agrees_with_a_word_boundary_regex_when_given_any_ascii_text(
    keyword: str, text: str
) -> None:
    body = r"\s+".join(re.escape(word) for word in keyword.split())
    reference = re.search(rf"(?<!\w){body}(?:e?s)?(?!\w)", text, re.IGNORECASE) is not None
    assert (find_keyword([keyword], text) == keyword) is reference


def test_first_hit_follows_the_keyword_list_given_when_a_policy_reload_edits_it() -> None:
    named = named_texts({"customer_context": "The API is down since the outage", "transcript": "outage"})
    assert first_hit(("down", "outage"), named) == ("down", "customer_context")
    assert first_hit(("outage", "down"), named) == ("outage", "customer_context")  # edited order
    assert first_hit(["rapid", "  ", "OUTAGE"], named) == ("OUTAGE", "customer_context")  # any sequence
    assert first_hit(("download",), named) is None
