"""The promise columns of the callback store on SQLite and PostgreSQL: the promise stored once queued, the
start recorded on the first reservation only, the breach recorded once, at-risk lookups, the wait ratios the
estimate learns from (computed in SQL) and the outcomes kept rates read."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from routing_service.domain.models import CallbackTicket
from routing_service.domain.promises import Promise, PromiseOutcome, wait_ratios
from routing_service.store.callbacks import WaitRatioCache
from routing_service.store.store import Store
from tests.service.store_builders import NOW, enqueue, make_ticket

MIN = timedelta(minutes=1)


def promise(quoted: timedelta) -> Promise:
    return Promise(starts_at=NOW, due_by=NOW + quoted, at_risk_at=NOW + quoted * 0.75)


async def test_promises_starts_and_breaches_are_stored_as_the_estimate_and_kept_rates_read_them(
    store: Store,
) -> None:
    await enqueue(store, *(promised(f"cb-{i}", (i + 1) * 10 * MIN, service_key=float(i)) for i in range(4)))
    async with store.uow() as u:
        await u.callbacks.mark_reserved("cb-0", "ann", NOW + 20 * MIN, now=NOW + 20 * MIN)  # late: x2
        await u.callbacks.mark_reserved("cb-1", "bob", NOW + 30 * MIN, now=NOW + 10 * MIN)  # early: x0.5
        await u.callbacks.mark_reserved("cb-1", "bob", NOW + 40 * MIN, now=NOW + 35 * MIN)  # a retry
        assert await u.callbacks.mark_breached("cb-0", NOW + 21 * MIN)
        assert not await u.callbacks.mark_breached("cb-0", NOW + 22 * MIN)
        await u.commit()
    async with store.uow() as u:
        first = await u.callbacks.get("cb-1")
        assert first is not None and first.started_at == NOW + 10 * MIN, "the first start stays"
        late = await u.callbacks.get("cb-0")
        assert late is not None and late.breached_at == NOW + 21 * MIN
        assert late.promised_by == NOW + 10 * MIN and late.at_risk_at == NOW + 7.5 * MIN
        ratios = await u.callbacks.recent_wait_ratios("technical", NOW, 20)
        assert sorted(round(r, 6) for r in ratios) == [0.5, 2.0]
        outcomes = await u.callbacks.promise_outcomes("technical", NOW, 100)
        at_risk = await u.callbacks.at_risk_waiting("technical", NOW + 23 * MIN, 10)
    assert [o.due_by for o in outcomes] == [NOW + q * 10 * MIN for q in (4, 3, 2, 1)]
    assert sorted(wait_ratios(outcomes)) == sorted(round(r, 6) for r in ratios)
    assert PromiseOutcome(NOW, NOW + 10 * MIN, NOW + 20 * MIN) in outcomes
    # cb-2 (due +30, at risk from +22.5) is; cb-3 (at risk from +30) is not yet; cb-0/1 are reserved
    assert [t.call_id for t in at_risk] == ["cb-2"]


def promised(call_id: str, quoted: timedelta, *, service_key: float, **kwargs: Any) -> CallbackTicket:
    p = promise(quoted)
    return replace(
        make_ticket(call_id, service_key=service_key, **kwargs),
        promise_from=p.starts_at,
        promised_by=p.due_by,
        at_risk_at=p.at_risk_at,
    )


async def test_the_place_is_read_before_the_insert_and_the_promise_goes_in_with_the_ticket(
    store: Store,
) -> None:
    await enqueue(store, make_ticket("held", service_key=1.0), make_ticket("low", service_key=9.0))
    async with store.uow() as u:
        await u.callbacks.mark_reserved("held", "ann", NOW + 5 * MIN, now=NOW)
        place = await u.callbacks.place("technical", 5.0)
        new = replace(promised("new", 20 * MIN, service_key=5.0), position=place)
        stored = await u.callbacks.enqueue(new)
        again = await u.callbacks.enqueue(promised("new", 90 * MIN, service_key=0.5))
        await u.commit()
    assert place == 2, "the reserved ticket comes first; the waiting one with a larger key after"
    assert stored == new
    async with store.uow() as u:
        got = await u.callbacks.get("new")
    assert got == stored and got.promised_by == NOW + 20 * MIN and got.at_risk_at == NOW + 15 * MIN
    assert again == got, "a repeat of the call keeps the ticket and the promise it has"


async def test_a_claim_reads_its_place_and_the_at_risk_callbacks_in_one_statement(store: Store) -> None:
    await enqueue(
        store,
        promised("head", 60 * MIN, service_key=1.0),
        promised("risky", 10 * MIN, service_key=2.0),
        promised("me", 60 * MIN, service_key=3.0),
        promised("other-team", 10 * MIN, service_key=0.0, team_id="billing"),
    )
    now = NOW + 8 * MIN  # risky is at risk (from +7.5), nobody else
    async with store.uow() as u:
        tickets = {c: await u.callbacks.get(c) for c in ("head", "risky", "me")}
        for call_id, ticket in tickets.items():
            assert ticket is not None
            view = await u.callbacks.claim_view(ticket, now, 10)
            separate = (
                await u.callbacks.waiting_before(ticket),
                await u.callbacks.at_risk_waiting("technical", now, 10),
            )
            assert view == separate, call_id
        head = tickets["head"]
        assert head is not None
        assert await u.callbacks.claim_view(head, now, 10) == (
            False,
            await u.callbacks.at_risk_waiting("technical", now, 10),
        )
        assert [a.call_id for a in (await u.callbacks.claim_view(head, now, 10))[1]] == ["risky"]


async def test_overdue_waiting_callbacks_are_those_past_their_deadline_without_a_breach(
    store: Store,
) -> None:
    await enqueue(
        store,
        promised("late", 10 * MIN, service_key=1.0),
        promised("later", 20 * MIN, service_key=2.0),
        promised("on-time", 60 * MIN, service_key=3.0),
        promised("served", 10 * MIN, service_key=4.0),
        make_ticket("no-promise", service_key=5.0),
    )
    now = NOW + 30 * MIN
    async with store.uow() as u:
        await u.callbacks.mark_reserved("served", "ann", now + 5 * MIN, now=now)
        assert await u.callbacks.mark_breached("later", now)
        await u.commit()
    async with store.uow() as u:
        overdue = await u.callbacks.overdue_waiting("technical", now, 10)
        assert await u.callbacks.overdue_waiting("billing", now, 10) == []
    assert [t.call_id for t in overdue] == ["late"]
    assert overdue[0].promised_by == NOW + 10 * MIN and overdue[0].breached_at is None


async def test_the_learned_correction_is_read_once_per_ttl_and_again_after_a_start_here(
    store: Store,
) -> None:
    """Another replica's start is seen once the cached ratios age out; a start in this process at once."""
    await enqueue(store, *(promised(f"cb-{i}", 10 * MIN, service_key=float(i)) for i in range(3)))
    async with store.uow() as u:
        await u.callbacks.mark_reserved("cb-0", "ann", NOW + 60 * MIN, now=NOW + 20 * MIN)  # x2
        await u.commit()
    async with store.uow() as u:
        assert rounded(await u.callbacks.recent_wait_ratios("technical", NOW, 20)) == [2.0]
    async with await Store.open(store.url) as replica, replica.uow() as u:
        await u.callbacks.mark_reserved("cb-1", "bob", NOW + 60 * MIN, now=NOW + 5 * MIN)  # x0.5
        await u.commit()
    async with store.uow() as u:
        assert rounded(await u.callbacks.recent_wait_ratios("technical", NOW, 20)) == [2.0], "cached"
    store.uow_factory.wait_ratios.invalidate("technical")  # what the TTL does a little later
    async with store.uow() as u:
        assert rounded(await u.callbacks.recent_wait_ratios("technical", NOW, 20)) == [0.5, 2.0]
        await u.callbacks.mark_reserved("cb-2", "cy", NOW + 60 * MIN, now=NOW + 10 * MIN)  # x1, here
        await u.commit()
    async with store.uow() as u:
        assert rounded(await u.callbacks.recent_wait_ratios("technical", NOW, 20)) == [0.5, 1.0, 2.0]


def rounded(ratios: list[float]) -> list[float]:
    return sorted(round(r, 6) for r in ratios)


def test_cached_wait_ratios_expire_after_their_ttl() -> None:
    clock = [100.0]
    cache = WaitRatioCache(ttl=30.0, clock=lambda: clock[0])
    cache.put("technical", 20, [1.5])
    clock[0] += 29.9
    assert cache.get("technical", 20) == [1.5]
    assert cache.get("technical", 10) is None and cache.get("billing", 20) is None
    clock[0] += 0.1
    assert cache.get("technical", 20) is None
    cache.put("technical", 20, [1.5])
    cache.invalidate("technical")
    assert cache.get("technical", 20) is None
