"""`escalade worker`: run the Temporal worker (callback and review workflows, their activities and the
availability relay) until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Any

import typer

from escalade_cli.console import fail, settings_or_fail

__all__ = ["register"]


async def _run(settings: Any) -> None:
    from workflows.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_worker(settings, stop=stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def worker_command(
    task_queue: Annotated[
        str | None,
        typer.Option("--task-queue", help="Task queue (default: ESCALADE_TASK_QUEUE or escalade)."),
    ] = None,
    temporal_address: Annotated[
        str | None,
        typer.Option("--temporal-address", help="Temporal frontend (default: ESCALADE_TEMPORAL_ADDRESS)."),
    ] = None,
) -> None:
    """Run the callback and review workflows until SIGTERM/SIGINT (graceful shutdown)."""

    from escalade_cli.temporal import check_payload_keys_or_fail
    from escalade_platform.logs import configure_logging
    from workflows.settings import WorkerSettings

    overrides: dict[str, Any] = {}
    if task_queue:
        overrides["task_queue"] = task_queue
    if temporal_address:
        overrides["temporal_address"] = temporal_address
    settings = settings_or_fail(WorkerSettings, **overrides)
    check_payload_keys_or_fail(settings)
    try:
        configure_logging(json=settings.log_json, level=settings.log_level)
    except ValueError as exc:
        fail(f"invalid ESCALADE_LOG_LEVEL: {exc}")
    from escalade_platform.tracing import configure_tracing_from_env

    configure_tracing_from_env("escalade-worker")
    if not settings.vapi_api_key.get_secret_value():
        typer.echo("warning: ESCALADE_VAPI_API_KEY is not set; callbacks cannot dial", err=True)
    from escalade_platform.temporal_client import TemporalSettingsError

    try:
        asyncio.run(_run(settings))
    except TemporalSettingsError as exc:
        fail(f"cannot start the worker: {exc}", code=2)
    except RuntimeError as exc:  # temporalio's "Failed client connect" and similar start-up failures
        fail(f"cannot start the worker (Temporal at {settings.temporal_address}): {exc}")
    except OSError as exc:
        fail(f"cannot start the worker: {exc}")


def register(app: typer.Typer) -> None:
    """Add `escalade worker` to the application."""
    app.command("worker")(worker_command)
