"""Availability notices between routing processes on one PostgreSQL database (LISTEN/NOTIFY).

    replica A: release ── UnitOfWork.announce ── "SELECT pg_notify('escalade_availability', payload); COMMIT"
                                                                           │ (delivered at commit only)
    replica B: PgAvailabilityListener (own asyncpg connection, LISTEN) ──> broadcaster ──> watchers

**Sending, in the transaction.** `UnitOfWork.announce` queues `SELECT pg_notify(...)` on the link
(`PostgresLink.notify`), which sends it with the transaction's `COMMIT`, in the same round trip.
PostgreSQL delivers a notification when, and only if, its transaction commits, so a release that rolls back
announces nothing and a listener never hears of a slot before the slot is free in the database. Sending
after the commit on another pooled connection would cost a checkout and a round trip as well, and an event
could be lost between the commit and the send. Riding with the `COMMIT`, a notice costs no round trip.

**Payload.** Compact JSON, `{"origin": ..., "agent_id": ..., "team_ids": [...], "free_slots": n, "at":
ISO-8601}`. `origin` is unique to the `Store` (one per routing server: a process normally runs one; tests
run two in one process). Every listener also hears its own process's notices and skips them: the use case
already published those locally after its commit. An agent has at most 100 teams of 64 characters, which
fits NOTIFY's 8,000-byte limit; longer payloads are split by teams all the same.

**Listening.** Each routing server on PostgreSQL runs one `PgAvailabilityListener` task: a dedicated asyncpg
connection (not from the pool) with `add_listener`. When the connection drops (server restart, a terminated
backend, a dead link caught by a periodic `SELECT 1`) it logs one warning line and reconnects with
exponential backoff. A reconnection publishes nothing of its own: notices sent while it was away are lost,
as are events to a watcher whose stream drops; watchers make up for that themselves (the availability relay
wakes every team's queue head when it reconnects, and callbacks re-claim on a safety timer).

SQLite has no such channel: one routing process per SQLite file, whose in-process broadcaster sees everything.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import structlog
from sqlalchemy.engine import URL

from routing_service.app.ports import AgentFreed
from routing_service.store.postgres import asyncpg_connect_args

__all__ = [
    "CHANNEL",
    "PgAvailabilityListener",
    "decode_notice",
    "encode_notices",
    "new_origin",
]

log = structlog.get_logger(__name__)

CHANNEL = "escalade_availability"
MAX_PAYLOAD_BYTES = 7_999
"""PostgreSQL's NOTIFY payload limit is 8,000 bytes (in the server encoding)."""


def new_origin() -> str:
    """An id for the notices of one store (routing server)."""
    return uuid.uuid4().hex[:16]


def _payload(origin: str, freed: AgentFreed, team_ids: tuple[str, ...]) -> str:
    body = {
        "origin": origin,
        "agent_id": freed.agent_id,
        "team_ids": list(team_ids),
        "free_slots": freed.free_slots,
        "at": freed.at.isoformat(),
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def encode_notices(origin: str, freed: AgentFreed) -> list[str]:
    """The payload(s) announcing `freed`: one, unless its teams do not fit in one NOTIFY."""
    whole = _payload(origin, freed, freed.team_ids)
    if len(whole.encode()) <= MAX_PAYLOAD_BYTES or len(freed.team_ids) <= 1:
        return [whole]
    half = len(freed.team_ids) // 2
    return encode_notices(origin, _with_teams(freed, freed.team_ids[:half])) + encode_notices(
        origin, _with_teams(freed, freed.team_ids[half:])
    )


def _with_teams(freed: AgentFreed, team_ids: tuple[str, ...]) -> AgentFreed:
    return AgentFreed(agent_id=freed.agent_id, team_ids=team_ids, free_slots=freed.free_slots, at=freed.at)


def decode_notice(payload: str) -> tuple[str, AgentFreed]:
    """(origin, notice) from a payload; ValueError when it is not one of ours."""
    try:
        body = json.loads(payload)
        origin, agent_id, team_ids = body["origin"], body["agent_id"], body["team_ids"]
        free_slots, at = body["free_slots"], datetime.fromisoformat(body["at"])
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"not an availability notice: {error}") from error
    if not (
        isinstance(origin, str)
        and isinstance(agent_id, str)
        and isinstance(team_ids, list)
        and all(isinstance(t, str) for t in team_ids)
        and isinstance(free_slots, int)
        and at.tzinfo is not None
    ):
        raise ValueError("not an availability notice: unexpected field types")
    return origin, AgentFreed(agent_id=agent_id, team_ids=tuple(team_ids), free_slots=free_slots, at=at)


