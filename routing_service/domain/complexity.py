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

__all__ = ["Assessment", "assess_complexity", "find_keyword"]

STAGE = "complexity"


@dataclass(frozen=True, slots=True)
class Assessment:
    effective: Complexity
    steps: tuple[TraceStep, ...]


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
    named = _named_texts(texts)
    steps: list[TraceStep] = []
    if claimed is None:
        level = policy.default
        steps.append(_step("claim", TraceOutcome.INFO, f"no complexity claimed: starting from {level.label}"))
    else:
        level = claimed
        steps.append(_step("claim", TraceOutcome.INFO, f"assistant claimed {level.label}"))

    for rule in sorted(policy.keyword_rules, key=lambda r: r.level, reverse=True):
        hit = _first_hit(rule.keywords, named)
        if hit is None:
            continue
        keyword, where = hit
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
    return Assessment(effective=level, steps=tuple(steps))


def find_keyword(keywords: Sequence[str], text: str) -> str | None:
    """The first keyword (in the given order) occurring in `text` as a whole word or phrase, or None."""
    for keyword in keywords:
        pattern = _pattern(keyword)
        if pattern is not None and pattern.search(text):
            return keyword
    return None


def _named_texts(texts: Sequence[str] | Mapping[str, str]) -> list[tuple[str, str]]:
    if isinstance(texts, Mapping):
        return [(str(name), text) for name, text in texts.items() if isinstance(text, str) and text]
    return [("call text", text) for text in texts if isinstance(text, str) and text]


def _first_hit(keywords: Sequence[str], named: list[tuple[str, str]]) -> tuple[str, str] | None:
    for where, text in named:
        keyword = find_keyword(keywords, text)
        if keyword is not None:
            return keyword, where
    return None


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


@lru_cache(maxsize=4096)
def _pattern(keyword: str) -> re.Pattern[str] | None:
    words = keyword.split()
    if not words:
        return None
    body = r"\s+".join(re.escape(word) for word in words)
    # Whole word/phrase; a plural "s"/"es" is tolerated ("APIs", "integrations").
    return re.compile(rf"(?<!\w){body}(?:e?s)?(?!\w)", re.IGNORECASE)
