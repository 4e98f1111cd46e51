"""The handoff packet: what the specialist who picks up an escalated call needs, so the caller need not
repeat themselves.

One packet per decision, built from what the decision already knows (pure, no I/O):

    summary, escalation_reason, customer_context   the assistant's words (tool arguments)
    issue_category + category_source                as stated by the assistant, or the policy's default
    complexity + complexity_sources                 the claim (or the policy default), then each raise that
                                                      changed it: keyword, history, tier floor
    entities                                        account, order, error codes (and the policy's own kinds):
                                                      those the assistant passed, then those the texts name
    steps_tried                                     what the assistant already tried
    stated_confidence / decision_confidence         the assistant's, and routing's weighed one (policy
                                                      `uncertainty`)
    tier, account_name, previous_escalations,       the customer on record
      last_agent_id
    earlier_call_id, earlier_decision_id            a callback: the call it calls back (its packet carried)

`build_packet` never raises and takes what is present: every text is cut to its bound (and named in
`truncated`), entity extraction reads a bounded tail of the transcript, and at most `MAX_ENTITIES` are kept.
`with_packet` puts the packet into a decision (its `PACKET_FIELDS` placeholders filled in the specialist's
handoff message and summary prompt); `packet_for_log` is the packet as logs may show it (phone numbers and
the policy's sensitive fields and patterns masked).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from escalade_platform.masking import mask_number, mask_numbers_in_text
from routing_service.domain.complexity import Assessment
from routing_service.domain.decision import render
from routing_service.domain.handoff_policy import HandoffPolicy
from routing_service.domain.models import (
    Complexity,
    ComplexityPolicy,
    Customer,
    Decision,
    EscalationRequest,
    SummaryMessage,
    TransferMode,
)

__all__ = [
    "BUILTIN_ENTITY_KINDS",
    "DEFAULT_SIP_SUMMARY",
    "MAX_ENTITIES",
    "MAX_STEPS",
    "MAX_TEXT",
    "PACKET_FIELDS",
    "ComplexitySource",
    "Entity",
    "HandoffPacket",
    "build_packet",
    "carry_over",
    "extract_entities",
    "packet_for_log",
    "packet_from_dict",
    "packet_text",
    "packet_to_dict",
    "packet_values",
    "with_packet",
]

MAX_TEXT = 2_000
"""Longest summary, reason and context kept in a packet (characters)."""
MAX_STEPS = 10
MAX_STEP = 300
MAX_ENTITIES = 20
MAX_PER_KIND = 5
MAX_ENTITY_VALUE = 64
MAX_KIND = 32
TRANSCRIPT_SCAN = 4_000
"""Entities are looked for in the last this many characters of the transcript (about the last three minutes
of talk; bounded CPU per decision). What the assistant passed and its own texts are always read whole."""
MAX_PACKET_TEXT = 1_200
"""Longest `{handoff_summary}` (what the specialist hears or reads)."""

PACKET_FIELDS: frozenset[str] = frozenset(
    {
        "handoff_summary",
        "assistant_summary",
        "steps_tried",
        "entities",
        "complexity_sources",
        "confidence",
        "escalation_history",
        "decision_id",
    }
)
"""Placeholders the specialist's side of a transfer template (handoff message, summary prompt) may use."""

DEFAULT_SIP_SUMMARY: tuple[SummaryMessage, ...] = (
    SummaryMessage(
        role="system",
        content=(
            "Summarise this call for the specialist who takes it over, in at most three short sentences."
            " What routing already knows: {handoff_summary}"
        ),
    ),
    SummaryMessage(role="user", content="Here is the transcript:\n\n{{transcript}}\n\n"),
)
"""The summary prompt of a `blind-transfer-add-summary-to-sip-header` transfer whose template has none: Vapi
puts the summary in the SIP header `X-Transfer-Summary`, so the packet reaches the specialist's phone."""

ASSISTANT = "assistant"
POLICY_DEFAULT = "policy default"