def _cause(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


class PgAvailabilityListener:
    """LISTEN on `CHANNEL` over one dedicated connection; notices of other origins go to `deliver`.

    `await run()` until cancelled (the routing server runs it as a task). `listening` is set while the
    LISTEN is in place; `backend_pid` is the listening connection's server process id (None meanwhile).
    """

    def __init__(
        self,
        url: str | URL,
        *,
        origin: str,
        deliver: Callable[[AgentFreed], None],
        connect_timeout: float = 5.0,
        retry_initial: float = 0.1,
        retry_max: float = 10.0,
        keepalive: float = 30.0,
    ) -> None:
        self.origin = origin
        self.listening = asyncio.Event()
        self.backend_pid: int | None = None
        self.connections = 0
        """How many times a LISTEN was put in place (1 + reconnections)."""
        self._connect_args = asyncpg_connect_args(url)
        self._deliver = deliver
        self.connect_timeout = connect_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._keepalive = keepalive

    async def run(self) -> None:
        delay = self._retry_initial
        for attempt in itertools.count(1):
            try:
                connection, lost = await self._listen()
            except Exception as error:  # refused, timed out, auth, a server starting up...
                log.warning(
                    "availability_listener_unavailable",
                    attempt=attempt,
                    retry_in=round(delay, 2),
                    cause=_cause(error),
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            self.connections += 1
            self.backend_pid = connection.get_server_pid()
            self.listening.set()
            log.info(
                "availability_listener_listening"
                if self.connections == 1
                else "availability_listener_reconnected",
                channel=CHANNEL,
                backend_pid=self.backend_pid,
            )
            since = time.monotonic()
            try:
                cause = await self._hold(connection, lost)
            finally:
                self.listening.clear()
                self.backend_pid = None
                await self._close(connection)
            if time.monotonic() - since >= 5.0:  # it held: a new outage starts from the shortest delay
                delay = self._retry_initial
            log.warning("availability_listener_lost", retry_in=round(delay, 2), cause=cause)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry_max)

    async def _listen(self) -> tuple[asyncpg.Connection, asyncio.Event]:
        connection = await asyncpg.connect(**self._connect_args, timeout=self.connect_timeout)
        lost = asyncio.Event()
        try:
            connection.add_termination_listener(lambda _connection: lost.set())
            async with asyncio.timeout(self.connect_timeout):
                await connection.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            connection.terminate()
            raise
        return connection, lost

    async def _hold(self, connection: asyncpg.Connection, lost: asyncio.Event) -> str:
        """Wait until the connection is lost; a `SELECT 1` every `keepalive` seconds finds a dead link
        whose socket never ended. Returns why it ended."""
        while True:
            try:
                async with asyncio.timeout(self._keepalive):
                    await lost.wait()
                return "connection closed"
            except TimeoutError:
                pass
            try:
                await connection.fetchval("SELECT 1", timeout=self.connect_timeout)
            except Exception as error:
                return _cause(error)

    @staticmethod
    async def _close(connection: asyncpg.Connection) -> None:
        if connection.is_closed():
            return
        try:
            async with asyncio.timeout(2.0):
                await connection.close()
        except Exception:  # a broken link: drop the socket
            connection.terminate()
        except BaseException:
            connection.terminate()
            raise

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            origin, freed = decode_notice(payload)
        except ValueError as error:
            log.warning("availability_notice_ignored", cause=str(error)[:200])
            return
        if origin == self.origin:
            return  # ours: the use case published it locally after its commit
        try:
            self._deliver(freed)
        except Exception as error:
            log.warning("availability_notice_undelivered", agent_id=freed.agent_id, cause=_cause(error))
