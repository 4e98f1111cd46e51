"""Customer repository on SQLite and PostgreSQL: round trips, upsert replaces, and outcomes counted once
per call."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from routing_service.domain.models import Customer
from routing_service.store import Store
from tests.service.store_builders import NOW


async def test_customer_round_trips_when_upserted_then_replaced(store: Store) -> None:
    original = Customer(
        number="+1234567890",
        tier="enterprise",
        account_name="TechCorp Enterprise",
        previous_escalations=2,
        last_agent_id="alice",
    )
    async with store.uow() as uow:
        stored, created = await uow.customers.upsert(original, NOW)
        await uow.commit()
    assert created and stored.updated_at == NOW
    later = NOW + timedelta(hours=1)
    async with store.uow() as uow:
        assert await uow.customers.get("+1234567890") == stored
        replaced, created = await uow.customers.upsert(
            Customer(number="+1234567890", tier="premium", account_name="Premium Support"), later
        )
        await uow.commit()
    assert not created
    async with store.uow() as uow:
        got = await uow.customers.get("+1234567890")
        assert await uow.customers.get("+15550000000") is None
    assert got == replaced
    assert got is not None
    assert (got.tier, got.account_name, got.previous_escalations, got.last_agent_id) == (
        "premium",
        "Premium Support",
        0,
        None,
    )
    assert got.updated_at == later and got.updated_at.tzinfo is not None


async def test_record_outcome_counts_once_when_call_reported_twice(store: Store) -> None:
    async with store.uow() as uow:
        await uow.customers.upsert(
            Customer(number="+15551230000", tier="premium", previous_escalations=1), NOW
        )
        await uow.commit()
    async with store.uow() as uow:
        first, counted = await uow.customers.record_outcome("call-1", "+15551230000", "alice", NOW)
        await uow.commit()
    assert counted and first.previous_escalations == 2 and first.last_agent_id == "alice"
    async with store.uow() as uow:
        again, counted_again = await uow.customers.record_outcome("call-1", "+15551230000", "bob", NOW)
        await uow.commit()
    assert not counted_again
    assert again.previous_escalations == 2 and again.last_agent_id == "alice"
    async with store.uow() as uow:
        other, counted_other = await uow.customers.record_outcome("call-2", "+15551230000", None, NOW)
        await uow.commit()
    assert counted_other and other.previous_escalations == 3 and other.last_agent_id == "alice"
    assert other.tier == "premium"


async def test_record_outcome_creates_customer_when_unknown(store: Store) -> None:
    async with store.uow() as uow:
        customer, counted = await uow.customers.record_outcome(
            "call-9", "+0987654321", "bob", NOW, default_tier="basic"
        )
        await uow.commit()
    assert counted
    assert (customer.number, customer.tier, customer.previous_escalations, customer.last_agent_id) == (
        "+0987654321",
        "basic",
        1,
        "bob",
    )
    async with store.uow() as uow:
        assert await uow.customers.get("+0987654321") == customer


async def test_record_outcome_is_undone_when_not_committed(store: Store) -> None:
    async with store.uow() as uow:
        await uow.customers.record_outcome("call-1", "+15551230000", "alice", NOW)
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230000") is None
        _, counted = await uow.customers.record_outcome("call-1", "+15551230000", "alice", NOW)
    assert counted


async def test_times_come_back_as_utc_when_stored_with_another_offset(store: Store) -> None:
    paris = NOW.astimezone(timezone(timedelta(hours=1)))
    async with store.uow() as uow:
        await uow.customers.upsert(Customer(number="+15551230000", tier="premium"), paris)
        await uow.commit()
    async with store.uow() as uow:
        got = await uow.customers.get("+15551230000")
    assert got is not None and got.updated_at == NOW
    assert got.updated_at is not None and got.updated_at.utcoffset() == timedelta(0)


async def test_naive_time_is_refused_when_storing(store: Store) -> None:
    async with store.uow() as uow:
        with pytest.raises(ValueError, match="naive datetime"):
            await uow.customers.upsert(
                Customer(number="+15551230000", tier="premium"), NOW.replace(tzinfo=None)
            )
