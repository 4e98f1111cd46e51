"""Settings of the webhook edge process (`escalade edge serve`), read from `ESCALADE_*` variables.

The CLI builds `EdgeSettings()` from the environment and passes it to `create_app`; tests build it directly.
The edge keeps its own fallback destination: when the routing service is down it must still answer Vapi
with somewhere to send the caller. That line is the policy file's (`policy`), unless `fallback_number`
overrides it; the built-in `DEFAULT_FALLBACK_NUMBER` is used only with neither (`webhook_edge.fallback`).
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from escalade_platform.settings import EscaladeSettings, RoutingClientSettings, WorkflowStarterSettings
from webhook_edge.auth import HmacOptions
from workflows.inputs import QueueCallbackInput

__all__ = [
    "DEFAULT_FALLBACK_HANDOFF",
    "DEFAULT_FALLBACK_MESSAGE",
    "DEFAULT_FALLBACK_NUMBER",
    "DEFAULT_TRANSFER_FAILED_MESSAGE",
    "MAX_SPOKEN_CHARS",
    "EdgeSettings",
    "WebhookAuthSettings",
]

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_HEADER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DEFAULT_FALLBACK_NUMBER = "+15550100900"
"""The fallback line when neither the policy file nor ESCALADE_FALLBACK_NUMBER gives one."""
DEFAULT_FALLBACK_MESSAGE = "I'll connect you with our general support team who can help you."
"""Said to the caller on the fallback line when neither the setting nor the policy gives a sentence."""
DEFAULT_FALLBACK_HANDOFF = "Escalation routing error - connecting to general support team"
"""Said to the fallback line's answerer when neither the setting nor the policy gives a sentence."""
DEFAULT_TRANSFER_FAILED_MESSAGE = (
    "I'm sorry, the specialist couldn't take your call right now. "
    "I'm still here with you, so let me see what else I can do."
)
"""Said to the caller when a warm transfer fails (`transferPlan.fallbackPlan.message`); the assistant then
stays on the line (`endCallEnabled: false`) and can escalate again or offer a callback."""
MAX_SPOKEN_CHARS = 1000
"""Longest sentence Escalade sends Vapi to speak. Vapi's OpenAPI gives no maxLength for a message passed as a
plain string; its `CustomMessage.content` and `ToolMessage*.content` forms allow 1000, so longer text is cut
at a sentence boundary to that (`webhook_edge.translate.spoken`)."""


