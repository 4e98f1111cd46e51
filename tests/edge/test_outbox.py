"""The edge outbox on SQLite and PostgreSQL: idempotent records, the relay's pending/mark API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from webhook_edge.outbox import Outbox


@pytest.fixture
async def outbox(database_url: str) -> AsyncIterator[Outbox]:
    store = await Outbox.open(database_url)
    try:
        yield store
    finally:
        await store.close()


async def test_second_record_is_ignored_when_workflow_id_repeats(outbox: Outbox) -> None:
    assert await outbox.record("callback", "callback-c1", {"call_id": "c1", "priority": 3})
    assert not await outbox.record("callback", "callback-c1", {"call_id": "c1", "priority": 99})
    entry = await outbox.get("callback-c1")
    assert entry is not None
    assert entry.payload == {"call_id": "c1", "priority": 3}
    assert (entry.kind, entry.attempts, entry.delivered_at, entry.last_error) == ("callback", 0, None, None)


async def test_one_row_is_written_when_records_race(outbox: Outbox) -> None:
    results = await asyncio.gather(*(outbox.record("review", "review-c2", {"n": i}) for i in range(8)))
    assert sum(results) == 1
    assert len(await outbox.pending()) == 1


async def test_pending_lists_due_undelivered_entries_oldest_first(outbox: Outbox) -> None:
    for call in ("a", "b", "c"):
        await outbox.record("callback", f"callback-{call}", {"call_id": call})
    first, second, third = await outbox.pending()
    assert [e.workflow_id for e in (first, second, third)] == ["callback-a", "callback-b", "callback-c"]
    assert [e.workflow_id for e in await outbox.pending(limit=2)] == ["callback-a", "callback-b"]

    await outbox.mark_delivered(first.id)
    later = datetime.now(UTC) + timedelta(minutes=5)
    await outbox.mark_failed(second.id, "temporal unreachable", later)
    assert [e.workflow_id for e in await outbox.pending()] == ["callback-c"]
    retried = await outbox.pending(now=later + timedelta(seconds=1))
    assert [e.workflow_id for e in retried] == ["callback-b", "callback-c"]
    failed = await outbox.get("callback-b")
    assert failed is not None and failed.attempts == 1 and failed.last_error == "temporal unreachable"
    assert failed.next_attempt_at == later.replace(microsecond=later.microsecond)
    delivered = await outbox.get("callback-a")
    assert delivered is not None and delivered.delivered_at is not None and delivered.attempts == 1


async def test_table_is_reused_when_outbox_opens_twice(database_url: str) -> None:
    first = await Outbox.open(database_url)
    await first.record("review", "review-x", {"call_id": "x"})
    await first.close()
    second = await Outbox.open(database_url)
    try:
        entry = await second.get("review-x")
        assert entry is not None and entry.payload == {"call_id": "x"}
    finally:
        await second.close()


async def test_unknown_kind_is_refused_when_recording(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="unknown outbox kind"):
        await outbox.record("other", "other-1", {})  # type: ignore[arg-type]
    assert await outbox.pending() == []
