"""Masking phone numbers for logs, traces and CLI output: all digits but the country code and the last four.

Every process masks before it writes a number anywhere a person or a log shipper reads it.
"""

from __future__ import annotations

import re

import phonenumbers

__all__ = ["mask_number", "mask_numbers_in_text"]

# "+" (or its URL encoding %2B) then 7..15 digits, optionally separated by spaces, dashes, dots or
# parentheses; whatever precedes the "+" does not matter ("tel:+1...", "abc+1...").
_NUMBER_IN_TEXT = re.compile(r"(?:\+|%2[Bb])\d(?:[ \-.()]{0,2}\d){6,14}(?!\d)")


def mask_number(text: str) -> str:
    """Mask all digits but the country code and the last four: "+15551234567" -> "+1******4567".

    Works on anything: formatting is dropped, a value without digits is returned as is, and a short value
    keeps at most half of its digits visible. Masking is idempotent: a value holding "*" is left as is.
    """
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits or "*" in text:  # nothing to mask, or masked already
        return text
    plus = text.lstrip().startswith("+")
    country = _country_code(digits) if plus else ""
    rest = digits[len(country) :]
    keep = min(4, len(rest) // 2)
    masked = "*" * (len(rest) - keep) + (rest[-keep:] if keep else "")
    return ("+" if plus else "") + country + masked


def mask_numbers_in_text(text: str) -> str:
    """Mask every E.164-looking number (`+` or `%2B`, then 7-15 digits, light formatting) in free text."""
    if "+" not in text and "%2" not in text:
        return text
    return _NUMBER_IN_TEXT.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    if found.startswith("%"):
        return found[:3] + mask_number("+" + found[3:])[1:]
    return mask_number(found)


def _country_code(digits: str) -> str:
    for size in (1, 2, 3):
        prefix = digits[:size]
        if (
            len(digits) > size
            and prefix[0] != "0"
            and phonenumbers.region_code_for_country_code(int(prefix)) != "ZZ"
        ):
            return prefix
    return ""