class WebhookAuthSettings(EscaladeSettings):
    """How Vapi's webhooks are authenticated: read by the edge (to verify), `escalade vapi provision` (to
    create the matching credential) and `escalade simulate` (to sign)."""

    vapi_secret: SecretStr | None = None
    """Shared secret for every accepted auth form (HMAC key, X-Vapi-Secret, Bearer token)."""
    vapi_previous_secret: SecretStr | None = None
    """The secret being rotated out; accepted alongside `vapi_secret`."""
    vapi_hmac_algorithm: Literal["sha256", "sha512", "sha1"] = "sha256"
    """Vapi HMAC credential (`HmacAuthenticationPlan.algorithm`)."""
    vapi_hmac_encoding: Literal["hex", "base64"] = "hex"
    """`signatureEncoding`."""
    vapi_hmac_prefix: str = Field(default="", max_length=32)
    """`signaturePrefix`, e.g. "sha256=" (empty: none)."""
    vapi_hmac_signature_header: str = "x-signature"
    """`signatureHeader`."""
    vapi_hmac_timestamp_header: str = "x-timestamp"
    """`timestampHeader`; empty: the credential signs the body alone (`includeTimestamp: false`,
    `payloadFormat: {body}`)."""

    @field_validator("vapi_hmac_algorithm", "vapi_hmac_encoding", mode="before")
    @classmethod
    def _lower_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("vapi_hmac_signature_header", "vapi_hmac_timestamp_header", mode="before")
    @classmethod
    def _header_name(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        value = value.strip().lower()
        if value and not _HEADER.match(value):
            raise ValueError("must be an HTTP header name (letters, digits, - and _; up to 64)")
        return value

    @field_validator("vapi_hmac_signature_header")
    @classmethod
    def _signature_header_required(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _distinct_headers(self) -> Self:
        if self.vapi_hmac_signature_header == self.vapi_hmac_timestamp_header:
            raise ValueError("vapi_hmac_signature_header and vapi_hmac_timestamp_header must differ")
        return self

    def hmac_options(self) -> HmacOptions:
        """The HMAC credential the edge verifies (and `escalade vapi provision` creates)."""
        return HmacOptions(
            algorithm=self.vapi_hmac_algorithm,
            encoding=self.vapi_hmac_encoding,
            prefix=self.vapi_hmac_prefix,
            signature_header=self.vapi_hmac_signature_header,
            timestamp_header=self.vapi_hmac_timestamp_header,
        )

    def secrets(self) -> list[bytes]:
        """Accepted secrets, current first."""
        found = [s.get_secret_value().encode() for s in (self.vapi_secret, self.vapi_previous_secret) if s]
        return [s for s in found if s]


class EdgeSettings(WorkflowStarterSettings, WebhookAuthSettings, RoutingClientSettings):
    """Everything `escalade edge serve` needs; every field has an embedded default."""

    routing_deadline_ms: int = Field(default=1500, ge=50, le=60_000)
    """Budget for one routing call; past it the caller gets the fallback line."""
    routing_health_deadline_ms: int = Field(default=500, ge=10, le=10_000)
    """Budget for `/readyz`'s health check of the routing service."""
    fallback_number: str | None = None
    """Overrides the policy's fallback line (the edge's own and that of routing's FALLBACK decisions); unset:
    the policy file's `fallback.destination`, else a built-in +15550100900 (with a start-up warning)."""
    fallback_message: str | None = None
    """What the caller hears when the edge sends them to its fallback line; unset: the policy's
    `fallback.transfer.caller_message`, else a built-in sentence."""
    fallback_handoff_message: str | None = None
    """What the fallback line hears first when the edge transfers a caller there; unset: the policy's
    `fallback.transfer.handoff_message`, else a built-in sentence."""
    transfer_failed_message: str = Field(
        default=DEFAULT_TRANSFER_FAILED_MESSAGE, min_length=1, max_length=MAX_SPOKEN_CHARS
    )
    """What the caller hears when a warm transfer fails (every transfer's `transferPlan.fallbackPlan`)."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    """Running limit for every webhook body (a transfer request over it gets the fallback line)."""
    max_report_bytes: int = Field(default=16 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    """Running limit for an `end-of-call-report`, which carries the whole transcript and messages (long
    calls exceed 1 MB); still bounded."""
    host: str = "127.0.0.1"
    """Interface the webhook listens on."""
    port: int = Field(default=3000, ge=0, le=65535)
    """Port the webhook listens on: Vapi's webhook paths and the health checks only."""
    edge_metrics_port: int = Field(default=9466, ge=0, le=65535)
    """Port of the edge's Prometheus `/metrics`, on `host` (routing's is 9464, the worker's 9465); 0
    disables it."""
    api_docs: bool = False
    """Serve the OpenAPI schema (`/openapi.json`) and its `/docs` and `/redoc` pages on the webhook port
    (`escalade dev` turns this on); off, those paths answer 404."""
    insecure_dev: bool = False
    """Accept unauthenticated webhooks when no secret is configured (local development only)."""
    signature_window_seconds: int = Field(default=300, ge=1)
    """How far a signed request's timestamp may be from the edge's clock (replay protection)."""
    control_timeout_seconds: float = Field(default=3.0, gt=0, le=10.0)
    """Total time for the Live Call Control transfer POST; the tool-calls reply waits for it (with routing's
    deadline, well inside Vapi's 20 s server timeout)."""
    temporal_address: str | None = None
    """Temporal frontend (HOST:PORT) the outbox relay starts workflows on; unset: entries stay pending."""
    relay_enabled: bool = True
    """Run the outbox relay in this process (needs `temporal_address`); off when another process relays."""
    relay_poll_seconds: float = Field(default=2.0, gt=0)
    """How often the outbox relay looks for due entries when nothing nudged it."""
    relay_backoff_max_seconds: float = Field(default=60.0, ge=1)
    """Longest pause between delivery attempts of an entry while Temporal is unreachable."""
    dial_heartbeat_timeout_seconds: int = Field(
        default=QueueCallbackInput.dial_heartbeat_timeout_seconds, ge=10, le=3600
    )
    """How long a queued callback's dial may go without a heartbeat before Temporal deems its worker dead and
    another worker takes the dial over (written into each callback the edge records; at least 10 s, twice the
    worker's 5 s poll of the call)."""

    @field_validator("fallback_number", "fallback_message", "fallback_handoff_message", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("fallback_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is not None and not _E164.match(value.strip()):
            raise ValueError("must be an E.164 number such as +15550100900")
        return value.strip() if value is not None else None
