"""In-process broadcaster of "a specialist of team X has a free slot" events (feeds WatchAvailability).

Use cases publish after their transaction commits (a release, a status change to available, an upsert with
free capacity, a finished callback). Each subscriber has its own bounded queue; a slow subscriber loses its
oldest events rather than slowing the publishers. `close()` ends every subscription cleanly (server shutdown).
This is per process: with several routing replicas, a watcher sees the events of the replica it talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

__all__ = ["AvailabilityBroadcaster", "AvailabilityEvent", "Subscription"]


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
