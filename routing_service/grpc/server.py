"""Bootstrap of the routing gRPC server: `RoutingServer(settings).start()` / `.stop(grace)`, and `serve()`
for `escalade routing serve`.

On start: open the store (which applies the migrations), load the policy, serve `RoutingService` plus the
standard health (`grpc.health.v1`, SERVING once started, open to every caller) and reflection services
(reflection only as `RoutingSettings.reflection_enabled` says), over TLS when the settings name a server
certificate (`grpc.tls`) and behind the authorization guard when they configure tokens or certificate
roles (`grpc.authorization`; without either every caller may call everything, logged as a warning when the
address is not a loopback one), then run the policy
watcher (file change + SIGHUP) and the sweeper. On PostgreSQL it also runs the availability listener, which
republishes the other routing processes' "free slot" notices to this server's WatchAvailability streams
(`store.notify`); health turns SERVING once it listens (or after the connect timeout, while it keeps
retrying). On stop: health NOT_SERVING, availability streams ended, in-flight RPCs given `grace` seconds,
background tasks (the listener among them) cancelled, store closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import signal
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from escalade_platform.heap import freeze_startup_heap
from routing_service.app.availability import AvailabilityBroadcaster
from routing_service.app.decisions import latest_decisions
from routing_service.app.policy_source import PolicySource
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.app.sweeper import run_sweeper
from routing_service.grpc.authorization import Authorizer
from routing_service.grpc.handlers import SERVICE_NAME, add_reflection_service, add_routing_service
from routing_service.grpc.servicer import RoutingServicer, utc_now
from routing_service.grpc.tls import ServerCertificates, server_credentials
from routing_service.metrics import MetricsEndpoint
from routing_service.settings import RoutingSettings
from routing_service.store.notify import PgAvailabilityListener
from routing_service.store.store import Store

__all__ = ["SERVICE_NAME", "RoutingServer", "is_loopback", "run_event_loop", "serve", "warn_if_exposed"]

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class RoutingServer:
    """One routing service instance: gRPC server, store, policy, availability broadcaster, sweeper."""

    def __init__(
        self,
        settings: RoutingSettings,
        *,
        policies: PolicySource | None = None,
        clock: Callable[[], datetime] = utc_now,
        watch_policy: bool = True,
        run_sweeps: bool = True,
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.clock = clock
        self.events = AvailabilityBroadcaster()
        self.health = health.aio.HealthServicer()
        self.store: Store | None = None
        self.listener: PgAvailabilityListener | None = None
        """PostgreSQL: hears the other routing processes' availability notices (None on SQLite)."""
        self.port = 0
        self.certificates: ServerCertificates | None = None
        """The TLS files served (None: plaintext)."""
        self._server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._watch_policy = watch_policy
        self._run_sweeps = run_sweeps

    @property
    def uow(self) -> UnitOfWorkFactory:
        """The store's unit-of-work factory, typed as the port (SqlUnitOfWork's repositories are concrete
        classes, which mypy will not match to the Protocol's mutable attributes)."""
        if self.store is None:
            raise RuntimeError("the routing server is not started")
        return cast(UnitOfWorkFactory, self.store.uow)

    @property
    def address(self) -> str:
        host = self.settings.routing_address.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    async def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        if self.policies is None:
            self.policies = PolicySource.load(self.settings.policy)
        self.store = await Store.open(self.settings.database_url)
        self.policies.follow_decisions(functools.partial(latest_decisions, uow=self.uow))
        try:
            servicer = RoutingServicer(
                uow=self.uow, policies=self.policies, events=self.events, clock=self.clock
            )
            size = self.settings.max_message_bytes
            server = grpc.aio.server(
                options=[
                    ("grpc.max_receive_message_length", size),
                    ("grpc.max_send_message_length", size),
                    ("grpc.so_reuseport", 0),
                ],
            )
            authorizer = Authorizer.from_settings(self.settings)
            add_routing_service(servicer, server, authorizer)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
            if self.settings.reflection_enabled:
                add_reflection_service(server, authorizer)
            tls = server_credentials(self.settings)
            if tls is None:
                self.port = server.add_insecure_port(self.settings.routing_address)
            else:
                credentials, self.certificates = tls
                self.port = server.add_secure_port(self.settings.routing_address, credentials)
            if self.port == 0:
                raise OSError(f"cannot listen on {self.settings.routing_address}")
            await server.start()
        except BaseException:
            await self.store.close()
            self.store = None
            raise
        self._server = server
        self.listener = self.store.availability_listener(self.events.publish_freed)
        if self.listener is not None:
            self._tasks.append(asyncio.create_task(self.listener.run()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.listener.connect_timeout):
                    await self.listener.listening.wait()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self._watch_policy and self.policies.path is not None:
            self._tasks.append(asyncio.create_task(self.policies.watch(self.settings.policy_poll_seconds)))
        if self._run_sweeps:
            ttl = self.settings.callback_ttl_seconds
            self._tasks.append(
                asyncio.create_task(
                    run_sweeper(
                        uow=self.uow,
                        policies=self.policies,
                        clock=self.clock,
                        interval=self.settings.sweep_interval_seconds,
                        callback_ttl=timedelta(seconds=ttl) if ttl else None,
                        events=self.events,
                    )
                )
            )
        log.info(
            "routing_started",
            address=self.address,
            policy=self.policies.current.name,
            tls="mutual" if self.settings.routing_client_ca else ("on" if self.certificates else "off"),
            access="by role" if authorizer is not None else "open",  # a key named authorization is masked
            reflection="on" if self.settings.reflection_enabled else "off",
        )
        warn_if_exposed(self.settings)
        return self.port

    async def wait(self) -> None:
        if self._server is not None:
            await self._server.wait_for_termination()

    async def stop(self, grace: float | None = None) -> None:
        """Graceful: NOT_SERVING first, then `grace` seconds for in-flight calls."""
        if self._server is None:
            return
        await self.health.enter_graceful_shutdown()
        self.events.close()
        await self._server.stop(self.settings.shutdown_grace_seconds if grace is None else grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._server = None
        self.listener = None
        if self.store is not None:
            await self.store.close()
            self.store = None
        log.info("routing_stopped")


def is_loopback(address: str) -> bool:
    """HOST:PORT names this machine only (127.0.0.0/8, ::1, localhost)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def warn_if_exposed(settings: RoutingSettings) -> None:
    """One warning when a non-loopback address is served without authorization, or with tokens in
    plaintext."""
    if is_loopback(settings.routing_address):
        return
    if not settings.authorization_enabled:
        log.warning(
            "routing_authorization_off",
            address=settings.routing_address,
            detail="every caller may call every method: set ESCALADE_ROUTING_TOKENS (or mutual TLS with "
            "ESCALADE_ROUTING_CERT_ROLES) outside the dev stack",
        )
    elif settings.routing_server_cert is None:
        log.warning(
            "routing_tokens_in_plaintext",
            address=settings.routing_address,
            detail="bearer tokens cross the network unencrypted: set ESCALADE_ROUTING_SERVER_CERT and _KEY "
            "unless a service mesh encrypts the hop",
        )


def run_event_loop(main: Coroutine[Any, Any, _T], kind: str = "auto") -> _T:
    """Run `main` on uvloop ("uvloop", or "auto" when it is installed) or the standard asyncio loop."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.run(main)
    return asyncio.run(main)


async def serve(settings: RoutingSettings) -> None:
    """Run until SIGTERM/SIGINT, then stop gracefully (the CLI's `escalade routing serve`)."""
    server = RoutingServer(settings)
    await server.start()
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stopping.set)
    assert server.policies is not None
    server.policies.install_sighup(loop)
    metrics = MetricsEndpoint(server.uow, server.policies)
    if settings.metrics_port:
        host = settings.routing_address.rsplit(":", 1)[0]
        try:
            await metrics.start(host, settings.metrics_port)
        except OSError as exc:  # decisions matter more than their metrics
            log.warning("routing_metrics_unavailable", port=settings.metrics_port, cause=str(exc)[:200])
    freeze_startup_heap()
    try:
        await stopping.wait()
    finally:
        log.info("routing_stopping")
        await metrics.stop()
        await server.stop(settings.shutdown_grace_seconds)
