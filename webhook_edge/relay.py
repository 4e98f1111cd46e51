"""The outbox relay: delivers the workflow starts the edge recorded in `edge_outbox` to Temporal.

The edge never talks to Temporal on a webhook's path. It records the start (`Outbox.record`, unique per
workflow id) and nudges this relay, which runs as a background task in the edge's lifespan:

    loop:  entries = outbox.pending(batch)            (undelivered and due, oldest first)
           for each: start_follow_up(client, entry.input())     (start-once: the workflow id is the key)
               started, or Temporal says it already exists  -> mark_delivered
               Temporal unreachable / timed out             -> mark_failed, retry after backoff
               payload the workflow cannot take             -> mark_failed, parked for a day, logged
           sleep until nudged, the earliest retry it scheduled, or `poll_seconds`

Guarantees: a start is never lost (the row stays pending until Temporal accepted it or already had it)
and never duplicated (the workflow id is `callback-<call id>` / `review-<call id>`, started with
USE_EXISTING / REJECT_DUPLICATE; a start that timed out after reaching Temporal is delivered again and
found to exist). Several relays on one database (edge replicas) are therefore harmless too.

Backoff: `min(backoff_max, backoff_min * 2**attempts)`, with "equal jitter" (half fixed, half random).
The Temporal client is connected lazily on the first due entry and dropped after a connection failure
so the next attempt connects afresh. Nothing here logs a phone number: entries are named by workflow id.

Where it runs: in every edge process by default (`start_relay` in the lifespan; on when
`ESCALADE_TEMPORAL_ADDRESS` is set and `ESCALADE_RELAY_ENABLED` is not false). Deployments that prefer one
relay can set `ESCALADE_RELAY_ENABLED=false` on the edges and run `python -m webhook_edge.relay` (same
`ESCALADE_*` settings: database URL, Temporal address/namespace/TLS, task queue) as its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Protocol

import structlog
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.service import RPCError

from escalade_platform.payload_encryption import payload_keys, temporal_data_converter
from escalade_platform.settings import TemporalConnectionSettings
from escalade_platform.temporal_client import TemporalSettingsError, connect_temporal, temporal_tls
from routing_service.domain.errors import InvalidRequest
from routing_service.domain.models import Policy
from webhook_edge.outbox import Outbox, OutboxEntry
from webhook_edge.settings import EdgeSettings
from workflows.client import DEFAULT_TASK_QUEUE, StartResult, start_follow_up

__all__ = [
    "OutboxRelay",
    "Starter",
    "backoff_delay",
    "main",
    "run_standalone",
    "start_relay",
    "temporal_connector",
]

log = structlog.get_logger(__name__)

INVALID_PAYLOAD_RETRY = timedelta(days=1)
"""An entry the workflow input refuses is kept (never deleted) and looked at again a day later."""


class Starter(Protocol):
    """Starts one outbox entry's workflow (the real one calls `workflows.client.start_follow_up`)."""

    async def __call__(self, client: Client, entry: OutboxEntry) -> StartResult: ...


def backoff_delay(
    attempts: int, *, minimum: float, maximum: float, rng: Callable[[], float] = random.random
) -> float:
    """Seconds before the next try after `attempts` failed ones: exponential, capped, equal jitter."""
    exponent = min(max(attempts, 0), 30)
    ceiling = min(maximum, minimum * 2.0**exponent)
    return ceiling / 2 + rng() * ceiling / 2


def temporal_connector(
    settings: TemporalConnectionSettings, *, data_converter: DataConverter | None = None
) -> Callable[[], Awaitable[Client]]:
    """A `connect` callable for the Temporal the settings name (`connect_temporal`: address, namespace, TLS,
    API key). The TLS files are read once here first, so an unreadable one fails at start-up
    (`TemporalSettingsError`) rather than on the first delivery."""
    temporal_tls(settings)

    async def connect() -> Client:
        return await connect_temporal(settings, data_converter=data_converter)

    return connect