@dataclass(frozen=True, slots=True)
class Entity:
    """Something the specialist will ask for: `kind` (account, order, error_code, or a policy kind)."""

    kind: str
    value: str
    source: str
    """`assistant` (a tool argument), or the text it was found in (customer_context, transcript, ...)."""


@dataclass(frozen=True, slots=True)
class ComplexitySource:
    """One step of the effective complexity: the start (`claim` or `default`), or a raise that changed it
    (`keyword`, `history`, `tier`)."""

    source: str
    level: Complexity
    detail: str


@dataclass(frozen=True, slots=True)
class HandoffPacket:
    decision_id: str
    call_id: str
    issue_category: str
    category_source: str
    complexity: Complexity
    summary: str = ""
    escalation_reason: str = ""
    customer_context: str = ""
    claimed_complexity: Complexity | None = None
    complexity_sources: tuple[ComplexitySource, ...] = ()
    entities: tuple[Entity, ...] = ()
    steps_tried: tuple[str, ...] = ()
    stated_confidence: float | None = None
    decision_confidence: float | None = None
    tier: str = ""
    account_name: str = ""
    previous_escalations: int = 0
    last_agent_id: str = ""
    caller_number: str = ""
    earlier_call_id: str = ""
    """A callback: the call it calls back (whose packet this one carries over)."""
    earlier_decision_id: str = ""
    truncated: tuple[str, ...] = ()
    """Fields cut to their bound (the packet holds the start of them)."""


# ---------------------------------------------------------------------------------------------------------
# Entities
# ---------------------------------------------------------------------------------------------------------
_CONNECT = r"(?:\s*(?:number|no\.?|num|id|#))?(?:\s*(?:is|:|=|#))?\s*#?\s*"
_VALUE = r"([A-Za-z0-9][A-Za-z0-9_-]{1,63})"
BUILTIN_ENTITY_KINDS: tuple[tuple[str, tuple[str, ...], re.Pattern[str]], ...] = (
    ("account", ("account", "acct"), re.compile(rf"(?:account|acct)\b{_CONNECT}{_VALUE}", re.IGNORECASE)),
    ("order", ("order",), re.compile(rf"order\b{_CONNECT}{_VALUE}", re.IGNORECASE)),
    (
        "error_code",
        ("err", "code", "status"),
        re.compile(
            r"(?:error|err|code|status)\b(?:\s+code)?\s*(?:is|:|=|#)?\s*"
            r"(0x[0-9A-Fa-f]{2,8}|[A-Za-z]{0,8}[-_]?\d{2,6}(?:[-_.]\d{1,6})?)\b",
            re.IGNORECASE,
        ),
    ),
)
"""(kind, the words that start it, pattern): the pattern is tried only where one of its words starts a word
(found with `str.find` on the lower-cased text), so the cost follows the mentions, not the text's length."""
_HAS_DIGIT = re.compile(r"\d").search
"""Whether a built-in pattern's value holds a digit: the patterns admit no digit that `\\d` misses and
`str.isdigit` accepts (superscripts and the like)."""


