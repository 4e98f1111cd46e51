"""`escalade routing serve`: run the routing gRPC service (and the client helpers other commands share:
every command that calls routing dials it with the TLS and token of `RoutingClientSettings`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from escalade_cli.console import fail, settings_or_fail

if TYPE_CHECKING:
    from escalade_platform.settings import RoutingClientSettings

__all__ = [
    "ADDRESS_OPTION",
    "RPC_TIMEOUT",
    "client_settings",
    "register",
    "routing_address",
    "routing_stub",
]

RPC_TIMEOUT = 10.0

ADDRESS_OPTION = typer.Option(
    "--address", help="Routing service address (default: ESCALADE_ROUTING_ADDRESS or 127.0.0.1:50051)."
)


def client_settings(address: str | None = None) -> RoutingClientSettings:
    """How to reach routing, from ESCALADE_ROUTING_* (TLS, token), with `address` winning over
    ESCALADE_ROUTING_ADDRESS; a bad setting fails with a readable message (exit 2)."""
    from escalade_platform.settings import RoutingClientSettings

    overrides = {"routing_address": address} if address else {}
    return settings_or_fail(RoutingClientSettings, **overrides)


def routing_address(address: str | None) -> str:
    """The explicit address, else the settings' (ESCALADE_ROUTING_ADDRESS)."""
    return client_settings(address).routing_address


@contextmanager
def routing_stub(address: str | None) -> Iterator[Any]:
    """A blocking `RoutingServiceStub` on a channel with the client settings' TLS and token, closed
    afterwards (an unreadable TLS file raises `RoutingChannelError`, an OSError)."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
    from escalade_platform.routing_channel import blocking_routing_channel

    with blocking_routing_channel(client_settings(address)) as channel:
        yield routing_pb2_grpc.RoutingServiceStub(channel)


def _looks_like_address(address: str) -> bool:
    host, _, port = address.rpartition(":")
    return bool(host) and port.isdigit() and 0 <= int(port) <= 65535


def serve_command(
    address: Annotated[
        str | None, typer.Option("--address", help="Listen address (default 127.0.0.1:50051).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy YAML (default examples/techcorp.yaml).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", help="Prometheus /metrics port (default 9464; 0 disables).", min=0),
    ] = None,
) -> None:
    """Run the routing gRPC service until SIGTERM/SIGINT (graceful shutdown)."""
    from pydantic import ValidationError

    from escalade_platform.logs import configure_logging
    from routing_service.domain.errors import EscalationError
    from routing_service.grpc.server import run_event_loop, serve
    from routing_service.policy.errors import PolicyError
    from routing_service.settings import RoutingSettings

    overrides: dict[str, Any] = {}
    if address is not None and not _looks_like_address(address):
        fail(f"--address must be HOST:PORT (e.g. 127.0.0.1:50051), got {address!r}")
    if address:
        overrides["routing_address"] = address
    if policy is not None:
        overrides["policy"] = policy
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    settings = settings_or_fail(RoutingSettings, **overrides)
    try:
        configure_logging(json=settings.log_json, level=settings.log_level)
    except ValueError as exc:
        fail(f"invalid ESCALADE_LOG_LEVEL: {exc}")
    from escalade_platform.tracing import configure_tracing_from_env

    try:
        configure_tracing_from_env("escalade-routing")
    except ValidationError as exc:
        fail(f"invalid ESCALADE_OTEL_* setting: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
    try:
        run_event_loop(serve(settings), settings.event_loop)
    except PolicyError as exc:
        fail(f"policy rejected:\n{exc}")
    except EscalationError as exc:
        fail(f"cannot start: {exc.message}")
    except (OSError, RuntimeError) as exc:
        fail(f"cannot start on {settings.routing_address}: {exc}")
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    """Add `escalade routing ...` to the application."""
    routing = typer.Typer(help="The routing gRPC service.", no_args_is_help=True)
    routing.command("serve")(serve_command)
    app.add_typer(routing, name="routing")
