"""The auth matrix: each accepted form valid and wrong, missing, stale/future timestamps (s and ms),
the previous secret during rotation, and a tampered body; unit-level and through the real app."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.edge.edge_support import PREVIOUS_SECRET, SECRET, Edge, RunningFake, dumps, load_fixture
from webhook_edge.auth import AuthError, HmacOptions, sign_hmac, sign_seed, verify_request
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


# ---------------------------------------------------------------- HMAC credential options ---------------
def reference_signature(algorithm: str, encoding: str, secret: str, payload: bytes) -> str:
    """Computed here with hashlib/base64 directly, not with the code under test."""
    import base64
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), payload, getattr(hashlib, algorithm)).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


OPTION_CASES = [
    (algorithm, encoding, prefix, timestamp)
    for algorithm in ("sha256", "sha512", "sha1")
    for encoding in ("hex", "base64")
    for prefix in ("", f"{algorithm}=")
    for timestamp in (True, False)
]


@pytest.mark.parametrize(("algorithm", "encoding", "prefix", "timestamp"), OPTION_CASES)
def test_hmac_is_accepted_when_signed_as_configured(
    algorithm: str, encoding: str, prefix: str, timestamp: bool
) -> None:
    options = HmacOptions(
        algorithm=algorithm,  # type: ignore[arg-type]
        encoding=encoding,  # type: ignore[arg-type]
        prefix=prefix,
        signature_header="x-vapi-hmac",
        timestamp_header="x-vapi-time" if timestamp else "",
    )
    stamp = str(int(NOW * 1000))
    payload = f"{stamp}.".encode() + BODY if timestamp else BODY
    headers = {"x-vapi-hmac": prefix + reference_signature(algorithm, encoding, SECRET, payload)}
    if timestamp:
        headers["x-vapi-time"] = stamp
    assert verify_request(headers, BODY, SECRETS, now=NOW, hmac_options=options).form == "hmac"
    assert sign_hmac(SECRET, BODY, int(NOW * 1000), options) == headers
    previous = sign_hmac(PREVIOUS_SECRET, BODY, int(NOW * 1000), options)
    assert verify_request(previous, BODY, SECRETS, now=NOW, hmac_options=options).previous_secret
    with pytest.raises(AuthError, match="does not match"):
        verify_request(headers, BODY + b" ", SECRETS, now=NOW, hmac_options=options)


WRONG_OPTIONS: dict[str, tuple[HmacOptions, Callable[[], dict[str, str]]]] = {
    "sha1-signature-sha256-configured": (
        HmacOptions(),
        lambda: (
            {"x-signature": reference_signature("sha1", "hex", SECRET, f"{int(NOW)}.".encode() + BODY)}
            | {"x-timestamp": str(int(NOW))}
        ),
    ),
    "base64-signature-hex-configured": (
        HmacOptions(algorithm="sha512"),
        lambda: sign_hmac(SECRET, BODY, int(NOW * 1000), HmacOptions(algorithm="sha512", encoding="base64")),
    ),
    "hex-signature-base64-configured": (
        HmacOptions(encoding="base64"),
        lambda: sign_hmac(SECRET, BODY, int(NOW * 1000)),
    ),
    "timestamped-signature-body-only-configured": (
        HmacOptions(timestamp_header=""),
        lambda: sign_hmac(SECRET, BODY, int(NOW * 1000)),
    ),
    "body-only-signature-timestamp-configured": (
        HmacOptions(),
        lambda: (
            sign_hmac(SECRET, BODY, int(NOW * 1000), HmacOptions(timestamp_header=""))
            | {"x-timestamp": str(int(NOW * 1000))}
        ),
    ),
    "missing-configured-timestamp-header": (
        HmacOptions(timestamp_header="x-vapi-time"),
        lambda: sign_hmac(SECRET, BODY, int(NOW * 1000)),
    ),
    "signature-in-default-header-custom-configured": (
        HmacOptions(signature_header="x-vapi-hmac"),
        lambda: sign_hmac(SECRET, BODY, int(NOW * 1000)),
    ),
    "stale-custom-timestamp": (
        HmacOptions(timestamp_header="x-vapi-time"),
        lambda: sign_hmac(
            SECRET, BODY, int((NOW - 3600) * 1000), HmacOptions(timestamp_header="x-vapi-time")
        ),
    ),
    "wrong-prefix": (
        HmacOptions(prefix="v1="),
        lambda: {
            "x-signature": "v2=" + sign_hmac(SECRET, BODY, int(NOW * 1000))["x-signature"],
            "x-timestamp": str(int(NOW * 1000)),
        },
    ),
    "not-base64": (
        HmacOptions(encoding="base64", timestamp_header=""),
        lambda: {"x-signature": "!!!not base64!!!"},
    ),
}


@pytest.mark.parametrize("case", sorted(WRONG_OPTIONS))
def test_hmac_is_rejected_when_signed_otherwise_than_configured(case: str) -> None:
    options, headers = WRONG_OPTIONS[case]
    with pytest.raises(AuthError):
        verify_request(headers(), BODY, SECRETS, now=NOW, hmac_options=options)


def test_other_forms_still_work_when_hmac_options_are_changed() -> None:
    options = HmacOptions(algorithm="sha512", encoding="base64", signature_header="x-vapi-hmac")
    for headers in (
        sign_seed(SECRET, BODY),
        {"x-vapi-secret": SECRET},
        {"authorization": f"Bearer {SECRET}"},
    ):
        verify_request(headers, BODY, SECRETS, now=NOW, hmac_options=options)


@pytest.mark.parametrize(
    "change",
    [
        {"vapi_hmac_algorithm": "md5"},
        {"vapi_hmac_encoding": "base32"},
        {"vapi_hmac_signature_header": ""},
        {"vapi_hmac_signature_header": "x signature"},
        {"vapi_hmac_timestamp_header": "x-time:stamp"},
        {"vapi_hmac_signature_header": "x-sig", "vapi_hmac_timestamp_header": "X-Sig"},
        {"vapi_hmac_prefix": "p" * 33},
    ],
    ids=["algorithm", "encoding", "empty-header", "space", "colon", "same-headers", "long-prefix"],
)
def test_settings_reject_hmac_options_when_invalid(change: dict[str, str]) -> None:
    from pydantic import SecretStr, ValidationError

    with pytest.raises(ValidationError):
        EdgeSettings(vapi_secret=SecretStr("s"), **change)  # type: ignore[arg-type]


def test_settings_read_hmac_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ESCALADE_VAPI_HMAC_ALGORITHM": "sha512",
        "ESCALADE_VAPI_HMAC_ENCODING": "base64",
        "ESCALADE_VAPI_HMAC_PREFIX": "sha512=",
        "ESCALADE_VAPI_HMAC_SIGNATURE_HEADER": "X-Vapi-Hmac",
        "ESCALADE_VAPI_HMAC_TIMESTAMP_HEADER": "",
    }.items():
        monkeypatch.setenv(name, value)
    assert EdgeSettings().hmac_options() == HmacOptions(
        algorithm="sha512",
        encoding="base64",
        prefix="sha512=",
        signature_header="x-vapi-hmac",
        timestamp_header="",
    )


@pytest.mark.parametrize("valid", [True, False])
async def test_webhook_checks_the_configured_hmac_credential(
    edge_settings: EdgeSettings, valid: bool
) -> None:
    from tests.edge.edge_support import running_edge

    settings = edge_settings.model_copy(
        update={
            "vapi_hmac_algorithm": "sha1",
            "vapi_hmac_encoding": "base64",
            "vapi_hmac_signature_header": "x-vapi-hmac",
            "vapi_hmac_timestamp_header": "",
        }
    )
    body = dumps(load_fixture("status-update.in-progress.json"))
    options = (
        settings.hmac_options() if valid else HmacOptions(algorithm="sha1", signature_header="x-vapi-hmac")
    )
    headers = {"content-type": "application/json", **sign_hmac(SECRET, body, 0, options)}
    async with running_edge(settings) as edge:
        response = await edge.post(body, headers=headers)
    if valid:
        assert response.status_code == 200 and response.json() == {}
    else:
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        assert "x-vapi-hmac does not match" in response.json()["error"]["message"]
