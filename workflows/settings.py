"""Settings of the Temporal worker process (`escalade worker`), read from `ESCALADE_*` variables.

The CLI builds `WorkerSettings()` from the environment; tests build it directly.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from escalade_platform.settings import RoutingClientSettings, VapiApiSettings, WorkflowStarterSettings

__all__ = ["WorkerSettings"]


class WorkerSettings(WorkflowStarterSettings, VapiApiSettings, RoutingClientSettings):
    """Everything `escalade worker` needs; every field has an embedded default."""

    temporal_address: str = "127.0.0.1:7233"
    """Temporal frontend (HOST:PORT). The TLS and API key settings are `TemporalConnectionSettings`'s."""
    vapi_assistant_id: str = ""
    """The Vapi assistant that places callback calls."""
    vapi_phone_number_id: str = ""
    """The Vapi phone number callback calls come from."""
    vapi_poll_seconds: float = 5.0
    """How often a dialled callback's status is read from Vapi while the call runs."""
    rpc_timeout_seconds: float = 10.0
    """Deadline of each gRPC call the worker makes to the routing service."""
    relay_backoff_max_seconds: float = 30.0
    """Longest pause before the availability relay reconnects to a dropped stream."""
    register_search_attributes: bool = True
    """Add EscalationTier/Category/Complexity, CallbackState and CallbackWidening to the namespace at start-up
    if missing."""
    reconcile_seconds: float = Field(default=60.0, ge=0)
    """How often the callback reconciler starts the workflow of any open callback ticket in routing that has
    none (a start the edge's outbox lost); 0 disables it."""
    reconcile_grace_seconds: float = Field(default=30.0, ge=0)
    """Tickets younger than this are left to the edge's outbox, which normally delivers their start first."""
    worker_metrics_address: str = "127.0.0.1:9465"
    """Prometheus `/metrics` of the worker (the Temporal SDK's worker metrics and the reconciler's count),
    HOST:PORT; empty disables it."""
    temporal_ui_url: str = "http://localhost:8233"
    """Base URL of the Temporal UI; review notifications link to the review at
    `<url>/namespaces/<namespace>/workflows/<workflow id>` (the dev server's UI by default)."""
    shutdown_grace_seconds: float = 10.0
    """On SIGTERM, how long running activities may still finish before the worker stops."""
    max_cached_workflows: int = Field(default=2_000, ge=0)
    """Workflows kept in the worker's memory between tasks. Every waiting callback is a running workflow;
    one evicted from the cache is rebuilt on its next task by replaying its (short) history, so this bounds
    the worker's memory whatever the number of waiting callbacks (the callbacks benchmark measures the
    memory per cached workflow)."""
    workflow_sandbox: Literal["passthrough", "strict"] = "passthrough"
    """`passthrough` (default): workflow code runs in Temporal's sandbox with every module imported once and
    shared, as `temporalio`'s `SandboxRestrictions.with_passthrough_all_modules()` does. `strict`: the sandbox
    re-imports the workflow modules for every workflow run, which also rejects non-deterministic calls such as
    `datetime.now()` at run time, but costs more memory per cached workflow and, where bytecode is not cached
    (PYTHONDONTWRITEBYTECODE), a compile of the module for every workflow it starts or replays, which
    dominates the worker's CPU when many callbacks start. The workflow tests run both workflows, scenario by
    scenario, on workers in the `strict` sandbox and replay every recorded history under it (a test checks
    that they do), so the workflow code `passthrough` runs has passed the strict checks; the tests that start
    the real worker (`run_worker`, `escalade worker`) run it as shipped, with `passthrough`."""
