"""The sweeper records broken promises of callbacks still waiting, on SQLite and PostgreSQL: each once (the
stored breach, the `callback_promise_breached` log line, the count by team), and a later claim or sweep
does not count it again."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from structlog.testing import capture_logs

from routing_service.app.callbacks import ClaimOutcome, claim_callback
from routing_service.app.promises import observe_promises
from routing_service.app.sweeper import sweep_once
from routing_service.domain.models import CallbackTicket
from routing_service.domain.promises import Promise
from routing_service.store.store import Store
from tests.service.store_builders import NOW, enqueue, make_ticket
from tests.support.routing_builders import techcorp_policy

MIN = timedelta(minutes=1)
DAY = timedelta(days=1)


def promised(call_id: str, quoted: timedelta, *, service_key: float, team_id: str) -> CallbackTicket:
    promise = Promise(starts_at=NOW, due_by=NOW + quoted, at_risk_at=NOW + quoted * 0.75)
    return replace(
        make_ticket(call_id, service_key=service_key, team_id=team_id),
        promise_from=promise.starts_at,
        promised_by=promise.due_by,
        at_risk_at=promise.at_risk_at,
    )


class Breaches:
    def __init__(self) -> None:
        self.teams: list[str] = []

    def promise_breached(self, team_id: str) -> None:
        self.teams.append(team_id)

    def promise_kept(self, team_id: str, quoted_minus_actual: timedelta) -> None:
        pass


async def test_the_sweeper_records_each_waiting_callbacks_broken_promise_once(store: Store) -> None:
    policy = techcorp_policy()
    await enqueue(
        store,
        promised("tech-late", 10 * MIN, service_key=1.0, team_id="technical"),
        promised("tech-on-time", 60 * MIN, service_key=2.0, team_id="technical"),
        promised("billing-late", 5 * MIN, service_key=1.0, team_id="billing"),
    )
    seen = Breaches()
    stop = observe_promises(seen)
    try:
        with capture_logs() as logs:
            first = await sweep_once(uow=store.uow, now=NOW + 30 * MIN, callback_ttl=DAY, policy=policy)
            second = await sweep_once(uow=store.uow, now=NOW + 31 * MIN, callback_ttl=DAY, policy=policy)
            claim = await claim_callback("tech-late", None, uow=store.uow, policy=policy, now=NOW + 32 * MIN)
    finally:
        stop()
    assert (first.breaches, second.breaches) == (2, 0)
    assert sorted(seen.teams) == ["billing", "technical"], "counted once each, by team"
    breached = [e for e in logs if e["event"] == "callback_promise_breached"]
    assert sorted((e["call_id"], e["team_id"], e["started"]) for e in breached) == [
        ("billing-late", "billing", False),
        ("tech-late", "technical", False),
    ]
    assert {e["overdue_seconds"] for e in breached} == {1200.0, 1500.0}
    assert claim.outcome is ClaimOutcome.NO_SPECIALIST_FREE and claim.callback.breached_at == NOW + 30 * MIN
    async with store.uow() as u:
        late = await u.callbacks.get("tech-late")
        on_time = await u.callbacks.get("tech-on-time")
    assert late is not None and late.breached_at == NOW + 30 * MIN
    assert on_time is not None and on_time.breached_at is None


async def test_a_sweep_without_a_policy_or_overdue_promises_records_nothing(store: Store) -> None:
    await enqueue(store, promised("late", 10 * MIN, service_key=1.0, team_id="technical"))
    assert (await sweep_once(uow=store.uow, now=NOW + 30 * MIN, callback_ttl=DAY)).breaches == 0
    early = await sweep_once(uow=store.uow, now=NOW + 9 * MIN, callback_ttl=DAY, policy=techcorp_policy())
    assert early.breaches == 0