def extract_entities(
    texts: Iterable[tuple[str, str]],
    *,
    stated: Sequence[tuple[str, str]] = (),
    policy: HandoffPolicy | None = None,
) -> tuple[Entity, ...]:
    """The assistant's `stated` (kind, value) pairs, then what the (source, text) pairs name; duplicates
    (same kind, same value in any case) kept once, at most `MAX_PER_KIND` per kind and `MAX_ENTITIES` in all.
    Built-in kinds need a digit in the value (so "account is locked" names no account); never raises."""
    found: list[Entity] = []
    seen: set[tuple[str, str]] = set()
    per_kind: dict[str, int] = {}

    def keep(kind: str, value: str, source: str) -> None:
        kind = _clean(kind, MAX_KIND).lower()
        value = _clean(value, MAX_ENTITY_VALUE).strip(" .,;:")
        key = (kind, value.upper())
        if not kind or not value or key in seen or per_kind.get(kind, 0) >= MAX_PER_KIND:
            return
        seen.add(key)
        per_kind[kind] = per_kind.get(kind, 0) + 1
        found.append(Entity(kind=kind, value=value, source=source))

    for kind, value in stated:
        if len(found) >= MAX_ENTITIES:
            break
        if isinstance(kind, str) and isinstance(value, str):
            keep(kind, value, ASSISTANT)
    extra = policy.entity_patterns if policy is not None else ()
    for source, text in texts:
        if len(found) >= MAX_ENTITIES or not isinstance(text, str) or not text:
            continue
        # A built-in kind's value holds a digit, so a text without one names none (one C scan, and most
        # of the assistant's own texts have none).
        lowered = text.lower() if _HAS_DIGIT(text) is not None else ""
        for kind, words, pattern in BUILTIN_ENTITY_KINDS if lowered else ():
            room = MAX_PER_KIND - per_kind.get(kind, 0)
            if room <= 0:
                continue
            for value in _mentions(pattern, words, text, lowered, limit=2 * room):
                # A built-in pattern's value is clean already (letters, digits, "-", "_", "."; short):
                # a repeat, the common case in a transcript, is dropped here without cleaning it again.
                if (kind, value.upper()) not in seen and _HAS_DIGIT(value) is not None:
                    keep(kind, value, source)
        for kind, pattern in extra:
            literal = _leading_literal(pattern)
            if literal and literal not in text:
                continue
            for value in _matches(pattern, text):
                keep(kind, value, source)
    return tuple(found[:MAX_ENTITIES])


def _mentions(
    pattern: re.Pattern[str], words: Sequence[str], text: str, lowered: str, *, limit: int = MAX_ENTITIES
) -> list[str]:
    """Values `pattern` reads where one of `words` starts a word of the text, in the order they occur (at
    most `limit`; the pattern is tried at `MAX_STARTS` places at most). The places are found as they are
    needed, so a kind that reaches its limit early stops there. Where lower-casing changed the text's
    length, positions differ: the whole text is searched instead."""
    if len(lowered) != len(text):
        return list(_matches(re.compile(rf"\b{pattern.pattern}", pattern.flags), text))[:limit]
    values: list[str] = []
    end = -1
    tried = 0
    heads = [(at, word) for word in words if (at := lowered.find(word)) != -1]
    while heads and tried < MAX_STARTS:
        if len(heads) == 1:
            at, word = heads[0]
            index = 0
        else:
            at, word = min(heads)
            index = heads.index((at, word))
        following = lowered.find(word, at + 1)
        if following == -1:
            del heads[index]
        else:
            heads[index] = (following, word)
        if at < end or (at and (lowered[at - 1].isalnum() or lowered[at - 1] == "_")):
            continue  # inside the previous value, or not where a word starts
        tried += 1
        match = pattern.match(text, at)
        if match is not None:
            value = match.group(1)
            if value:
                values.append(value)
                end = match.end()
                if len(values) >= limit:
                    break
    return values


MAX_STARTS = 4 * MAX_ENTITIES
"""Most places one kind's pattern is tried in one text."""


_LITERAL_START = re.compile(r"(?:\\b)?\(?([A-Za-z0-9_-]{2,})")


@lru_cache(maxsize=256)
def _leading_literal(pattern: re.Pattern[str]) -> str:
    """The text every match of a case-sensitive pattern without alternatives starts with (`\\b(INC-\\d+)`:
    "INC-"), so that a text without it is skipped at `str` speed; empty when there is no such text."""
    if pattern.flags & re.IGNORECASE or "|" in pattern.pattern:
        return ""
    found = _LITERAL_START.match(pattern.pattern)
    if found is None:
        return ""
    literal = found.group(1)
    after = pattern.pattern[found.end() : found.end() + 1]
    # a quantifier after the run applies to its last character only: keep the run without it
    return literal[:-1] if after in {"*", "?", "{"} else literal


def _matches(pattern: re.Pattern[str], text: str) -> Iterable[str]:
    for count, match in enumerate(pattern.finditer(text)):
        if count >= MAX_ENTITIES:
            return
        value = match.group(1) if pattern.groups and match.group(1) is not None else match.group(0)
        if value:
            yield value


