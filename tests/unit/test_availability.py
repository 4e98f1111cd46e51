"""The in-process availability broadcaster behind WatchAvailability (routing_service/app/availability.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from routing_service.app.availability import AvailabilityBroadcaster, AvailabilityEvent, Subscription

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


async def _drain(sub: Subscription, n: int) -> list[AvailabilityEvent]:
    out = []
    iterator = aiter(sub)
    for _ in range(n):
        out.append(await asyncio.wait_for(anext(iterator), timeout=1))
    return out


async def test_subscriber_gets_only_its_teams_when_filtered() -> None:
    events = AvailabilityBroadcaster()
    with events.subscribe(["billing"]) as billing, events.subscribe() as everyone:
        events.agent_freed(agent_id="a", team_ids=("technical", "billing"), free_slots=2, at=AT)
        assert [e.team_id for e in await _drain(billing, 1)] == ["billing"]
        assert [e.team_id for e in await _drain(everyone, 2)] == ["technical", "billing"]
    assert events.subscriber_count == 0


async def test_nothing_is_published_when_the_agent_has_no_free_slot() -> None:
    events = AvailabilityBroadcaster()
    with events.subscribe() as sub:
        events.agent_freed(agent_id="a", team_ids=("technical",), free_slots=0, at=AT)
        events.close()
        assert [e async for e in sub] == []


async def test_slow_subscriber_keeps_the_newest_events_when_its_queue_overflows() -> None:
    events = AvailabilityBroadcaster(queue_size=3)
    with events.subscribe() as sub:
        for i in range(5):
            events.publish(AvailabilityEvent("technical", f"a{i}", 1, AT))
        assert [e.agent_id for e in await _drain(sub, 3)] == ["a2", "a3", "a4"]


async def test_close_ends_current_and_later_subscriptions_when_shutting_down() -> None:
    events = AvailabilityBroadcaster()

    async def collect(sub: Subscription) -> list[str]:
        return [e.agent_id async for e in sub]

    with events.subscribe() as sub:
        collected = asyncio.create_task(collect(sub))
        await asyncio.sleep(0)
        events.publish(AvailabilityEvent("technical", "a", 1, AT))
        events.close()
        assert await asyncio.wait_for(collected, timeout=1) == ["a"]
    with events.subscribe() as late:
        assert await asyncio.wait_for(collect(late), timeout=1) == []
