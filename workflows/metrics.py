"""The worker's Prometheus endpoint: the Temporal SDK's own exporter, plus Escalade's counters.

`metrics_runtime(address)` builds a temporalio `Runtime` whose telemetry serves `GET /metrics` on
`address` (HOST:PORT): the SDK's worker metrics (`temporal_workflow_task_*`, `temporal_activity_*`, poll and
slot figures, sticky-cache size, ...) and the counters created on its `metric_meter`, such as
`escalade_callbacks_reconciled` (callback workflows the reconciler had to start because the edge's outbox
never delivered them). The worker connects its Temporal client with that runtime.

An address that cannot be bound (another worker on the host) is logged and the worker runs without
metrics, as routing does with its metrics port.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

__all__ = ["RECONCILED", "metrics_runtime", "reconciled_counter"]

log = logging.getLogger(__name__)

RECONCILED = "escalade_callbacks_reconciled"


def metrics_runtime(address: str) -> Runtime | None:
    """A runtime exporting Prometheus metrics on `address`; None when `address` is empty or unusable."""
    if not address:
        return None
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except Exception as exc:  # the SDK core reports a busy or invalid address as a plain error
        log.warning("worker metrics unavailable on %s: %s", address, exc)
        return None


def reconciled_counter(runtime: Runtime) -> Callable[[], None]:
    """Adds one to `escalade_callbacks_reconciled` on `runtime`'s metrics."""
    counter = runtime.metric_meter.create_counter(
        RECONCILED, "Callback workflows the worker's reconciler started because their outbox start was lost."
    )

    def add_one() -> None:
        counter.add(1)

    return add_one