# ---------------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------------
def build_packet(
    request: EscalationRequest,
    *,
    decision_id: str,
    category: str,
    category_stated: bool,
    complexity: Complexity,
    assessment: Assessment | None,
    complexity_policy: ComplexityPolicy,
    tier: str,
    customer: Customer | None,
    decision_confidence: float | None,
    caller_number: str,
    policy: HandoffPolicy | None = None,
) -> HandoffPacket:
    """The packet of one decision (see the module docstring); takes what is present, never raises."""
    truncated: list[str] = []

    def bounded(name: str, text: str, limit: int = MAX_TEXT) -> str:
        text = _clean(text, None).strip()
        if len(text) > limit:
            truncated.append(name)
            return text[:limit]
        return text

    steps = tuple(
        step
        for step in (bounded("steps_tried", s, MAX_STEP) for s in request.steps_tried[:MAX_STEPS])
        if step
    )
    if len(request.steps_tried) > MAX_STEPS:
        truncated.append("steps_tried")
    texts = (
        ("summary", request.assistant_summary),
        ("customer_context", request.customer_context),
        ("escalation_reason", request.escalation_reason),
        ("transcript", request.transcript[-TRANSCRIPT_SCAN:]),
    )
    return HandoffPacket(
        decision_id=decision_id,
        call_id=request.call_id,
        issue_category=category,
        category_source=ASSISTANT if category_stated else POLICY_DEFAULT,
        complexity=complexity,
        summary=bounded("summary", request.assistant_summary),
        escalation_reason=bounded("escalation_reason", request.escalation_reason),
        customer_context=bounded("customer_context", request.customer_context),
        claimed_complexity=request.claimed_complexity,
        complexity_sources=complexity_sources(
            claimed=request.claimed_complexity,
            assessment=assessment,
            policy=complexity_policy,
            tier=tier,
            previous_escalations=customer.previous_escalations if customer is not None else 0,
            effective=complexity,
        ),
        entities=extract_entities(texts, stated=request.stated_entities, policy=policy),
        steps_tried=steps,
        stated_confidence=_fraction(request.stated_confidence),
        decision_confidence=_fraction(decision_confidence),
        tier=tier,
        account_name=customer.account_name if customer is not None else "",
        previous_escalations=customer.previous_escalations if customer is not None else 0,
        last_agent_id=(customer.last_agent_id or "") if customer is not None else "",
        caller_number=caller_number,
        truncated=tuple(dict.fromkeys(truncated)),
    )


def complexity_sources(
    *,
    claimed: Complexity | None,
    assessment: Assessment | None,
    policy: ComplexityPolicy,
    tier: str,
    previous_escalations: int,
    effective: Complexity,
) -> tuple[ComplexitySource, ...]:
    """Where the effective complexity came from: the start, then each raise in the order
    `assess_complexity` applies them (keywords, history, tier floor), only those that changed it."""
    if claimed is None:
        level = policy.default
        sources = [ComplexitySource("default", level, f"no claim: the policy's default {level.label}")]
    else:
        level = claimed
        sources = [ComplexitySource("claim", level, f"the assistant claimed {level.label}")]
    if assessment is not None and assessment.keyword_level is not None and assessment.keyword_level > level:
        keyword, where = assessment.keyword_hit or ("", "")
        level = assessment.keyword_level
        sources.append(ComplexitySource("keyword", level, f"keyword {keyword!r} in {where}"))
    threshold = policy.history_threshold
    if threshold is not None and previous_escalations > threshold and policy.history_level > level:
        level = policy.history_level
        sources.append(
            ComplexitySource("history", level, f"{previous_escalations} previous escalations > {threshold}")
        )
    floor = policy.tier_floors.get(tier)
    if floor is not None and floor > level:
        level = floor
        sources.append(ComplexitySource("tier", level, f"tier {tier} has floor {floor.label}"))
    if effective > level:  # raised by something this account does not know: say so, do not guess
        sources.append(ComplexitySource("routing", effective, f"raised to {effective.label}"))
    return tuple(sources)


