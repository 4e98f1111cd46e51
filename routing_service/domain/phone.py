"""Phone numbers: normalising callers and validating destinations (masking is `escalade_platform.masking`).

Callers are keyed by E.164 (`+15551234567`). "Valid" here means *possible* for its country's numbering plan
(right length for the country code), as `phonenumbers` judges it; assignment metadata is not required, so
the fictional 555-01xx range that the examples use is accepted, and a metadata update never turns a known
customer into a stranger.

The seed's demo customers (+1234567890, +0987654321, +1111111111) are not possible numbers. Rejecting them
would break the tutorial's customer lookup, so a plausible `+digits` string is kept as an *opaque key*
(formatting stripped) and the trace says so.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import phonenumbers

from escalade_platform.masking import mask_number

__all__ = [
    "CALLER_CACHE_SIZE",
    "CallerKey",
    "is_e164",
    "normalize_caller",
    "parse_destination_number",
]

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_FORMATTING = re.compile(r"[\s\-.()/]")
_OPAQUE = re.compile(r"\+\d{3,15}")
_DIALLABLE = re.compile(r"\+?[\d\s\-.()/]+")
_MAX_INPUT = 64


@dataclass(frozen=True, slots=True)
class CallerKey:
    """How a caller number is keyed. `key` is what customers are stored and looked up by."""

    key: str | None
    """E.164 when valid, `+digits` when only plausible, None when absent or not a number."""
    e164: str | None
    valid: bool
    note: str
    """Human-readable explanation, fit for a decision trace (numbers masked)."""


def normalize_caller(raw: str | None, default_region: str = "US") -> CallerKey:
    """Normalise a caller number to its lookup key (see the module docstring for the rules). Results are
    memoised (`CALLER_CACHE_SIZE` recent inputs): parsing with `phonenumbers` is a noticeable share of a
    decision's servicer time, and the same callers call again."""
    if raw is None or len(raw) > _MAX_INPUT * 2:
        return _normalize(raw, default_region)
    return _normalize_cached(raw, default_region)


def _normalize(raw: str | None, default_region: str) -> CallerKey:
    text = (raw or "").strip()
    if text.lower().startswith("tel:"):
        text = text[4:].strip()
    if not text:
        return CallerKey(None, None, False, "no caller number given")
    if len(text) > _MAX_INPUT or not _DIALLABLE.fullmatch(text):
        return CallerKey(None, None, False, "caller number is not a phone number (unexpected characters)")
    e164 = _possible_e164(text, default_region)
    if e164 is not None:
        return CallerKey(e164, e164, True, f"caller {mask_number(e164)} normalised to E.164")
    compact = _FORMATTING.sub("", text)
    if _OPAQUE.fullmatch(compact):
        return CallerKey(
            compact,
            None,
            False,
            f"caller {mask_number(compact)} kept as opaque key: not a valid number",
        )
    return CallerKey(None, None, False, "caller number is neither a valid number nor in +digits form")


CALLER_CACHE_SIZE = 4096
_normalize_cached = functools.lru_cache(maxsize=CALLER_CACHE_SIZE)(_normalize)


def is_e164(text: str) -> bool:
    """True when `text` is exactly a possible E.164 number (`+` and digits, no formatting)."""
    if not isinstance(text, str) or not _E164.fullmatch(text):
        return False
    return _possible_e164(text, "ZZ") == text


def parse_destination_number(text: str) -> str:
    """Return `text` when it is a strict, possible E.164 number; ValueError (with the reason) otherwise."""
    if not isinstance(text, str):
        raise ValueError('must be a string like "+15550100100"')
    if not _E164.fullmatch(text):
        raise ValueError(f"{text!r} is not E.164 (a '+', the country code and the number, digits only)")
    if _possible_e164(text, "ZZ") != text:
        raise ValueError(f"{text!r} is not a possible number for its country code")
    return text


def _possible_e164(text: str, region: str) -> str | None:
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    if not parsed.country_code or phonenumbers.region_code_for_country_code(parsed.country_code) == "ZZ":
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
