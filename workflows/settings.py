"""Settings of the Temporal worker process (`escalade worker`), read from `ESCALADE_*` variables.

The CLI builds `WorkerSettings()` from the environment; tests build it directly.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["WorkerSettings"]


def _default_policy() -> Path | None:
    from routing_service.settings import default_policy_path

    path = default_policy_path()
    return path if path.exists() else None


class WorkerSettings(BaseSettings):
    """Everything `escalade worker` needs; every field has an embedded default."""

    model_config = SettingsConfigDict(env_prefix="ESCALADE_", env_nested_delimiter="__", extra="ignore")

    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "escalade"
    routing_address: str = "127.0.0.1:50051"
    vapi_api_url: str = "https://api.vapi.ai"
    vapi_api_key: SecretStr = SecretStr("")
    vapi_assistant_id: str = ""
    vapi_phone_number_id: str = ""
    database_url: str = "sqlite+aiosqlite:///.escalade/escalade.db"
    """Where the dial ledger and review records live (the worker's own tables)."""
    policy: Path | None = Field(default_factory=_default_policy)
    """Read by the start helpers for business hours, retry policy and review knobs."""
    vapi_poll_seconds: float = 5.0
    """How often a dialled callback's status is read from Vapi while the call runs."""
    rpc_timeout_seconds: float = 10.0
    relay_backoff_max_seconds: float = 30.0
    """Longest pause before the availability relay reconnects to a dropped stream."""
    register_search_attributes: bool = True
    """Add EscalationTier/Category/Complexity and CallbackState to the namespace at start-up if missing."""
    shutdown_grace_seconds: float = 10.0
    max_cached_workflows: int = Field(default=10_000, ge=0)
    """Workflows kept in the worker's memory between tasks. Every waiting callback is a running workflow;
    one evicted from the cache is rebuilt (a new sandboxed instance replaying its history) on its next task,
    which with 10,000 waiting and Temporal's default of 1,000 kept the worker busy for minutes and delayed a
    freed specialist's dial by 6-8 s (0.8-0.9 s with all 10,000 cached). Measured cost: about 135 KiB of
    worker memory per cached workflow (10,000 cached: 1.5 GiB RSS; 1,000: 0.3 GiB)."""
    log_json: bool = False
    log_level: str = "info"
