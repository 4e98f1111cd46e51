"""The settings every Escalade process shares, read from `ESCALADE_*` environment variables.

Each service's settings class (`routing_service.settings.RoutingSettings`,
`webhook_edge.settings.EdgeSettings`, `workflows.settings.WorkerSettings`) extends `EscaladeSettings` with
its own fields; the edge and the worker, which both start workflows, share `WorkflowStarterSettings`, which
extends `TemporalConnectionSettings`: how every Temporal client (those two and the CLI's Temporal commands)
reaches Temporal, read by `escalade_platform.temporal_client.connect_temporal`, and the keys it encrypts
payloads with (`PayloadEncryptionSettings`, which the codec server reads too); every process that calls the
routing service (the edge, the worker, the CLI) reads how to reach it securely from `RoutingClientSettings`.
Every field has an embedded default, so a fresh checkout runs with no environment at all.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

from pydantic import Field, FilePath, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_DATABASE_URL",
    "EscaladeSettings",
    "PayloadEncryptionSettings",
    "RoutingClientSettings",
    "TemporalConnectionSettings",
    "VapiApiSettings",
    "WorkflowStarterSettings",
    "default_policy_path",
    "describe_settings_error",
    "existing_default_policy",
]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.escalade/escalade.db"


def default_policy_path() -> Path:
    """`examples/techcorp.yaml` of the checkout this package runs from (or of the working directory)."""
    for base in (_PACKAGE_ROOT, Path.cwd()):
        candidate = base / "examples" / "techcorp.yaml"
        if candidate.exists():
            return candidate
    return _PACKAGE_ROOT / "examples" / "techcorp.yaml"


def existing_default_policy() -> Path | None:
    """`default_policy_path()` when that file exists, else None."""
    path = default_policy_path()
    return path if path.exists() else None


def describe_settings_error(cls: type[BaseSettings], error: ValidationError) -> str:
    """`invalid setting ESCALADE_X: why` for the first problem in `error` (raised building `cls`)."""
    first = error.errors()[0]
    prefix = str(cls.model_config.get("env_prefix") or "")
    name = "__".join(str(part) for part in first["loc"]).upper()
    reason = first["msg"].removeprefix("Value error, ")
    if name:
        return f"invalid setting {prefix.upper()}{name}: {reason}"
    return f"invalid settings: {reason}"


class EscaladeSettings(BaseSettings):
    """Fields every Escalade process reads."""

    model_config = SettingsConfigDict(env_prefix="ESCALADE_", env_nested_delimiter="__", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    """SQLAlchemy URL of the store (`sqlite+aiosqlite:///…` or `postgresql+asyncpg://…`): routing's tables,
    the edge's outbox and the worker's dial ledger."""
    routing_address: str = "127.0.0.1:50051"
    """HOST:PORT of the routing service's gRPC endpoint (where it listens, or where its clients call it)."""
    log_json: bool = False
    """One JSON object per log line (for a log shipper) instead of readable console lines."""
    log_level: str = "info"
    """Lowest level logged: debug, info, warning or error."""


class RoutingClientSettings(EscaladeSettings):
    """How a client reaches the routing service: TLS (with a client certificate for mutual TLS) and the
    bearer token it sends. All empty (the default): a plaintext channel without credentials, which is what
    the local dev stack serves. `escalade_platform.routing_channel` builds the channel from these."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)  # a rejected token is never echoed

    routing_tls: bool = False
    """Call the routing service over TLS, trusting the system's CA bundle (set `ESCALADE_ROUTING_CA` to trust
    a private CA instead; either turns TLS on)."""
    routing_ca: FilePath | None = None
    """PEM bundle of the CA(s) that signed the routing server's certificate; setting it turns TLS on."""
    routing_client_cert: FilePath | None = None
    """PEM certificate (chain) this client presents for mutual TLS, with `ESCALADE_ROUTING_CLIENT_KEY`."""
    routing_client_key: FilePath | None = None
    """PEM private key of `ESCALADE_ROUTING_CLIENT_CERT`."""
    routing_server_name: str = ""
    """Name the server's certificate is checked against when it is not the host of `ESCALADE_ROUTING_ADDRESS`
    (e.g. dialling an IP address or a load balancer); empty: that host."""
    routing_token: SecretStr = SecretStr("")
    """Bearer token sent with every routing call (`authorization: Bearer …` metadata); empty: none sent."""

    @model_validator(mode="after")
    def _client_certificate_pairs(self) -> Self:
        if (self.routing_client_cert is None) != (self.routing_client_key is None):
            raise ValueError(
                "ESCALADE_ROUTING_CLIENT_CERT and ESCALADE_ROUTING_CLIENT_KEY go together:"
                " set both or neither"
            )
        return self

    @property
    def routing_uses_tls(self) -> bool:
        """TLS is on: asked for, or implied by a CA or a client certificate."""
        return self.routing_tls or self.routing_ca is not None or self.routing_client_cert is not None


