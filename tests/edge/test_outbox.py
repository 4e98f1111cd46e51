"""The edge outbox on SQLite and PostgreSQL: idempotent records of typed workflow inputs (rows of earlier
versions still read), the relay's pending/mark API."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from routing_service.domain.errors import InvalidRequest
from webhook_edge.outbox import Outbox, outbox_table
from workflows.inputs import EscalationReviewInput, QueueCallbackInput


def callback(call_id: str, priority: int = 0) -> QueueCallbackInput:
    return QueueCallbackInput(
        call_id=call_id,
        customer_number="+14155550123",
        masked_number="+1******0123",
        team_id="billing",
        priority=priority,
    )


@pytest.fixture
async def outbox(database_url: str) -> AsyncIterator[Outbox]:
    store = await Outbox.open(database_url)
    try:
        yield store
    finally:
        await store.close()


async def test_second_record_is_ignored_when_workflow_id_repeats(outbox: Outbox) -> None:
    assert await outbox.record(callback("c1", priority=3))
    assert not await outbox.record(callback("c1", priority=99))
    entry = await outbox.get("callback-c1")
    assert entry is not None
    assert entry.input() == callback("c1", priority=3)
    assert (entry.kind, entry.attempts, entry.delivered_at, entry.last_error) == ("callback", 0, None, None)


async def test_payload_is_the_input_under_its_own_field_names_when_recorded(outbox: Outbox) -> None:
    ended = datetime(2025, 11, 18, 14, 3, 10, 382000, tzinfo=UTC)
    review = EscalationReviewInput(call_id="c9", ended_at=ended, transfer_statuses=["no-answer", "connected"])
    assert await outbox.record(review)
    entry = await outbox.get("review-c9")
    assert entry is not None and entry.kind == "review"
    assert entry.payload["ended_at"] == "2025-11-18T14:03:10.382000+00:00"
    assert entry.payload["transfer_statuses"] == ["no-answer", "connected"]
    assert entry.input() == review


async def test_row_written_by_the_previous_edge_is_read_when_still_pending(
    outbox: Outbox, database_url: str
) -> None:
    """Rows recorded before the upgrade hold the old dict spelling; the relay must still deliver them."""
    now = datetime.now(UTC)
    old = {
        "call_id": "old-1",
        "caller_number": "+14155550123",
        "team_id": "technical",
        "tier": "premium",
        "issue_category": "technical",
        "effective_complexity": "advanced",
        "priority": 40,
        "customer_context": "webhooks stopped",
        "escalation_reason": "needs a specialist",
        "decision_id": "dec-old",
        "estimated_wait_seconds": 300.0,
    }
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:  # the row as the previous version's `record` wrote it
            await conn.execute(
                sa.insert(outbox_table).values(
                    kind="callback",
                    workflow_id="callback-old-1",
                    payload=old,
                    created_at=now,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
    finally:
        await engine.dispose()
    (entry,) = await outbox.pending()
    data = entry.input()
    assert isinstance(data, QueueCallbackInput)
    assert (data.call_id, data.customer_number, data.masked_number) == (
        "old-1",
        "+14155550123",
        "+1******0123",
    )
    assert (data.category, data.complexity, data.context, data.reason) == (
        "technical",
        "advanced",
        "webhooks stopped",
        "needs a specialist",
    )
    assert (data.tier, data.priority, data.decision_id) == ("premium", 40, "dec-old")


async def test_unreadable_payload_is_refused_when_the_relay_reads_it(outbox: Outbox) -> None:
    assert await outbox.record(callback("c5"))
    entry = await outbox.get("callback-c5")
    assert entry is not None
    broken = dict(entry.payload, priority="high")
    with pytest.raises(InvalidRequest, match="unreadable callback payload"):
        dataclasses.replace(entry, payload=broken).input()


async def test_one_row_is_written_when_records_race(outbox: Outbox) -> None:
    results = await asyncio.gather(
        *(outbox.record(EscalationReviewInput(call_id="c2", summary=str(i))) for i in range(8))
    )
    assert sum(results) == 1
    assert len(await outbox.pending()) == 1


async def test_pending_lists_due_undelivered_entries_oldest_first(outbox: Outbox) -> None:
    for call in ("a", "b", "c"):
        await outbox.record(callback(call))
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
    await first.record(EscalationReviewInput(call_id="x"))
    await first.close()
    second = await Outbox.open(database_url)
    try:
        entry = await second.get("review-x")
        assert entry is not None and entry.input() == EscalationReviewInput(call_id="x")
    finally:
        await second.close()
