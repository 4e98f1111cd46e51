"""The store's JSON codec (`routing_service.store.json_text`): orjson's compact text, read back by both
`json` and itself, and documents an earlier version wrote with `json.dumps` still read."""

from __future__ import annotations

import json
import math
from enum import StrEnum

from hypothesis import given
from hypothesis import strategies as st

from routing_service.store.json_text import dumps, loads

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON)
def test_what_dumps_writes_both_decoders_read_back_equal(value: object) -> None:
    text = dumps(value)
    assert loads(text) == value
    assert json.loads(text) == value


def test_text_is_compact_utf8_not_escaped() -> None:
    text = dumps({"summary": "Café … 502", "steps": ["a", "b"]})
    assert text == '{"summary":"Café … 502","steps":["a","b"]}'


def test_what_json_dumps_wrote_is_read_including_nan_and_infinity() -> None:
    old = json.dumps({"confidence": math.nan, "wait": math.inf, "text": "caf\u00e9"})
    assert "NaN" in old and "\\u00e9" in old
    value = loads(old)
    assert math.isnan(value["confidence"]) and value["wait"] == math.inf and value["text"] == "café"


def test_keys_that_are_not_strings_become_strings_as_json_dumps_makes_them() -> None:
    class Kind(StrEnum):
        LIVE = "live"

    value = {1: "one", Kind.LIVE: [Kind.LIVE]}
    assert loads(dumps(value)) == json.loads(json.dumps(value)) == {"1": "one", "live": ["live"]}