class OutboxRelay:
    """Delivers pending outbox entries to Temporal until `stop()` (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        connect: Callable[[], Awaitable[Client]],
        *,
        policy: Policy | None = None,
        task_queue: str = DEFAULT_TASK_QUEUE,
        batch: int = 100,
        poll_seconds: float = 2.0,
        start_timeout_seconds: float = 10.0,
        backoff_min_seconds: float = 1.0,
        backoff_max_seconds: float = 60.0,
        starter: Starter | None = None,
    ) -> None:
        self._outbox = outbox
        self._connect = connect
        self._policy = policy
        self._task_queue = task_queue
        self._batch = batch
        self._poll = poll_seconds
        self._start_timeout = start_timeout_seconds
        self._backoff_min = backoff_min_seconds
        self._backoff_max = backoff_max_seconds
        self._starter = starter or self._start
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._next_retry: datetime | None = None
        self.delivered = 0
        """Entries marked delivered by this relay (for tests and logs)."""

    def nudge(self) -> None:
        """Wake the relay now (the edge calls this right after recording an entry)."""
        self._wake.set()

    def stop(self) -> None:
        """Ask `run()` to return after the entry it is delivering."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver due entries until `stop()` or cancellation; errors are logged, never raised."""
        log.info("outbox_relay_started", task_queue=self._task_queue)
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self.deliver_due()
                except Exception as exc:  # the outbox's database hiccuped: try again on the next round
                    log.warning("outbox_relay_pass_failed", cause=type(exc).__name__, detail=str(exc)[:200])
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._sleep_seconds()):
                        await self._wake.wait()
        finally:
            log.info("outbox_relay_stopped", delivered=self.delivered)

    def _sleep_seconds(self) -> float:
        if self._next_retry is None:
            return self._poll
        until = (self._next_retry - datetime.now(UTC)).total_seconds()
        return max(0.05, min(self._poll, until))

    async def deliver_due(self) -> int:
        """One pass over the due entries (repeated while full batches come back); returns deliveries."""
        delivered = 0
        self._next_retry = None
        while not self._stopping:
            entries = await self._outbox.pending(self._batch)
            for index, entry in enumerate(entries):
                if self._stopping:
                    return delivered
                outcome = await self._deliver(entry)
                if outcome is True:
                    delivered += 1
                elif outcome is None:  # Temporal unreachable: the rest of the batch would fail alike
                    for later in entries[index + 1 :]:
                        await self._fail(later, "not tried: Temporal unreachable")
                    return delivered
            if len(entries) < self._batch:
                return delivered
        return delivered

    async def _start(self, client: Client, entry: OutboxEntry) -> StartResult:
        return await start_follow_up(client, entry.input(), policy=self._policy, task_queue=self._task_queue)

    async def _client_or_none(self) -> Client | None:
        if self._client is None:
            try:
                async with asyncio.timeout(self._start_timeout):
                    self._client = await self._connect()
            except (RuntimeError, OSError, RPCError, TimeoutError, TemporalSettingsError) as exc:
                log.warning("temporal_unreachable", cause=type(exc).__name__, detail=str(exc)[:200])
                return None
        return self._client

    async def _deliver(self, entry: OutboxEntry) -> bool | None:
        """True when delivered, False when parked (bad payload), None when Temporal is unreachable."""
        client = await self._client_or_none()
        if client is None:
            await self._fail(entry, "Temporal unreachable (connect failed)")
            return None
        try:
            async with asyncio.timeout(self._start_timeout):
                result = await self._starter(client, entry)
        except InvalidRequest as exc:
            retry_at = datetime.now(UTC) + INVALID_PAYLOAD_RETRY
            detail = "; ".join(f"{field}: {why}" for field, why in exc.violations) or exc.message
            log.error("outbox_entry_invalid", workflow_id=entry.workflow_id, detail=detail[:300])
            await self._outbox.mark_failed(entry.id, f"invalid payload: {detail}", retry_at)
            return False
        except (RPCError, RuntimeError, OSError, TimeoutError) as exc:
            self._client = None  # connect afresh next time
            log.warning(
                "outbox_start_failed",
                workflow_id=entry.workflow_id,
                attempts=entry.attempts + 1,
                cause=type(exc).__name__,
                detail=str(exc)[:200],
            )
            await self._fail(entry, f"{type(exc).__name__}: {exc}")
            return None
        await self._outbox.mark_delivered(entry.id)
        self.delivered += 1
        log.info(
            "outbox_delivered",
            kind=entry.kind,
            workflow_id=entry.workflow_id,
            already_existed=result.already_done,
            attempts=entry.attempts + 1,
        )
        return True

    async def _fail(self, entry: OutboxEntry, error: str) -> None:
        delay = backoff_delay(entry.attempts, minimum=self._backoff_min, maximum=self._backoff_max)
        retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        await self._outbox.mark_failed(entry.id, error, retry_at)
        if self._next_retry is None or retry_at < self._next_retry:
            self._next_retry = retry_at


