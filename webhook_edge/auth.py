"""Authentication of Vapi -> Escalade webhooks, over the RAW body bytes, in constant time.

Accepted forms (PROTOCOL.md section 4), each checked against the current and the previous secret:

    x-signature + x-timestamp   Vapi HMAC credential: hex HMAC-SHA256 of "{timestamp}.{body}", optional
                                "sha256=" prefix; timestamp in Unix seconds or milliseconds, within a window
    x-vapi-signature            the seed tutorial: hex HMAC-SHA256 of the body
    X-Vapi-Secret: <secret>     legacy shared secret (or a bearer credential with headerName X-Vapi-Secret)
    Authorization: Bearer <s>   Vapi bearer credential

A request passes when any credential it presents is valid. Nothing here logs a secret or a signature.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["AuthError", "AuthResult", "sign_hmac", "sign_seed", "verify_request"]

_MS_THRESHOLD = 100_000_000_000  # timestamps above this are milliseconds (year 5138 in seconds)


class AuthError(Exception):
    """The request carries no valid credential; `reason` is safe to return to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Which form authenticated the request, and whether the previous (rotating) secret was used."""

    form: str
    previous_secret: bool


def _hmac_hex(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest().encode("ascii")


def sign_hmac(secret: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """Headers of Vapi's HMAC credential (`x-signature`, `x-timestamp` in ms) for `body`."""
    stamp = str(timestamp_ms)
    signature = _hmac_hex(secret.encode(), stamp.encode("ascii") + b"." + body).decode("ascii")
    return {"x-signature": signature, "x-timestamp": stamp}


def sign_seed(secret: str, body: bytes) -> dict[str, str]:
    """The seed tutorial's header: `x-vapi-signature` = hex HMAC-SHA256 of the body."""
    return {"x-vapi-signature": _hmac_hex(secret.encode(), body).decode("ascii")}


def _normalise_signature(value: str) -> bytes:
    value = value.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    return value.strip().lower().encode("utf-8", "replace")


def _match_any(candidate: bytes, expected: Sequence[bytes]) -> int | None:
    """Index of the expected value equal to candidate; every comparison is constant-time."""
    found: int | None = None
    for index, value in enumerate(expected):
        if hmac.compare_digest(candidate, value) and found is None:
            found = index
    return found


def _timestamp_seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise AuthError("x-timestamp is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise AuthError("x-timestamp is not a number")
    return value / 1000.0 if value >= _MS_THRESHOLD else value


def _check_hmac_timestamped(
    signature: str, stamp: str | None, body: bytes, secrets: Sequence[bytes], now: float, window: float
) -> int:
    if stamp is None:
        raise AuthError("x-signature needs an x-timestamp header")
    moment = _timestamp_seconds(stamp)
    if abs(now - moment) > window:
        raise AuthError("x-timestamp is outside the accepted window")
    payload = stamp.encode("utf-8", "replace") + b"." + body
    index = _match_any(_normalise_signature(signature), [_hmac_hex(s, payload) for s in secrets])
    if index is None:
        raise AuthError("x-signature does not match")
    return index


def _check_seed(signature: str, body: bytes, secrets: Sequence[bytes]) -> int:
    index = _match_any(_normalise_signature(signature), [_hmac_hex(s, body) for s in secrets])
    if index is None:
        raise AuthError("x-vapi-signature does not match")
    return index


def _check_secret(value: str, secrets: Sequence[bytes], name: str) -> int:
    index = _match_any(value.strip().encode("utf-8", "replace"), list(secrets))
    if index is None:
        raise AuthError(f"{name} does not match")
    return index


def verify_request(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[bytes],
    *,
    now: float | None = None,
    window_seconds: float = 300.0,
) -> AuthResult:
    """Authenticate a webhook; raises `AuthError` when no presented credential is valid.

    `headers` must be case-insensitive (Starlette's `Headers`) or use lower-case keys. `secrets` lists the
    current secret first, then the previous one.
    """
    if not secrets:
        raise AuthError("no webhook secret is configured")
    moment = time.time() if now is None else now
    attempts: list[tuple[str, Callable[[], int]]] = []
    signature = headers.get("x-signature")
    if signature is not None:
        attempts.append(
            (
                "hmac",
                lambda: _check_hmac_timestamped(
                    signature, headers.get("x-timestamp"), body, secrets, moment, window_seconds
                ),
            )
        )
    seed = headers.get("x-vapi-signature")
    if seed is not None:
        attempts.append(("seed-signature", lambda: _check_seed(seed, body, secrets)))
    shared = headers.get("x-vapi-secret")
    if shared is not None:
        attempts.append(("x-vapi-secret", lambda: _check_secret(shared, secrets, "X-Vapi-Secret")))
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            attempts.append(("bearer", lambda: _check_secret(token, secrets, "bearer token")))
    if not attempts:
        raise AuthError("missing credentials")
    reasons: list[str] = []
    for form, check in attempts:
        try:
            index = check()
        except AuthError as exc:
            reasons.append(exc.reason)
            continue
        return AuthResult(form=form, previous_secret=index > 0)
    raise AuthError("; ".join(reasons))
