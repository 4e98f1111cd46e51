"""Authentication of Vapi -> Escalade webhooks, over the RAW body bytes, in constant time.

Accepted forms (every way Vapi's server credentials can authenticate, plus the seed tutorial's), each
checked against the current and the previous secret:

    HMAC credential          Vapi's `HmacAuthenticationPlan`, as configured (`HmacOptions`, from the edge
                             settings ESCALADE_VAPI_HMAC_*): algorithm sha256 | sha512 | sha1, signature
                             encoded hex | base64, optional prefix (e.g. "sha256="), in the signature header
                             (default x-signature); with a timestamp header (default x-timestamp, Unix seconds
                             or milliseconds, within a window) the signed string is "{timestamp}.{body}",
                             without one (timestamp header configured empty) the body alone
    x-vapi-signature         the seed tutorial: hex HMAC-SHA256 of the body
    X-Vapi-Secret: <secret>  legacy shared secret (or a bearer credential with headerName X-Vapi-Secret)
    Authorization: Bearer s  Vapi bearer credential

A request passes when any credential it presents is valid. Signatures are decoded and compared as digests
with `hmac.compare_digest`. Nothing here logs a secret or a signature.

`WebhookAuth` is the webhook route's check: `verify_request` with the edge's settings, the development
mode without a secret, and the header-only check of a body the edge refused to buffer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog

if TYPE_CHECKING:
    from webhook_edge.settings import EdgeSettings

__all__ = [
    "AuthError",
    "AuthResult",
    "HmacOptions",
    "WebhookAuth",
    "sign_hmac",
    "sign_seed",
    "verify_request",
]

log = structlog.get_logger(__name__)

_MS_THRESHOLD = 100_000_000_000  # timestamps above this are milliseconds (year 5138 in seconds)
_MAX_SIGNATURE = 512

HmacAlgorithm = Literal["sha256", "sha512", "sha1"]
HmacEncoding = Literal["hex", "base64"]
_DIGESTS: dict[str, Callable[..., Any]] = {
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "sha1": hashlib.sha1,
}


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


@dataclass(frozen=True, slots=True)
class HmacOptions:
    """How Vapi's HMAC credential signs (mirrors `HmacAuthenticationPlan`); the defaults are Vapi's."""

    algorithm: HmacAlgorithm = "sha256"
    encoding: HmacEncoding = "hex"
    prefix: str = ""
    """Sent before the signature (Vapi's `signaturePrefix`); "sha256=" is also accepted with the defaults."""
    signature_header: str = "x-signature"
    timestamp_header: str = "x-timestamp"
    """Empty: no timestamp; the signed string is the body alone."""

    def __post_init__(self) -> None:
        if self.algorithm not in _DIGESTS:
            raise ValueError(f"HMAC algorithm must be one of {', '.join(_DIGESTS)} (got {self.algorithm!r})")
        if self.encoding not in ("hex", "base64"):
            raise ValueError(f"HMAC encoding must be one of hex, base64 (got {self.encoding!r})")
        if not self.signature_header.strip():
            raise ValueError("the HMAC signature header must not be empty")

    def digest(self, secret: bytes, payload: bytes) -> bytes:
        return hmac.new(secret, payload, _DIGESTS[self.algorithm]).digest()

    def encode(self, digest: bytes) -> str:
        if self.encoding == "hex":
            return digest.hex()
        return base64.b64encode(digest).decode("ascii")

    def decode(self, value: str) -> bytes | None:
        """The digest a presented signature carries (prefix stripped), or None when it cannot be decoded."""
        value = value.strip()
        for prefix in (self.prefix, "sha256=" if self.algorithm == "sha256" else ""):
            if prefix and value[: len(prefix)].lower() == prefix.lower():
                value = value[len(prefix) :].strip()
                break
        if not value or len(value) > _MAX_SIGNATURE:
            return None
        try:
            if self.encoding == "hex":
                return bytes.fromhex(value)
            padded = value + "=" * (-len(value) % 4)
            return base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (ValueError, binascii.Error):
            return None


_SEED = HmacOptions(timestamp_header="")


def _hmac_hex(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).hexdigest().encode("ascii")


def sign_hmac(
    secret: str, body: bytes, timestamp_ms: int, options: HmacOptions | None = None
) -> dict[str, str]:
    """Headers of Vapi's HMAC credential for `body` (signature and, unless disabled, the timestamp in ms)."""
    opts = options or HmacOptions()
    stamp = str(timestamp_ms)
    payload = stamp.encode("ascii") + b"." + body if opts.timestamp_header else body
    headers = {opts.signature_header: opts.prefix + opts.encode(opts.digest(secret.encode(), payload))}
    if opts.timestamp_header:
        headers[opts.timestamp_header] = stamp
    return headers


def sign_seed(secret: str, body: bytes) -> dict[str, str]:
    """The seed tutorial's header: `x-vapi-signature` = hex HMAC-SHA256 of the body."""
    return {"x-vapi-signature": _hmac_hex(secret.encode(), body).decode("ascii")}


def _match_any(candidate: bytes, expected: Sequence[bytes]) -> int | None:
    """Index of the expected value equal to candidate; every comparison is constant-time."""
    found: int | None = None
    for index, value in enumerate(expected):
        if hmac.compare_digest(candidate, value) and found is None:
            found = index
    return found


def _timestamp_seconds(raw: str, name: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise AuthError(f"{name} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise AuthError(f"{name} is not a number")
    return value / 1000.0 if value >= _MS_THRESHOLD else value


def _check_hmac(
    signature: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[bytes],
    options: HmacOptions,
    now: float,
    window: float,
) -> int:
    name = options.signature_header
    payload = body
    if options.timestamp_header:
        stamp = headers.get(options.timestamp_header)
        if stamp is None:
            raise AuthError(f"{name} needs a {options.timestamp_header} header")
        moment = _timestamp_seconds(stamp, options.timestamp_header)
        if abs(now - moment) > window:
            raise AuthError(f"{options.timestamp_header} is outside the accepted window")
        payload = stamp.encode("utf-8", "replace") + b"." + body
    presented = options.decode(signature)
    expected = [options.digest(s, payload) for s in secrets]
    index = _match_any(presented if presented is not None else b"", expected)
    if index is None or presented is None:
        raise AuthError(f"{name} does not match")
    return index


def _check_seed(signature: str, body: bytes, secrets: Sequence[bytes]) -> int:
    presented = _SEED.decode(signature)
    index = _match_any(presented if presented is not None else b"", [_SEED.digest(s, body) for s in secrets])
    if index is None or presented is None:
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
    hmac_options: HmacOptions | None = None,
) -> AuthResult:
    """Authenticate a webhook; raises `AuthError` when no presented credential is valid.

    `headers` must be case-insensitive (Starlette's `Headers`) or use lower-case keys. `secrets` lists the
    current secret first, then the previous one. `hmac_options` describe the HMAC credential (Vapi's
    defaults when None).
    """
    options = hmac_options or HmacOptions()
    if not secrets:
        raise AuthError("no webhook secret is configured")
    moment = time.time() if now is None else now
    attempts: list[tuple[str, Callable[[], int]]] = []
    signature = headers.get(options.signature_header)
    if signature is not None:
        attempts.append(
            (
                "hmac",
                lambda: _check_hmac(signature, headers, body, secrets, options, moment, window_seconds),
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


_HEADER_CREDENTIALS = ("x-vapi-secret", "authorization")


class WebhookAuth:
    """Whether a webhook request is authenticated, given the edge's secrets and HMAC credential."""

    def __init__(
        self,
        secrets: Sequence[bytes],
        *,
        hmac_options: HmacOptions,
        window_seconds: float = 300.0,
        insecure_dev: bool = False,
    ) -> None:
        self._secrets = list(secrets)
        self._hmac = hmac_options
        self._window = window_seconds
        self._open = not self._secrets and insecure_dev

    @classmethod
    def from_settings(cls, settings: EdgeSettings) -> WebhookAuth:
        """The edge's check (`ESCALADE_VAPI_SECRET`, `_PREVIOUS_SECRET`, `_HMAC_*`, `--insecure-dev`)."""
        return cls(
            settings.secrets(),
            hmac_options=settings.hmac_options(),
            window_seconds=settings.signature_window_seconds,
            insecure_dev=settings.insecure_dev,
        )

    def check(self, headers: Mapping[str, str], body: bytes | None) -> None:
        """Return when the request is authenticated; raise `AuthError` otherwise.

        With no secret configured and `insecure_dev` on, every request passes. `body` None: the body was not
        read whole (a too-large transfer request), so only what the headers alone prove can be checked: a
        shared secret or bearer token is verified; an HMAC signature (over a body the edge refused to buffer)
        is accepted unverified; no credential at all fails.
        """
        if self._open:
            return
        secrets = self._secrets
        if body is not None:
            result = verify_request(
                headers, body, secrets, window_seconds=self._window, hmac_options=self._hmac
            )
            if result.previous_secret:
                log.info("webhook_previous_secret_used", form=result.form)
            return
        if any(name in headers for name in _HEADER_CREDENTIALS):
            verify_request({k: v for k, v in headers.items() if k in _HEADER_CREDENTIALS}, b"", secrets)
            return
        if self._hmac.signature_header in headers or "x-vapi-signature" in headers:
            log.warning("webhook_signature_unverifiable", reason="body too large to buffer")
            return
        if not secrets:
            raise AuthError("no webhook secret is configured")
        raise AuthError("missing credentials")
