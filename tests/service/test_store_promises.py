"""The promise columns of the callback store on SQLite and PostgreSQL: the promise stored once queued, the
start recorded on the first reservation only, the breach recorded once, at-risk lookups, the wait ratios the
estimate learns from (computed in SQL) and the outcomes kept rates read."""

from __future__ import annotations

from datetime import timedelta

from routing_service.domain.promises import Promise, PromiseOutcome, wait_ratios
from routing_service.store.store import Store
from tests.service.store_builders import NOW, enqueue, make_ticket

MIN = timedelta(minutes=1)


def promise(quoted: timedelta) -> Promise:
    return Promise(starts_at=NOW, due_by=NOW + quoted, at_risk_at=NOW + quoted * 0.75)


async def test_promises_starts_and_breaches_are_stored_as_the_estimate_and_kept_rates_read_them(
    store: Store,
) -> None:
    await enqueue(store, *(make_ticket(f"cb-{i}", service_key=float(i)) for i in range(4)))
    async with store.uow() as u:
        for i in range(4):
            await u.callbacks.set_promise(f"cb-{i}", promise((i + 1) * 10 * MIN))
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
