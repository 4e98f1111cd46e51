"""Effective complexity: the assistant's claim, raised (never lowered) by what the call shows.

    effective = max(claim or policy default,
                    keyword levels found in the call's texts,
                    history level when previous escalations > threshold,
                    the tier's floor)

Keywords match whole words or phrases, case-insensitively: "api" matches "API", "api's" and "APIs" but not
"rapid"; "down" matches "the site is down" and "break down" but not "download" or "countdown"; the phrase
"system down" matches "System   DOWN!". The seed used substring search (`"download".includes("down")`),
which we deliberately do not copy. Every raise, and every fact that did not raise, is a trace step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from routing_service.domain.models import Complexity, ComplexityPolicy, TraceOutcome, TraceStep

__all__ = [
    "Assessment",
    "assess_complexity",
    "find_keyword",
    "first_hit",
    "leading_words",
    "named_texts",
    "occurs",
]

STAGE = "complexity"


@dataclass(frozen=True, slots=True)
class Assessment:
    effective: Complexity
    steps: tuple[TraceStep, ...]
    keyword_level: Complexity | None = None
    """The highest level the policy's keywords found in the call's texts (None: no keyword found)."""
    keyword_hit: tuple[str, str] | None = None
    """(keyword, where) of the find that gave `keyword_level`."""
    texts: tuple[tuple[str, str], ...] = ()
    """The texts read, as (name, lower-cased text) pairs (empty ones left out), for other keyword checks."""


def assess_complexity(
    *,
    claimed: Complexity | None,
    texts: Sequence[str] | Mapping[str, str],
    tier: str,
    previous_escalations: int,
    policy: ComplexityPolicy,
) -> Assessment:
    """Compute the effective complexity and explain it.

    `texts` is either a mapping of field name to text (e.g. {"customer_context": ..., "transcript": ...}),
    which lets the trace say where a keyword was found, or a plain sequence of texts.
    """
    named = named_texts(texts)
    steps: list[TraceStep] = []
    if claimed is None:
        level = policy.default
        steps.append(_step("claim", TraceOutcome.INFO, f"no complexity claimed: starting from {level.label}"))
    else:
        level = claimed
        steps.append(_step("claim", TraceOutcome.INFO, f"assistant claimed {level.label}"))

    keyword_level: Complexity | None = None
    keyword_hit: tuple[str, str] | None = None
    for rule in sorted(policy.keyword_rules, key=lambda r: r.level, reverse=True):
        hit = first_hit(rule.keywords, named)
        if hit is None:
            continue
        keyword, where = hit
        if keyword_level is None:
            keyword_level, keyword_hit = rule.level, hit
        level = _raise(steps, level, rule.level, f"keyword {keyword!r} in {where}", subject=keyword)

    threshold = policy.history_threshold
    if threshold is not None:
        if previous_escalations > threshold:
            level = _raise(
                steps,
                level,
                policy.history_level,
                f"{previous_escalations} previous escalations > {threshold}",
                subject="history",
            )
        elif previous_escalations > 0:
            steps.append(
                _step(
                    "history",
                    TraceOutcome.INFO,
                    f"{previous_escalations} previous escalations, not more than {threshold}",
                )
            )

    floor = policy.tier_floors.get(tier)
    if floor is not None:
        level = _raise(steps, level, floor, f"tier {tier} has floor {floor.label}", subject="tier")

    steps.append(_step("effective", TraceOutcome.MATCHED, f"effective complexity {level.label}"))
    return Assessment(
        effective=level,
        steps=tuple(steps),
        keyword_level=keyword_level,
        keyword_hit=keyword_hit,
        texts=tuple(named),
    )


def find_keyword(keywords: Sequence[str], text: str) -> str | None:
    """The first keyword (in the given order) occurring in `text` as a whole word or phrase, or None."""
    lowered = text.lower()
    for keyword in keywords:
        if occurs(keyword, lowered):
            return keyword
    return None


def named_texts(texts: Sequence[str] | Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, lower-cased text) pairs, empty texts left out."""
    if isinstance(texts, Mapping):
        return [(str(name), text.lower()) for name, text in texts.items() if isinstance(text, str) and text]
    return [("call text", text.lower()) for text in texts if isinstance(text, str) and text]


def first_hit(keywords: Sequence[str], named: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(keyword, where) of the first of `keywords` found in the (name, lower-cased text) pairs, or None.
    Each keyword's first word is looked for as a substring before `occurs` is called (the same test
    `occurs` starts with, without a call per keyword and text)."""
    leads = leading_words(tuple(keywords))
    for where, lowered in named:
        for first, keyword in leads:
            if first in lowered and occurs(keyword, lowered):
                return keyword, where
    return None


@lru_cache(maxsize=256)
def leading_words(keywords: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(first word lower-cased, keyword) for each of `keywords` that has a word, in order (computed once per
    keyword list: the lists are the policy's, and an edited list is another key)."""
    return tuple((words[0], keyword) for keyword in keywords if (words := _words(keyword)))


def occurs(keyword: str, lowered: str) -> bool:
    """Whether `keyword` occurs in the lower-cased text as a whole word or phrase (plural s/es allowed).

    Cheap on long transcripts: a substring test rules most keywords out at C speed, and the pattern
    starts with a literal (so the regex engine can skip ahead); only the left edge is checked here.
    """
    words = _words(keyword)
    if not words or words[0] not in lowered:
        return False
    for match in _pattern(words).finditer(lowered):
        at = match.start()
        if at == 0 or not _is_word_char(lowered[at - 1]):
            return True
    return False


@lru_cache(maxsize=4096)
def _words(keyword: str) -> tuple[str, ...]:
    return tuple(keyword.lower().split())


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _raise(
    steps: list[TraceStep], level: Complexity, to: Complexity, why: str, *, subject: str
) -> Complexity:
    if to > level:
        steps.append(
            _step(subject, TraceOutcome.MATCHED, f"complexity raised {level.label} -> {to.label}: {why}")
        )
        return to
    steps.append(_step(subject, TraceOutcome.INFO, f"{why} ({to.label}): no change, already {level.label}"))
    return level


def _step(subject: str, outcome: TraceOutcome, detail: str) -> TraceStep:
    return TraceStep(stage=STAGE, subject=subject, outcome=outcome, detail=detail)


@lru_cache(maxsize=1024)
def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(word) for word in words)
    # Any spacing between a phrase's words; a plural "s"/"es" is tolerated; the right edge is a boundary.
    return re.compile(rf"{body}(?:e?s)?(?!\w)")
