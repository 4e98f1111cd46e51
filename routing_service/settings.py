"""Settings of the routing service process (`escalade routing serve`), read from `ESCALADE_*` variables.

The CLI builds `RoutingSettings()` from the environment and passes it on; tests build it directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from escalade_platform.settings import EscaladeSettings, default_policy_path

__all__ = ["RoutingSettings"]


class RoutingSettings(EscaladeSettings):
    """Everything `escalade routing serve` needs; every field has an embedded default."""

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