def carry_over(packet: HandoffPacket, earlier: HandoffPacket | None) -> HandoffPacket:
    """A callback call's packet with what the call it calls back knew: empty texts filled from the earlier
    packet, its entities and steps added (bounded), and its ids kept."""
    if earlier is None:
        return packet
    entities = extract_entities((), stated=[(e.kind, e.value) for e in (*packet.entities, *earlier.entities)])
    sources = {(e.kind, e.value.upper()): e.source for e in (*earlier.entities, *packet.entities)}
    return replace(
        packet,
        summary=packet.summary or earlier.summary,
        escalation_reason=packet.escalation_reason or earlier.escalation_reason,
        customer_context=packet.customer_context or earlier.customer_context,
        entities=tuple(replace(e, source=sources.get((e.kind, e.value.upper()), e.source)) for e in entities),
        steps_tried=tuple(dict.fromkeys((*earlier.steps_tried, *packet.steps_tried)))[:MAX_STEPS],
        earlier_call_id=earlier.call_id,
        earlier_decision_id=earlier.decision_id,
    )


# ---------------------------------------------------------------------------------------------------------
# Delivery: placeholders in the specialist's messages
# ---------------------------------------------------------------------------------------------------------
def packet_values(packet: HandoffPacket) -> dict[str, str]:
    """The value of each `PACKET_FIELDS` placeholder for this packet (empty strings where unknown)."""
    return {name: _VALUE_OF[name](packet) for name in _VALUE_OF}


_VALUE_OF: dict[str, Callable[[HandoffPacket], str]] = {
    "handoff_summary": lambda packet: packet_text(packet),
    "assistant_summary": lambda packet: packet.summary,
    "steps_tried": lambda packet: "; ".join(packet.steps_tried),
    "entities": lambda packet: _entities_text(packet.entities),
    "complexity_sources": lambda packet: _sources_text(packet),
    "confidence": lambda packet: _confidence_text(packet),
    "escalation_history": lambda packet: _history_text(packet),
    "decision_id": lambda packet: packet.decision_id,
}


class _Values(Mapping[str, str]):
    """`packet_values` computed only for the placeholders a template names (`render` asks for those alone),
    each once: most templates name one or two, and `{handoff_summary}` is the dear one."""

    __slots__ = ("_done", "_packet")

    def __init__(self, packet: HandoffPacket) -> None:
        self._packet = packet
        self._done: dict[str, str] = {}

    def __contains__(self, name: object) -> bool:
        return name in _VALUE_OF

    def __getitem__(self, name: str) -> str:
        done = self._done.get(name)
        if done is None:
            done = self._done[name] = _VALUE_OF[name](self._packet)
        return done

    def __iter__(self) -> Iterator[str]:
        return iter(_VALUE_OF)

    def __len__(self) -> int:
        return len(_VALUE_OF)


def packet_text(packet: HandoffPacket, limit: int = MAX_PACKET_TEXT) -> str:
    """The whole packet in a few sentences (what `{handoff_summary}` says), at most `limit` characters."""
    parts: list[str] = []
    if packet.summary:
        parts.append(_sentence(f"Summary: {packet.summary}"))
    if packet.escalation_reason:
        parts.append(_sentence(f"Reason: {packet.escalation_reason}"))
    parts.append(
        f"Category {packet.issue_category} ({packet.category_source}); complexity {packet.complexity.label}"
        f" ({_sources_text(packet)})."
    )
    if packet.entities:
        parts.append(_sentence(_entities_text(packet.entities)))
    if packet.steps_tried:
        parts.append(_sentence("Already tried: " + "; ".join(packet.steps_tried)))
    confidence = _confidence_text(packet)
    if confidence:
        parts.append(_sentence(f"Confidence {confidence}"))
    customer = f"Customer: tier {packet.tier}" if packet.tier else "Customer"
    if packet.account_name:
        customer += f", {packet.account_name}"
    parts.append(_sentence(f"{customer}, {_history_text(packet)}"))
    if packet.customer_context:
        parts.append(_sentence(f"Context: {packet.customer_context}"))
    text = " ".join(parts)
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def with_packet(decision: Decision, packet: HandoffPacket) -> Decision:
    """The decision carrying its packet, the `PACKET_FIELDS` placeholders of the specialist's handoff message
    and summary prompt filled. A SIP transfer in `blind-transfer-add-summary-to-sip-header` mode without a
    summary prompt gets `DEFAULT_SIP_SUMMARY`, so the summary in the SIP header carries the packet."""
    summary = decision.summary_messages
    if (
        not summary
        and decision.transfer_mode is TransferMode.BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER
        and decision.destination.sip_uri is not None
    ):
        summary = DEFAULT_SIP_SUMMARY
    message = decision.handoff_message
    if "{" not in message and all("{" not in m.content for m in summary):
        return replace(decision, handoff=packet, summary_messages=summary)
    values = _Values(packet)
    return replace(
        decision,
        handoff=packet,
        handoff_message=render(message, values),
        summary_messages=tuple(SummaryMessage(m.role, render(m.content, values)) for m in summary),
    )


