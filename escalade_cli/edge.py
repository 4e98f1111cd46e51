"""`escalade edge serve`: run the Vapi webhook edge (FastAPI on uvicorn) until SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer

from escalade_cli.console import err_console, fail, settings_or_fail

__all__ = ["register", "serve_command"]


def serve_command(
    host: Annotated[str | None, typer.Option("--host", help="Listen host (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Listen port (default 3000).")] = None,
    insecure_dev: Annotated[
        bool,
        typer.Option(
            "--insecure-dev",
            help="Accept unauthenticated webhooks when ESCALADE_VAPI_SECRET is unset (local use only).",
        ),
    ] = False,
) -> None:
    """Serve POST /webhook/vapi (+ /webhook/escalation), /healthz and /readyz until SIGTERM/SIGINT."""
    from pydantic import ValidationError

    from escalade_cli.temporal import check_payload_keys_or_fail
    from webhook_edge.settings import EdgeSettings

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if insecure_dev:
        overrides["insecure_dev"] = True
    settings = settings_or_fail(EdgeSettings, **overrides)
    check_payload_keys_or_fail(settings)
    if not settings.secrets() and not settings.insecure_dev:
        fail(
            "no webhook secret: set ESCALADE_VAPI_SECRET to the secret Vapi sends "
            "(or pass --insecure-dev to accept unauthenticated webhooks locally)",
            code=2,
        )
    if not settings.secrets():
        err_console.print(
            "[bold yellow]warning:[/] --insecure-dev: webhooks are NOT authenticated; never expose this edge",
            highlight=False,
        )

    from escalade_platform.logs import configure_logging

    try:
        configure_logging(json=settings.log_json, level=settings.log_level)
    except ValueError as exc:
        fail(f"invalid ESCALADE_LOG_LEVEL: {exc}", code=2)
    from escalade_platform.tracing import configure_tracing_from_env

    try:
        configure_tracing_from_env("escalade-edge")
    except ValidationError as exc:
        fail(f"invalid ESCALADE_OTEL_* setting: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", code=2)
    if settings.relay_enabled and settings.temporal_address:
        from escalade_platform.temporal_client import TemporalSettingsError, temporal_tls

        try:
            temporal_tls(settings)  # the outbox relay's TLS files, read before the edge starts serving
        except TemporalSettingsError as exc:
            fail(str(exc), code=2)
    run(settings)


def run(settings: Any) -> None:
    """Run uvicorn in this process; uvicorn's own handlers turn SIGTERM/SIGINT into a graceful shutdown."""
    import uvicorn

    from webhook_edge.app import create_app

    app = create_app(settings, freeze_heap=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the handler that was
    # installed before it ran; a no-op there makes a requested shutdown exit 0 instead of dying by signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    try:
        server.run()
    except OSError as exc:  # pragma: no cover - e.g. port in use
        fail(f"cannot listen on {settings.host}:{settings.port}: {exc}")
    if not server.started:
        fail(f"the edge did not start on {settings.host}:{settings.port} (see the log above)")


def register(app: typer.Typer) -> None:
    """Add `escalade edge serve` to the `escalade` application."""
    edge = typer.Typer(name="edge", help="The Vapi webhook edge.", no_args_is_help=True)
    edge.command("serve")(serve_command)
    app.add_typer(edge, name="edge")