def _load_policy(settings: EdgeSettings) -> Policy | None:
    if settings.policy is None:
        return None
    from routing_service.policy.loader import load_policy

    try:
        return load_policy(settings.policy)
    except Exception as exc:  # the relay still delivers, with the workflows' built-in defaults
        log.warning("outbox_relay_policy_unreadable", path=str(settings.policy), cause=type(exc).__name__)
        return None


@asynccontextmanager
async def start_relay(
    settings: EdgeSettings, outbox: Outbox | None, *, stop_timeout_seconds: float = 5.0
) -> AsyncIterator[OutboxRelay | None]:
    """Run an `OutboxRelay` as a background task for the duration of the block (the edge's lifespan).

    Yields None (and relays nothing) when `relay_enabled` is off, `temporal_address` is unset or there is
    no outbox. On exit the relay is asked to stop and, if it is stuck in a start, cancelled.
    """
    if not settings.relay_enabled or not settings.temporal_address or outbox is None:
        if outbox is not None:
            log.info("outbox_relay_off", reason="relay disabled or ESCALADE_TEMPORAL_ADDRESS unset")
        yield None
        return
    relay = OutboxRelay(
        outbox,
        temporal_connector(settings, data_converter=temporal_data_converter(payload_keys(settings))),
        policy=_load_policy(settings),
        task_queue=settings.task_queue,
        poll_seconds=settings.relay_poll_seconds,
        backoff_max_seconds=settings.relay_backoff_max_seconds,
    )
    task = asyncio.create_task(relay.run(), name="outbox-relay")
    try:
        yield relay
    finally:
        relay.stop()
        try:
            async with asyncio.timeout(stop_timeout_seconds):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_standalone(settings: EdgeSettings, stop: asyncio.Event) -> None:
    """Relay the outbox at `settings.database_url` until `stop` is set (`python -m webhook_edge.relay`)."""
    if not settings.temporal_address:
        raise ValueError("ESCALADE_TEMPORAL_ADDRESS is not set: there is nothing to relay to")
    outbox = await Outbox.open(settings.database_url)
    try:
        standalone = settings.model_copy(update={"relay_enabled": True})
        async with start_relay(standalone, outbox):
            await stop.wait()
    finally:
        await outbox.close()


def main() -> None:
    """Run the relay as its own process until SIGTERM/SIGINT."""
    import signal
    import sys

    from pydantic import ValidationError

    from escalade_platform.logs import configure_logging
    from escalade_platform.settings import describe_settings_error

    try:
        settings = EdgeSettings()
    except ValidationError as exc:
        print(f"error: {describe_settings_error(EdgeSettings, exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(json=settings.log_json, level=settings.log_level)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_standalone(settings, stop)

    try:
        asyncio.run(serve())
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
