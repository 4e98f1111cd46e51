"""Settings of the routing service process (`escalade routing serve`), read from `ESCALADE_*` variables.

The CLI builds `RoutingSettings()` from the environment and passes it on; tests build it directly. The
security settings (server certificate, client CA, tokens and certificate names per role) are described in
docs/deployment.md; with none of them set the service serves plaintext and authorizes every caller, which is
what the local dev stack runs.
"""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from escalade_platform.settings import EscaladeSettings, default_policy_path

__all__ = ["MIN_TOKEN_CHARS", "Role", "RoutingSettings"]

MIN_TOKEN_CHARS = 16
"""Shortest bearer token the service accepts in its configuration."""


class Role(enum.StrEnum):
    """Who may call what (`routing_service.grpc.authorization.METHOD_ROLES` lists each method's roles)."""

    EDGE = "edge"
    """The webhook edge: resolve escalations, read decisions, forward call events, release assignments."""
    WORKER = "worker"
    """The Temporal worker: claim and finish callbacks, read queues and decisions, watch availability."""
    AGENT = "agent"
    """Agent-side systems (desktop, CRM, telephony): complete or release assignments, set specialists'
    status, list specialists."""
    ADMIN = "admin"
    """Administration: specialists and customers, overrides (release, complete, end a callback), plus
    everything a reader may do."""
    READER = "reader"
    """Dashboards and `escalade status`: queue status, lists, decisions, the availability stream."""


