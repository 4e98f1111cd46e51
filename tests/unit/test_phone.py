"""Caller normalisation, destination validation and masking."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade_platform.masking import mask_number, mask_numbers_in_text
from routing_service.domain.phone import is_e164, normalize_caller, parse_destination_number


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+15550100100", "+15550100100"),
        ("+1 555 010 0100", "+15550100100"),
        ("+1-555-010-0100", "+15550100100"),
        ("(415) 555-0100", "+14155550100"),
        ("415.555.0100", "+14155550100"),
        ("tel:+442079460000", "+442079460000"),
        ("  +49 151 23456789 ", "+4915123456789"),
    ],
)
def test_normalize_caller_gives_e164_when_the_number_is_valid(raw: str, key: str) -> None:
    caller = normalize_caller(raw)
    assert (caller.key, caller.e164, caller.valid) == (key, key, True)
    assert key not in caller.note  # the note is masked


@pytest.mark.parametrize(
    ("raw", "key"),
    [("+1234567890", "+1234567890"), ("+0987654321", "+0987654321"), ("+1 111-111-111", "+1111111111")],
)
def test_normalize_caller_keeps_an_opaque_key_when_plausible_but_invalid(raw: str, key: str) -> None:
    caller = normalize_caller(raw)
    assert (caller.key, caller.e164, caller.valid) == (key, None, False)
    assert "kept as opaque key: not a valid number" in caller.note


@pytest.mark.parametrize("raw", ["", "   ", None])
def test_normalize_caller_gives_no_key_when_the_number_is_missing(raw: str | None) -> None:
    caller = normalize_caller(raw)
    assert caller.key is None and not caller.valid
    assert caller.note == "no caller number given"


@pytest.mark.parametrize("raw", ["anonymous", "+1555abc0100", "sip:alice@example.com", "12", "+" + "1" * 80])
def test_normalize_caller_gives_no_key_when_the_text_is_not_a_number(raw: str) -> None:
    caller = normalize_caller(raw)
    assert caller.key is None and caller.e164 is None and not caller.valid
    assert caller.note


@settings(deadline=None, max_examples=200)
@given(st.text(max_size=40))
def test_normalize_caller_never_raises_when_given_any_text(raw: str) -> None:
    caller = normalize_caller(raw)
    assert caller.key is None or re.fullmatch(r"\+\d{3,15}", caller.key)
    assert caller.valid == (caller.e164 is not None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+15550100100", True),
        ("+442079460000", True),
        ("+1234567890", False),
        ("15550100100", False),
        ("+1 555 010 0100", False),
        ("+0987654321", False),
        ("", False),
    ],
)
def test_is_e164_accepts_only_strict_possible_numbers_when_checking(text: str, expected: bool) -> None:
    assert is_e164(text) is expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("+1-555-TECH-SPECIALISTS", "is not E.164"),
        ("5550100100", "is not E.164"),
        ("+1555", "not a possible number"),
        ("+1234567890", "not a possible number"),
    ],
)
def test_parse_destination_number_explains_when_the_number_is_rejected(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_destination_number(text)
    assert parse_destination_number("+15550100900") == "+15550100900"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+15551234567", "+1******4567"),
        ("+442079460000", "+44******0000"),
        ("+0987654321", "+******4321"),
        ("5551234567", "******4567"),
        ("anonymous", "anonymous"),
        ("+1******4567", "+1******4567"),
    ],
)
def test_mask_number_keeps_country_code_and_last_four_when_masking(raw: str, masked: str) -> None:
    assert mask_number(raw) == masked


def test_mask_numbers_in_text_masks_glued_and_url_encoded_numbers_when_present() -> None:
    assert mask_numbers_in_text("abc+15551234567") == "abc+1******4567"
    assert mask_numbers_in_text("sip:+15551234567@pbx") == "sip:+1******4567@pbx"
    assert mask_numbers_in_text("/calls?from=%2B15551234567&x=1") == "/calls?from=%2B1******4567&x=1"


def test_mask_numbers_in_text_masks_every_number_when_several_appear() -> None:
    text = "from +1 555-123-4567 to +442079460000 at 2026-01-05T10:00:00+00:00, +12 items"
    assert mask_numbers_in_text(text) == (
        "from +1******4567 to +44******0000 at 2026-01-05T10:00:00+00:00, +12 items"
    )


@settings(deadline=None, max_examples=200)
@given(st.text(alphabet="+0123456789 -()abc", max_size=60))
def test_mask_numbers_in_text_leaves_no_long_digit_run_when_given_any_text(text: str) -> None:
    masked = mask_numbers_in_text(text)
    assert not re.search(r"\+\d{9,}", masked)
    assert mask_numbers_in_text(masked) == masked


def test_caller_normalisation_is_memoised_for_short_inputs_only() -> None:
    first = normalize_caller("+1 (555) 010-1234")
    assert normalize_caller("+1 (555) 010-1234") is first, "a repeat caller is served from the cache"
    assert first.key == "+15550101234"
    long = "+1555" + " " * 200 + "0101234"
    assert normalize_caller(long) is not normalize_caller(long), "oversized input is never cached"


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(min_value=0, max_value=9_999_999), min_size=2, max_size=40, unique=True))
def test_caller_cache_never_gives_another_callers_key_when_callers_interleave(suffixes: list[int]) -> None:
    raws = [f"+1415{n:07d}" for n in suffixes]
    for raw in [*raws, *reversed(raws), *raws]:  # misses first, then hits, in another order
        caller = normalize_caller(raw)
        assert (caller.key, caller.e164) == (raw, raw)
        assert caller.note == f"caller {mask_number(raw)} normalised to E.164"


def test_caller_cache_keys_on_the_default_region_when_the_same_text_comes_twice() -> None:
    assert normalize_caller("020 7946 0000", "GB").key == "+442079460000"
    assert normalize_caller("020 7946 0000", "US").key is None
    assert normalize_caller("020 7946 0000", "GB").key == "+442079460000"