class PayloadEncryptionSettings(EscaladeSettings):
    """The keys Escalade's Temporal clients encrypt payloads with (`escalade_platform.payload_encryption`):
    the worker, the edge's outbox relay, the CLI and the codec server must be given the same keys."""

    temporal_payload_keys: SecretStr = SecretStr("")
    """JSON object of key id -> base64 AES-256 key (32 bytes), e.g. `{"2026-12": "q3Jr…="}`: every key a
    stored payload may name. Empty: the key file, if set; without either, payloads are stored plain."""
    temporal_payload_key_id: str = ""
    """The key id new payloads are encrypted with (one of `ESCALADE_TEMPORAL_PAYLOAD_KEYS`); may stay empty
    when there is exactly one key."""
    temporal_payload_key_file: Path | None = None
    """A JSON file `{"current_key_id": "…", "keys": {"<id>": "<base64 key>"}}`, read when
    `ESCALADE_TEMPORAL_PAYLOAD_KEYS` is empty (`escalade dev` keeps one in its state directory)."""


class TemporalConnectionSettings(PayloadEncryptionSettings):
    """How a Temporal client reaches Temporal: a local dev server (the defaults), a self-hosted cluster
    behind TLS or mTLS, or Temporal Cloud (API key or mTLS). The worker, the edge's outbox relay and the
    CLI's Temporal commands all read these same variables."""

    temporal_address: str | None = "127.0.0.1:7233"
    """Temporal frontend (HOST:PORT)."""
    temporal_namespace: str = "default"
    """Temporal namespace the workflows run in."""
    temporal_tls: bool | None = None
    """Connect with TLS. Unset: on when an API key, a CA certificate, a client certificate or a server name
    is set, off otherwise (a local dev server). On with no CA certificate: the server's certificate is
    checked against the system's trusted roots."""
    temporal_tls_server_ca_cert: Path | None = None
    """PEM file of the CA that signed the Temporal server's certificate (a self-hosted cluster's own CA);
    unset: the system's trusted roots."""
    temporal_tls_client_cert: Path | None = None
    """PEM file of this client's certificate for mTLS (with `temporal_tls_client_key`)."""
    temporal_tls_client_key: Path | None = None
    """PEM file of the private key of `temporal_tls_client_cert`."""
    temporal_tls_server_name: str | None = None
    """Name the server's certificate is checked against (and sent as SNI) when it differs from the host of
    `temporal_address`."""
    temporal_api_key: SecretStr | None = None
    """Temporal Cloud API key, sent as `Authorization: Bearer …`; turns TLS on unless `temporal_tls` is
    false."""

    @field_validator(
        "temporal_address",
        "temporal_tls_server_ca_cert",
        "temporal_tls_client_cert",
        "temporal_tls_client_key",
        "temporal_tls_server_name",
        "temporal_api_key",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("temporal_tls_server_ca_cert", "temporal_tls_client_cert", "temporal_tls_client_key")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        path = value.expanduser()
        if not path.is_file():
            raise ValueError(f"no file at {path}")
        if not os.access(path, os.R_OK):
            raise ValueError(f"{path} is not readable")
        return path

    @model_validator(mode="after")
    def _consistent_tls(self) -> Self:
        if (self.temporal_tls_client_cert is None) != (self.temporal_tls_client_key is None):
            raise ValueError(
                "ESCALADE_TEMPORAL_TLS_CLIENT_CERT and ESCALADE_TEMPORAL_TLS_CLIENT_KEY go together (mTLS)"
            )
        if self.temporal_tls is False and self._tls_options_set():
            raise ValueError("ESCALADE_TEMPORAL_TLS is false but a TLS certificate or server name is set")
        return self

    def _tls_options_set(self) -> bool:
        return any(
            value is not None
            for value in (
                self.temporal_tls_server_ca_cert,
                self.temporal_tls_client_cert,
                self.temporal_tls_server_name,
            )
        )

    def temporal_tls_enabled(self) -> bool:
        """Whether the connection uses TLS (`temporal_tls`, or implied by the API key or a TLS option)."""
        if self.temporal_tls is not None:
            return self.temporal_tls
        return self.temporal_api_key is not None or self._tls_options_set()


class WorkflowStarterSettings(TemporalConnectionSettings):
    """Fields of a process that starts Escalade's workflows (the edge's outbox relay, the worker's
    reconciler)."""

    task_queue: str = "escalade"
    """Temporal task queue the worker polls and the workflows are started on."""
    policy: Path | None = Field(default_factory=existing_default_policy)
    """Policy file the start helpers read business hours, retry and review knobs from (ESCALADE_POLICY)."""


class VapiApiSettings(EscaladeSettings):
    """Access to Vapi's REST API: the worker places callback calls with it, `escalade vapi` provisions
    with it."""

    vapi_api_url: str = "https://api.vapi.ai"
    """Base URL of Vapi's REST API (`escalade dev` points it at its local stand-in)."""
    vapi_api_key: SecretStr = SecretStr("")
    """Vapi private API key; empty: the worker's callbacks only record their dials, provisioning refuses."""