def _role(name: str, setting: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise ValueError(f"{setting}: unknown role {name!r} (roles: {known})") from None


def _check_tokens(tokens: dict[str, list[SecretStr]], setting: str) -> None:
    for role, values in tokens.items():
        _role(role, setting)
        for token in values:
            value = token.get_secret_value()
            if len(value) < MIN_TOKEN_CHARS or not value.isprintable() or any(c.isspace() for c in value):
                raise ValueError(
                    f"{setting}: a token of role {role!r} is shorter than {MIN_TOKEN_CHARS} characters or "
                    "holds spaces or control characters"
                )


def _as_list(value: Any) -> Any:
    """`{"edge": "t"}` and `{"edge": ["t1", "t2"]}` both mean a list per role."""
    if isinstance(value, dict):
        return {key: [item] if isinstance(item, str | SecretStr) else item for key, item in value.items()}
    return value


class RoutingSettings(EscaladeSettings):
    """Everything `escalade routing serve` needs; every field has an embedded default."""

    model_config = SettingsConfigDict(hide_input_in_errors=True)  # a rejected token is never echoed

    policy: Path = Field(default_factory=default_policy_path)
    """The routing policy (YAML); a bad file at start-up is an error, a bad reload keeps the last good one."""
    shutdown_grace_seconds: float = 5.0
    """On SIGTERM, how long in-flight RPCs may still finish before the server stops."""
    max_message_bytes: int = 4 * 1024 * 1024
    """Largest gRPC message the server receives or sends."""
    policy_poll_seconds: float = 2.0
    """How often the policy file is checked for a change (SIGHUP reloads at once)."""
    sweep_interval_seconds: float = 15.0
    """How often expired holds, talk limits, ended wrap-ups and expired callbacks are swept."""
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    """"auto": uvloop when installed (it ships with uvicorn[standard]), else asyncio."""
    callback_ttl_seconds: float | None = None
    """Overrides the policy's queue.callback_ttl when set."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """Prometheus `/metrics` port on the routing address's host (ESCALADE_METRICS_PORT); 0 disables it."""
    routing_server_cert: FilePath | None = None
    """PEM certificate (chain) the gRPC server presents; with `ESCALADE_ROUTING_SERVER_KEY` it serves TLS
    only. A changed file is picked up by the next connection's handshake."""
    routing_server_key: FilePath | None = None
    """PEM private key of `ESCALADE_ROUTING_SERVER_CERT`."""
    routing_client_ca: FilePath | None = None
    """PEM bundle of the CA(s) that sign client certificates: set, every client must present one (mutual
    TLS). Needs the server certificate and key."""
    routing_tokens: dict[str, list[SecretStr]] = Field(default_factory=dict)
    """Bearer tokens per role, JSON: `{"edge": "…", "admin": ["…", "…"]}` (several per role let a token be
    rotated; a token listed under several roles holds all of them). Each is at least 16 characters. Any
    token or certificate role configured turns authorization on."""
    routing_tokens_file: FilePath | None = None
    """A JSON file of the same shape as `ESCALADE_ROUTING_TOKENS` (e.g. a mounted secret), merged with it;
    read at start-up."""
    routing_cert_roles: dict[str, list[str]] = Field(default_factory=dict)
    """Client certificate names per role for mutual TLS, JSON: `{"edge": ["edge.internal"]}`; a name matches
    the certificate's subject CN or one of its subject alternative names. A token, when sent, wins over the
    certificate."""
    routing_reflection: bool | None = None
    """gRPC server reflection; unset: on without authorization (the dev stack), off with it. On together
    with authorization, reflection answers authenticated callers of any role only."""

    @field_validator("routing_tokens", "routing_cert_roles", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("routing_tokens", mode="after")
    @classmethod
    def _known_roles_strong_tokens(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        _check_tokens(value, "ESCALADE_ROUTING_TOKENS")
        return value

    @field_validator("routing_cert_roles", mode="after")
    @classmethod
    def _known_roles_named_certificates(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, names in value.items():
            _role(role, "ESCALADE_ROUTING_CERT_ROLES")
            if not all(name.strip() for name in names):
                raise ValueError(f"an empty certificate name under role {role!r}")
        return value

    @model_validator(mode="after")
    def _security(self) -> Self:
        if (self.routing_server_cert is None) != (self.routing_server_key is None):
            raise ValueError(
                "ESCALADE_ROUTING_SERVER_CERT and ESCALADE_ROUTING_SERVER_KEY go together:"
                " set both or neither"
            )
        if self.routing_client_ca is not None and self.routing_server_cert is None:
            raise ValueError(
                "ESCALADE_ROUTING_CLIENT_CA (mutual TLS) needs ESCALADE_ROUTING_SERVER_CERT and _KEY"
            )
        if self.routing_cert_roles and self.routing_client_ca is None:
            raise ValueError("ESCALADE_ROUTING_CERT_ROLES needs ESCALADE_ROUTING_CLIENT_CA (mutual TLS)")
        if self.routing_tokens_file is not None:
            for role, tokens in _tokens_file(self.routing_tokens_file).items():
                self.routing_tokens.setdefault(role, []).extend(tokens)
        return self

    @property
    def authorization_enabled(self) -> bool:
        """Callers must authenticate: a token or a certificate role is configured."""
        return any(self.routing_tokens.values()) or any(self.routing_cert_roles.values())

    @property
    def reflection_enabled(self) -> bool:
        return (
            self.routing_reflection if self.routing_reflection is not None else not self.authorization_enabled
        )


def _tokens_file(path: Path) -> dict[str, list[SecretStr]]:
    """The role -> tokens map of ESCALADE_ROUTING_TOKENS_FILE (never echoing its content in an error)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise ValueError(f"ESCALADE_ROUTING_TOKENS_FILE {path}: {reason}") from None
    shaped = _as_list(raw)
    if not isinstance(shaped, dict) or not all(
        isinstance(key, str) and isinstance(items, list) and all(isinstance(item, str) for item in items)
        for key, items in shaped.items()
    ):
        raise ValueError(
            f"ESCALADE_ROUTING_TOKENS_FILE {path}: expected a JSON object of role -> token or list of tokens"
        )
    tokens = {role: [SecretStr(item) for item in items] for role, items in shaped.items()}
    _check_tokens(tokens, f"ESCALADE_ROUTING_TOKENS_FILE {path}")
    return tokens
