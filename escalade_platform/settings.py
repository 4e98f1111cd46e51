"""The settings every Escalade process shares, read from `ESCALADE_*` environment variables.

Each service's settings class (`routing_service.settings.RoutingSettings`,
`webhook_edge.settings.EdgeSettings`, `workflows.settings.WorkerSettings`) extends `EscaladeSettings` with
its own fields; the edge and the worker, which both start workflows, share `WorkflowStarterSettings`. Every
field has an embedded default, so a fresh checkout runs with no environment at all.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "DEFAULT_DATABASE_URL",
    "EscaladeSettings",
    "VapiApiSettings",
    "WorkflowStarterSettings",
    "default_policy_path",
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


class WorkflowStarterSettings(EscaladeSettings):
    """Fields of a process that starts Escalade's workflows (the edge's outbox relay, the worker's
    reconciler)."""

    temporal_namespace: str = "default"
    """Temporal namespace the workflows run in."""
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
