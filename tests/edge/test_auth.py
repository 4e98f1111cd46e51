"""The auth matrix: each accepted form valid and wrong, missing, stale/future timestamps (s and ms),
the previous secret during rotation, and a tampered body; unit-level and through the real app."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.edge.edge_support import PREVIOUS_SECRET, SECRET, Edge, RunningFake, dumps, load_fixture
from webhook_edge.auth import AuthError, sign_hmac, sign_seed, verify_request
from webhook_edge.settings import EdgeSettings

BODY = b'{"message":{"type":"status-update","status":"in-progress","call":{"id":"c-1"}}}'
SECRETS = [SECRET.encode(), PREVIOUS_SECRET.encode()]
NOW = 1_763_474_564.0


def hmac_headers(secret: str, body: bytes, stamp: str) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"x-signature": digest, "x-timestamp": stamp}


VALID_FORMS: dict[str, Callable[[], dict[str, str]]] = {
    "hmac-ms": lambda: sign_hmac(SECRET, BODY, int(NOW * 1000)),
    "hmac-seconds": lambda: hmac_headers(SECRET, BODY, str(int(NOW))),
    "hmac-sha256-prefix": lambda: {
        **sign_hmac(SECRET, BODY, int(NOW * 1000)),
        "x-signature": "sha256=" + sign_hmac(SECRET, BODY, int(NOW * 1000))["x-signature"],
    },
    "seed-signature": lambda: sign_seed(SECRET, BODY),
    "x-vapi-secret": lambda: {"x-vapi-secret": SECRET},
    "bearer": lambda: {"authorization": f"Bearer {SECRET}"},
}

WRONG_FORMS: dict[str, Callable[[], dict[str, str]]] = {
    "hmac-wrong-secret": lambda: sign_hmac("not-the-secret", BODY, int(NOW * 1000)),
    "hmac-garbage": lambda: {"x-signature": "zz", "x-timestamp": str(int(NOW * 1000))},
    "hmac-no-timestamp": lambda: {"x-signature": sign_hmac(SECRET, BODY, int(NOW * 1000))["x-signature"]},
    "hmac-timestamp-not-a-number": lambda: {"x-signature": "00", "x-timestamp": "yesterday"},
    "seed-wrong-secret": lambda: sign_seed("not-the-secret", BODY),
    "x-vapi-secret-wrong": lambda: {"x-vapi-secret": "nope"},
    "bearer-wrong": lambda: {"authorization": "Bearer nope"},
    "basic-scheme": lambda: {"authorization": f"Basic {SECRET}"},
    "missing": dict,
}


@pytest.mark.parametrize("form", sorted(VALID_FORMS))
def test_request_is_accepted_when_credential_form_is_valid(form: str) -> None:
    result = verify_request(VALID_FORMS[form](), BODY, SECRETS, now=NOW)
    assert not result.previous_secret


@pytest.mark.parametrize("form", sorted(WRONG_FORMS))
def test_request_is_rejected_when_credential_is_wrong_or_missing(form: str) -> None:
    with pytest.raises(AuthError):
        verify_request(WRONG_FORMS[form](), BODY, SECRETS, now=NOW)


@pytest.mark.parametrize(
    ("offset_seconds", "unit"),
    [(-301, "s"), (-301, "ms"), (301, "s"), (301, "ms"), (-86_400 * 365, "ms")],
    ids=["stale-seconds", "stale-ms", "future-seconds", "future-ms", "year-old-ms"],
)
def test_request_is_rejected_when_timestamp_is_outside_window(offset_seconds: int, unit: str) -> None:
    moment = NOW + offset_seconds
    stamp = str(int(moment * 1000)) if unit == "ms" else str(int(moment))
    with pytest.raises(AuthError, match="window"):
        verify_request(hmac_headers(SECRET, BODY, stamp), BODY, SECRETS, now=NOW)


@pytest.mark.parametrize("unit", ["s", "ms"])
def test_request_is_accepted_when_timestamp_is_inside_window(unit: str) -> None:
    moment = NOW - 299
    stamp = str(int(moment * 1000)) if unit == "ms" else str(int(moment))
    verify_request(hmac_headers(SECRET, BODY, stamp), BODY, SECRETS, now=NOW)


@pytest.mark.parametrize("form", ["hmac-ms", "seed-signature", "x-vapi-secret", "bearer"])
def test_previous_secret_is_accepted_when_rotating(form: str) -> None:
    headers = {
        "hmac-ms": lambda: sign_hmac(PREVIOUS_SECRET, BODY, int(NOW * 1000)),
        "seed-signature": lambda: sign_seed(PREVIOUS_SECRET, BODY),
        "x-vapi-secret": lambda: {"x-vapi-secret": PREVIOUS_SECRET},
        "bearer": lambda: {"authorization": f"Bearer {PREVIOUS_SECRET}"},
    }[form]()
    assert verify_request(headers, BODY, SECRETS, now=NOW).previous_secret


@pytest.mark.parametrize("form", ["hmac-ms", "seed-signature"])
def test_request_is_rejected_when_body_is_tampered(form: str) -> None:
    headers = VALID_FORMS[form]()
    tampered = BODY.replace(b"in-progress", b"ended")
    with pytest.raises(AuthError, match="does not match"):
        verify_request(headers, tampered, SECRETS, now=NOW)


def test_request_is_rejected_when_no_secret_is_configured() -> None:
    with pytest.raises(AuthError):
        verify_request({"x-vapi-secret": ""}, BODY, [], now=NOW)


def test_signature_is_checked_over_raw_bytes_when_json_is_reformatted() -> None:
    """Re-serialising the JSON (the seed's mistake) changes the bytes, so the signature must fail."""
    import json

    headers = sign_seed(SECRET, BODY)
    reformatted = json.dumps(json.loads(BODY), indent=2).encode()
    with pytest.raises(AuthError):
        verify_request(headers, reformatted, SECRETS, now=NOW)


# ---------------------------------------------------------------- through the app -----------------------
@pytest.mark.parametrize("form", ["hmac", "seed", "x-vapi-secret", "bearer", "previous-bearer"])
async def test_webhook_answers_200_when_each_form_is_valid(edge: Edge, form: str) -> None:
    body = dumps(load_fixture("status-update.in-progress.json"))
    headers = {
        "hmac": lambda: sign_hmac(SECRET, body, int(time.time() * 1000)),
        "seed": lambda: sign_seed(SECRET, body),
        "x-vapi-secret": lambda: {"X-Vapi-Secret": SECRET},
        "bearer": lambda: {"Authorization": f"Bearer {SECRET}"},
        "previous-bearer": lambda: {"Authorization": f"Bearer {PREVIOUS_SECRET}"},
    }[form]()
    response = await edge.post(body, headers={"content-type": "application/json", **headers})
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize("form", ["missing", "wrong-hmac", "stale-hmac", "wrong-bearer", "tampered"])
async def test_webhook_answers_401_json_when_credentials_fail(edge: Edge, form: str) -> None:
    body = dumps(load_fixture("transfer-destination-request.enterprise-technical-advanced.json"))
    now_ms = int(time.time() * 1000)
    sent = body
    if form == "missing":
        headers: dict[str, str] = {}
    elif form == "wrong-hmac":
        headers = sign_hmac("wrong", body, now_ms)
    elif form == "stale-hmac":
        headers = sign_hmac(SECRET, body, now_ms - 301_000)
    elif form == "wrong-bearer":
        headers = {"Authorization": "Bearer wrong"}
    else:
        headers = sign_hmac(SECRET, body, now_ms)
        sent = body.replace(b"+1234567890", b"+1234567891")
    response = await edge.post(sent, headers={"content-type": "application/json", **headers})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert SECRET not in response.text


async def test_webhook_routes_nothing_when_credentials_fail(edge: Edge, fake_routing: RunningFake) -> None:
    body = dumps(load_fixture("transfer-destination-request.enterprise-technical-advanced.json"))
    await edge.post(body, headers={"content-type": "application/json"})
    assert fake_routing.servicer.resolve_requests == []


async def test_unsigned_webhook_is_accepted_when_insecure_dev_and_no_secret(
    edge_settings: EdgeSettings,
) -> None:
    from tests.edge.edge_support import running_edge

    settings = edge_settings.model_copy(
        update={"vapi_secret": None, "vapi_previous_secret": None, "insecure_dev": True}
    )
    async with running_edge(settings) as edge:
        body = dumps(load_fixture("status-update.in-progress.json"))
        response = await edge.post(body, headers={"content-type": "application/json"})
    assert response.status_code == 200


async def test_signature_is_still_required_when_insecure_dev_but_secret_is_set(
    edge_settings: EdgeSettings,
) -> None:
    from tests.edge.edge_support import running_edge

    async with running_edge(edge_settings.model_copy(update={"insecure_dev": True})) as edge:
        body = dumps(load_fixture("status-update.in-progress.json"))
        response = await edge.post(body, headers={"content-type": "application/json"})
    assert response.status_code == 401


def test_app_refuses_to_build_when_no_secret_and_not_insecure_dev() -> None:
    from webhook_edge.app import create_app
    from webhook_edge.settings import EdgeSettings

    with pytest.raises(ValueError, match="ESCALADE_VAPI_SECRET"):
        create_app(EdgeSettings(vapi_secret=None))
