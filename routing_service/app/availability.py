"""Broadcaster of "a specialist of team X has a free slot" events (feeds WatchAvailability).

A use case that frees a slot (a release, a status change to available, an upsert with free capacity, a
finished callback, the sweeper's expiry) calls `announce_freed(u, ...)` inside its unit of work, then, once
the transaction has committed, `events.publish_freed(freed)`:

* `announce_freed` hands the notice to the store (`UnitOfWork.announce`), which on PostgreSQL sends it to the
  other routing processes on the same database with NOTIFY in that very transaction, so they hear of it only
  if it commits (`routing_service.store.notify`); each routing server on PostgreSQL listens and republishes
  other processes' notices into its own broadcaster. On SQLite it does nothing: one routing process per
  SQLite file, whose broadcaster sees every change.
* `publish_freed` fans the event out to this process's subscribers, one event per team of the agent.

Each subscriber has its own bounded queue; a slow subscriber loses its oldest events rather than slowing the
publishers. `close()` ends every subscription cleanly (server shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from routing_service.app.ports import AgentFreed, Released, UnitOfWork

__all__ = [
    "AvailabilityBroadcaster",
    "AvailabilityEvent",
    "Subscription",
    "announce_freed",
    "announce_release",
]


@dataclass(frozen=True, slots=True)
class AvailabilityEvent:
    """A specialist of `team_id` has `free_slots` free slots since `at`."""

    team_id: str
    agent_id: str
    free_slots: int
    at: datetime


class Subscription:
    """Events for some teams (all when `team_ids` is empty); iterate with `async for`."""

    def __init__(self, team_ids: Iterable[str], maxsize: int) -> None:
        self.team_ids = frozenset(team_ids)
        self._queue: asyncio.Queue[AvailabilityEvent | None] = asyncio.Queue(maxsize=maxsize)

    def wants(self, event: AvailabilityEvent) -> bool:
        return not self.team_ids or event.team_id in self.team_ids

    def offer(self, item: AvailabilityEvent | None) -> None:
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()

    def __aiter__(self) -> AsyncIterator[AvailabilityEvent]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[AvailabilityEvent]:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item


class AvailabilityBroadcaster:
    """Fan-out of availability events to the current subscribers."""

    def __init__(self, *, queue_size: int = 1000) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_size = queue_size
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, event: AvailabilityEvent) -> None:
        for sub in tuple(self._subscribers):
            if sub.wants(event):
                sub.offer(event)

    def agent_freed(self, *, agent_id: str, team_ids: Iterable[str], free_slots: int, at: datetime) -> None:
        """One event per team of the agent, when the agent has a free slot."""
        if free_slots <= 0:
            return
        for team_id in team_ids:
            self.publish(AvailabilityEvent(team_id=team_id, agent_id=agent_id, free_slots=free_slots, at=at))

    def publish_freed(self, freed: AgentFreed) -> None:
        """`agent_freed` for a notice (one announced in a unit of work, or heard from another process)."""
        self.agent_freed(
            agent_id=freed.agent_id, team_ids=freed.team_ids, free_slots=freed.free_slots, at=freed.at
        )

    @contextlib.contextmanager
    def subscribe(self, team_ids: Iterable[str] = ()) -> Iterator[Subscription]:
        sub = Subscription(team_ids, self._queue_size)
        if self._closed:
            sub.offer(None)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """End every subscription (their iterators stop); later subscriptions end at once."""
        self._closed = True
        for sub in tuple(self._subscribers):
            sub.offer(None)


async def announce_freed(
    u: UnitOfWork, *, agent_id: str, team_ids: Iterable[str], free_slots: int, at: datetime
) -> AgentFreed | None:
    """Announce a freed slot in `u`'s transaction (other routing processes hear of it once it commits) and
    return the notice to publish locally after the commit; None when the agent has no free slot."""
    if free_slots <= 0:
        return None
    freed = AgentFreed(agent_id=agent_id, team_ids=tuple(team_ids), free_slots=free_slots, at=at)
    await u.announce(freed)
    return freed


async def announce_release(u: UnitOfWork, released: Released | None, at: datetime) -> AgentFreed | None:
    """`announce_freed` for what a release freed (nothing when nothing was released)."""
    if released is None:
        return None
    return await announce_freed(
        u, agent_id=released.agent_id, team_ids=released.team_ids, free_slots=released.free_slots, at=at
    )
