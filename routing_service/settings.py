"""Settings of the routing service process (`escalade routing serve`), read from `ESCALADE_*` variables.

The CLI builds `RoutingSettings()` from the environment and passes it on; tests build it directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["RoutingSettings", "default_policy_path"]

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def default_policy_path() -> Path:
    """`examples/techcorp.yaml` of the checkout this package runs from (or of the working directory)."""
    for base in (_PACKAGE_ROOT, Path.cwd()):
        candidate = base / "examples" / "techcorp.yaml"
        if candidate.exists():
            return candidate
    return _PACKAGE_ROOT / "examples" / "techcorp.yaml"


class RoutingSettings(BaseSettings):
    """Everything `escalade routing serve` needs; every field has an embedded default."""

    model_config = SettingsConfigDict(env_prefix="ESCALADE_", env_nested_delimiter="__", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///.escalade/escalade.db"
    policy: Path = Field(default_factory=default_policy_path)
    routing_address: str = "127.0.0.1:50051"
    log_json: bool = False
    log_level: str = "info"
    shutdown_grace_seconds: float = 5.0
    max_message_bytes: int = 4 * 1024 * 1024
    policy_poll_seconds: float = 2.0
    sweep_interval_seconds: float = 15.0
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    """"auto": uvloop when installed (it ships with uvicorn[standard]), else asyncio."""
    callback_ttl_seconds: float | None = None
    """Overrides the policy's queue.callback_ttl when set."""
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    """Prometheus `/metrics` port on the routing address's host (ESCALADE_METRICS_PORT); 0 disables it."""