# ---------------------------------------------------------------------------------------------------------
# Logs
# ---------------------------------------------------------------------------------------------------------
_DIGIT_RUN = re.compile(r"(?<![\w+*])\d(?:[ \-.()]{0,2}\d){6,14}(?!\w)")
"""A phone number written without its "+" (7-15 digits, light formatting)."""


def packet_for_log(packet: HandoffPacket, policy: HandoffPolicy | None = None) -> dict[str, Any]:
    """The packet as a log line may hold it: the caller's number masked, phone numbers in every text
    masked (with or without "+"), the policy's sensitive fields and entity kinds masked whole and its
    sensitive patterns masked wherever they occur (the last 4 characters kept)."""
    sensitive = policy.sensitive_fields if policy is not None else frozenset()
    patterns = policy.sensitive_patterns if policy is not None else ()

    def text(name: str, value: str) -> str:
        if not value:
            return value
        if name in sensitive:
            return _mask_whole(value)
        return _mask_text(value, patterns)

    data = packet_to_dict(packet)
    data["caller_number"] = mask_number(packet.caller_number) if packet.caller_number else ""
    for name in ("summary", "escalation_reason", "customer_context", "account_name"):
        data[name] = text(name, data[name])
    data["steps_tried"] = [text("steps_tried", step) for step in packet.steps_tried]
    data["entities"] = [
        {"kind": e.kind, "value": text(e.kind, e.value), "source": e.source} for e in packet.entities
    ]
    return data


