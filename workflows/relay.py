"""The availability relay: turns the routing service's "a specialist has a free slot" stream into
`specialist_available` signals for the callbacks at the head of that team's queue.

    WatchAvailability (server stream) ──event(team, free_slots)──> ListCallbacks(team, WAITING,
        page_size=free_slots) ──> signal `callback-<call id>` of those first waiting callbacks

Only the head of the queue is read (the store answers that from its index), never the whole queue: with
thousands waiting, listing them all took seconds on every freed slot. On every (re)connection it also
wakes the head of every team's queue (teams from GetQueueStatus, one ticket each), so events missed while
the stream was down are made up for. A dropped stream is reopened with exponential backoff. Callbacks do
not depend on the relay for correctness: each one also re-claims on its own long safety timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from escalade_platform.generated.escalade.routing.v1 import routing_pb2
from workflows.inputs import callback_workflow_id

if TYPE_CHECKING:
    from escalade_platform.generated.escalade.routing.v1.routing_pb2_grpc import RoutingServiceAsyncStub

__all__ = ["AvailabilityRelay", "signal_callback"]

log = logging.getLogger(__name__)

Wake = Callable[[str], Awaitable[bool]]
_MAX_PAGE = 1000
"""ListCallbacks' largest page_size."""


async def signal_callback(client: Client, call_id: str) -> bool:
    """Send `specialist_available` to `callback-<call id>`; False when no such workflow is running."""
    handle = client.get_workflow_handle(callback_workflow_id(call_id))
    try:
        await handle.signal("specialist_available")
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


class AvailabilityRelay:
    """Runs until cancelled; `wake(call_id)` is normally `signal_callback` bound to a Temporal client."""

    def __init__(
        self,
        stub: RoutingServiceAsyncStub,
        wake: Wake,
        *,
        rpc_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self._stub = stub
        self._wake = wake
        self._timeout = rpc_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self.connections = 0
        """How many times the stream has been (re)opened; for tests and status."""
        self.woken: list[str] = []
        """Call ids signalled so far (most recent last, capped), for tests and status."""

    async def run(self) -> None:
        """Watch, relay, reconnect; returns only by cancellation."""
        delay = self._backoff_initial
        while True:
            try:
                # Open the stream first, then catch up: an event in between is seen twice, never missed.
                call = self._stub.WatchAvailability(routing_pb2.WatchAvailabilityRequest())
                await self._catch_up()
                self.connections += 1
                delay = self._backoff_initial
                async for event in call:
                    await self._relay(event.team_id, event.free_slots)
                log.info("availability stream ended; reconnecting")
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                log.warning("availability stream failed (%s); retrying in %.1fs", code, delay)
            except RPCError as exc:
                log.warning("signalling a callback failed (%s); retrying in %.1fs", exc.status, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _catch_up(self) -> None:
        """Wake the head of every team's queue (events may have been missed while disconnected).

        Asked team by team (the policy's teams, from GetQueueStatus), one ticket each: a single listing of
        every team's queue is capped at 1,000 tickets, so one long queue would hide the heads of the teams
        after it. A ticket of a team no longer in the policy relies on its own safety timer."""
        status = await self._stub.GetQueueStatus(routing_pb2.GetQueueStatusRequest(), timeout=self._timeout)
        for team in status.teams:
            await self._relay(team.team_id, 1)

    async def _relay(self, team_id: str, free_slots: int) -> None:
        if free_slots <= 0:
            return
        response = await self._stub.ListCallbacks(
            routing_pb2.ListCallbacksRequest(
                team_id=team_id,
                state=routing_pb2.CALLBACK_STATE_WAITING,
                page_size=min(max(1, free_slots), _MAX_PAGE),
            ),
            timeout=self._timeout,
        )
        for ticket in list(response.callbacks)[:free_slots]:
            await self._signal(ticket.call_id)

    async def _signal(self, call_id: str) -> None:
        if await self._wake(call_id):
            self.woken.append(call_id)
            del self.woken[:-1000]
        else:
            log.info("callback %s has no running workflow to wake", call_id)
