"""A hypothesis-driven generator of Vapi-shaped webhooks against the real edge over real HTTP: valid-looking
envelopes (the Vapi fixtures) with mutated fields (wrong types, missing and extra fields, deep nesting, huge
strings, invalid UTF-8), wrong content types, and every authentication form, good, stale, missing or forged.

Whatever arrives: no 5xx; every rejection is JSON with a code and a reason; a transfer-destination-request
that authenticates and is answered 200 carries a number or SIP URI to dial, and one whose mutations are
harmless (extra fields, long or exotic text) is always answered 200 with a destination."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.edge.edge_support import PREVIOUS_SECRET, SECRET, fixture_names, load_fixture
from tests.hostile.hostile_support import LiveEdge, assert_no_server_error, live_edge, usable_destination
from webhook_edge.auth import sign_hmac

pytestmark = pytest.mark.timeout(120)

FIXTURES = [n for n in fixture_names() if not n.startswith(("response.", "outbound-call."))]
TRANSFER = [n for n in FIXTURES if n.startswith("transfer-destination-request.")]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEdge]:
    with live_edge(Path(tmp_path_factory.mktemp("message-fuzz"))) as edge:
        yield edge


@pytest.fixture(scope="module")
def http(live: LiveEdge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


# ---------------------------------------------------------------------------------------- mutations ------
def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside `doc` (dict keys and list indexes), down to 12 levels."""
    found: list[tuple[Any, ...]] = []
    if len(prefix) >= 12:
        return found
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.append((*prefix, key))
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found.append((*prefix, index))
            found += paths(value, (*prefix, index))
    return found


def parent_of(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        doc = doc[step]
    return doc


DEEP = "__deep_nesting__"


_wrong = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
    st.just(DEEP),  # replaced after encoding by 50-20000 levels of [[...]]
    st.integers(min_value=10_000, max_value=300_000).map(lambda n: "x" * n),
)
_shallow = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)
_exotic_text = st.one_of(  # at most ~250 KB escaped: three of them stay under the 1 MiB body limit
    st.text(max_size=200),
    st.integers(min_value=1_000, max_value=30_000).map(lambda n: "ü✓🙂" * (n // 3)),
    st.sampled_from(["\u0000", "\ud7ff\ue000", "‮RTL", "{{transcript}}", "<script>", "' OR 1=1 --"]),
)


@dataclass
class Webhook:
    body: bytes
    content_type: str | None
    auth: str
    transfer: bool
    harmless: bool
    path: str = "/webhook/vapi"


@st.composite
def webhooks(draw: st.DrawFn) -> Webhook:
    name = draw(st.sampled_from(FIXTURES))
    doc = copy.deepcopy(load_fixture(name))
    doc["message"].setdefault("call", {})["id"] = f"fuzz-{draw(st.uuids()).hex}"
    harmless = True
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        kind = draw(st.sampled_from(["extra", "text", "wrong-type", "delete"]))
        targets = [p for p in paths(doc) if p[:2] != ("message", "type") and p != ("message",)]
        if kind == "extra":
            where = draw(st.sampled_from([(), ("message",), ("message", "call")]))
            parent: Any = doc
            for step in where:  # (an earlier mutation may have removed or retyped the level)
                parent = parent.get(step) if isinstance(parent, dict) else None
            if isinstance(parent, dict):
                parent[f"x-{draw(st.text(min_size=1, max_size=10))}"] = draw(_shallow)
        elif kind == "text":
            doc["message"][draw(st.sampled_from(["transcript", "summary", "x-note"]))] = draw(_exotic_text)
        elif targets:
            path = draw(st.sampled_from(targets))
            parent = parent_of(doc, path)
            if kind == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = draw(_wrong)
            harmless = False
    body = json.dumps(doc).encode()
    while f'"{DEEP}"'.encode() in body:
        depth = draw(st.integers(min_value=50, max_value=20_000))
        body = body.replace(f'"{DEEP}"'.encode(), b"[" * depth + b"]" * depth, 1)
    if draw(st.integers(min_value=0, max_value=9)) == 0:  # invalid UTF-8 inside the JSON
        cut = draw(st.integers(min_value=0, max_value=len(body)))
        body = (
            body[:cut] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])) + body[cut:]
        )
        harmless = False
    content_type = draw(
        st.sampled_from(
            ["application/json"] * 6
            + ["application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", None]
        )
    )
    auth = draw(
        st.sampled_from(
            ["hmac"] * 4
            + ["hmac-previous", "x-vapi-secret", "bearer", "stale", "forged", "other-body", "none"]
        )
    )
    transfer = doc.get("message", {}).get("type") == "transfer-destination-request"
    path = draw(st.sampled_from(["/webhook/vapi", "/webhook/vapi", "/webhook/escalation"]))
    return Webhook(body, content_type, auth, transfer, harmless, path)


def headers_for(hook: Webhook) -> dict[str, str]:
    now = int(time.time() * 1000)
    forms: dict[str, Callable[[], dict[str, str]]] = {
        "hmac": lambda: sign_hmac(SECRET, hook.body, now),
        "hmac-previous": lambda: sign_hmac(PREVIOUS_SECRET, hook.body, now),
        "x-vapi-secret": lambda: {"x-vapi-secret": SECRET},
        "bearer": lambda: {"authorization": f"Bearer {SECRET}"},
        "stale": lambda: sign_hmac(SECRET, hook.body, now - 3_600_000),
        "forged": lambda: sign_hmac("not-the-secret", hook.body, now),
        "other-body": lambda: sign_hmac(SECRET, hook.body + b" ", now),
        "none": dict,
    }
    headers: dict[str, str] = dict(forms[hook.auth]())
    if hook.content_type is not None:
        headers["content-type"] = hook.content_type
    return headers


AUTHENTIC = {"hmac", "hmac-previous", "x-vapi-secret", "bearer"}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(hook=webhooks())
def test_no_5xx_and_transfers_get_a_destination_when_webhooks_are_mutated(
    live: LiveEdge, http: httpx.Client, hook: Webhook
) -> None:
    response = http.post(hook.path, content=hook.body, headers=headers_for(hook))
    assert_no_server_error(response)
    event(f"{'transfer' if hook.transfer else 'other'} {hook.auth} -> {response.status_code}")
    # (no content type at all is read as JSON: the edge is lenient there)
    json_ok = hook.content_type is None or hook.content_type.startswith("application/json")
    if hook.auth not in AUTHENTIC and json_ok:
        assert response.status_code == 401, response.text[:300]
    if not json_ok:
        assert response.status_code == 415, response.text[:300]
    authentic_transfer = hook.auth in AUTHENTIC and json_ok and hook.transfer
    if authentic_transfer and (hook.harmless or response.status_code == 200):
        usable_destination(response)


@pytest.mark.parametrize("name", TRANSFER)
def test_destination_is_answered_when_a_transfer_fixture_is_signed_each_way(
    live: LiveEdge, http: httpx.Client, name: str
) -> None:
    hook = Webhook(json.dumps(load_fixture(name)).encode(), "application/json", "hmac", True, True)
    for auth in sorted(AUTHENTIC):
        hook.auth = auth
        usable_destination(http.post("/webhook/vapi", content=hook.body, headers=headers_for(hook)))