def _mask_whole(value: str) -> str:
    keep = min(4, len(value) // 2)
    return "*" * (len(value) - keep) + (value[-keep:] if keep else "")


def _mask_text(value: str, patterns: Sequence[re.Pattern[str]]) -> str:
    for pattern in patterns:
        value = pattern.sub(lambda m: _mask_whole(m.group(0)), value)
    value = mask_numbers_in_text(value)
    return _DIGIT_RUN.sub(lambda m: _mask_whole(m.group(0)), value)


# ---------------------------------------------------------------------------------------------------------
# JSON (the store keeps the packet as a document; tolerant of missing keys)
# ---------------------------------------------------------------------------------------------------------
def packet_to_dict(packet: HandoffPacket) -> dict[str, Any]:
    return {
        "decision_id": packet.decision_id,
        "call_id": packet.call_id,
        "issue_category": packet.issue_category,
        "category_source": packet.category_source,
        "complexity": int(packet.complexity),
        "summary": packet.summary,
        "escalation_reason": packet.escalation_reason,
        "customer_context": packet.customer_context,
        "claimed_complexity": None if packet.claimed_complexity is None else int(packet.claimed_complexity),
        "complexity_sources": [
            {"source": s.source, "level": int(s.level), "detail": s.detail} for s in packet.complexity_sources
        ],
        "entities": [{"kind": e.kind, "value": e.value, "source": e.source} for e in packet.entities],
        "steps_tried": list(packet.steps_tried),
        "stated_confidence": packet.stated_confidence,
        "decision_confidence": packet.decision_confidence,
        "tier": packet.tier,
        "account_name": packet.account_name,
        "previous_escalations": packet.previous_escalations,
        "last_agent_id": packet.last_agent_id,
        "caller_number": packet.caller_number,
        "earlier_call_id": packet.earlier_call_id,
        "earlier_decision_id": packet.earlier_decision_id,
        "truncated": list(packet.truncated),
    }


def packet_from_dict(data: Mapping[str, Any]) -> HandoffPacket:
    claimed = data.get("claimed_complexity")
    return HandoffPacket(
        decision_id=str(data.get("decision_id", "")),
        call_id=str(data.get("call_id", "")),
        issue_category=str(data.get("issue_category", "")),
        category_source=str(data.get("category_source", "")),
        complexity=Complexity(int(data.get("complexity", Complexity.BASIC))),
        summary=str(data.get("summary", "")),
        escalation_reason=str(data.get("escalation_reason", "")),
        customer_context=str(data.get("customer_context", "")),
        claimed_complexity=None if claimed is None else Complexity(int(claimed)),
        complexity_sources=tuple(
            ComplexitySource(str(s["source"]), Complexity(int(s["level"])), str(s.get("detail", "")))
            for s in data.get("complexity_sources", ())
        ),
        entities=tuple(
            Entity(str(e["kind"]), str(e["value"]), str(e.get("source", "")))
            for e in data.get("entities", ())
        ),
        steps_tried=tuple(str(s) for s in data.get("steps_tried", ())),
        stated_confidence=data.get("stated_confidence"),
        decision_confidence=data.get("decision_confidence"),
        tier=str(data.get("tier", "")),
        account_name=str(data.get("account_name", "")),
        previous_escalations=int(data.get("previous_escalations", 0)),
        last_agent_id=str(data.get("last_agent_id", "")),
        caller_number=str(data.get("caller_number", "")),
        earlier_call_id=str(data.get("earlier_call_id", "")),
        earlier_decision_id=str(data.get("earlier_decision_id", "")),
        truncated=tuple(str(t) for t in data.get("truncated", ())),
    )


# ---------------------------------------------------------------------------------------------------------
# Wording
# ---------------------------------------------------------------------------------------------------------
_KIND_NAMES = {"account": "Account", "order": "Order", "error_code": "Error"}


def _entities_text(entities: Sequence[Entity]) -> str:
    by_kind: dict[str, list[str]] = {}
    for entity in entities:
        by_kind.setdefault(entity.kind, []).append(entity.value)
    return "; ".join(
        f"{_KIND_NAMES.get(kind, kind.replace('_', ' ').capitalize())} {', '.join(values)}"
        for kind, values in by_kind.items()
    )


def _sources_text(packet: HandoffPacket) -> str:
    return ", then ".join(f"{s.source} {s.level.label}: {s.detail}" for s in packet.complexity_sources)


def _confidence_text(packet: HandoffPacket) -> str:
    parts = []
    if packet.stated_confidence is not None:
        parts.append(f"{packet.stated_confidence:.2f} stated by the assistant")
    if packet.decision_confidence is not None:
        parts.append(f"{packet.decision_confidence:.2f} weighed by routing")
    return ", ".join(parts)


def _history_text(packet: HandoffPacket) -> str:
    count = packet.previous_escalations
    if count <= 0:
        history = "no previous escalations"
    else:
        history = f"{count} previous escalation{'s' if count != 1 else ''}"
        if packet.last_agent_id:
            history += f", last with specialist {packet.last_agent_id}"
    if packet.earlier_call_id:
        history += f"; this is the call back of call {packet.earlier_call_id}"
    return history


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", "…")) else text + "."


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean(value: object, limit: int | None) -> str:
    """A string without control characters (newlines and tabs kept), cut to `limit`."""
    text = value if isinstance(value, str) else ""
    if not text.isprintable():  # every character `_CONTROL` removes is unprintable: most texts skip it
        text = _CONTROL.sub("", text)
    return text if limit is None else text[:limit]


def _fraction(value: float | None) -> float | None:
    if value is None or not isinstance(value, int | float) or math.isnan(value):
        return None
    return min(1.0, max(0.0, float(value)))
