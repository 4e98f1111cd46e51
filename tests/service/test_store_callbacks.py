"""Callback queue on SQLite and PostgreSQL: enqueue idempotency, service order and positions computed on
read, ahead_of, reservation and finishing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from routing_service.domain.errors import Conflict, InvalidRequest, NotFound
from routing_service.domain.models import CallbackState, CallbackTicket
from routing_service.store import Store
from tests.service.store_builders import NOW, enqueue, make_ticket


def _tied_technical_tickets() -> list[CallbackTicket]:
    """t00..t11 in team technical, tying on service_key and enqueued_at so the call_id tie-break matters."""
    return [
        make_ticket(f"t{i:02d}", service_key=float(i % 4), enqueued_at=NOW + timedelta(seconds=i % 3))
        for i in range(12)
    ]


async def test_enqueue_returns_existing_ticket_when_call_already_queued(store: Store) -> None:
    first = make_ticket("c1", service_key=100.0, tier="premium")
    async with store.uow() as uow:
        place = await uow.callbacks.place("technical", 100.0)
        stored = await uow.callbacks.enqueue(replace(first, position=place))
        again = await uow.callbacks.enqueue(make_ticket("c1", service_key=1.0, tier="enterprise"))
        await uow.commit()
    assert stored.position == 1 and stored.state is CallbackState.WAITING
    assert again == stored
    assert (again.service_key, again.tier) == (100.0, "premium")
    async with store.uow() as uow:
        got = await uow.callbacks.get("c1")
        assert await uow.callbacks.get("c404") is None
    assert got == stored
    assert got is not None and got.enqueued_at == NOW and got.enqueued_at.tzinfo is not None


async def test_positions_follow_service_key_when_priorities_differ(store: Store) -> None:
    await enqueue(
        store,
        make_ticket("late-low", service_key=300.0, enqueued_at=NOW),
        make_ticket("vip", service_key=100.0, enqueued_at=NOW + timedelta(minutes=1)),
        make_ticket("tie-later", service_key=200.0, enqueued_at=NOW + timedelta(seconds=2)),
        make_ticket("tie-earlier", service_key=200.0, enqueued_at=NOW + timedelta(seconds=1)),
        make_ticket("billing", team_id="billing", service_key=1.0),
    )
    async with store.uow() as uow:
        queue = await uow.callbacks.open_in_team("technical", 10)
        top = await uow.callbacks.open_in_team("technical", 2)
        singles = [await uow.callbacks.get(t.call_id) for t in queue]
        billing = await uow.callbacks.get("billing")
    assert [(t.call_id, t.position) for t in queue] == [
        ("vip", 1),
        ("tie-earlier", 2),
        ("tie-later", 3),
        ("late-low", 4),
    ]
    assert [t.call_id for t in top] == ["vip", "tie-earlier"]
    assert [t.position for t in singles if t is not None] == [1, 2, 3, 4]
    assert billing is not None and billing.position == 1


async def test_ahead_of_counts_waiting_with_lower_or_equal_key_when_asked(store: Store) -> None:
    await enqueue(
        store,
        make_ticket("a", service_key=10.0),
        make_ticket("b", service_key=20.0),
        make_ticket("c", service_key=30.0),
        make_ticket("other", team_id="billing", service_key=1.0),
    )
    async with store.uow() as uow:
        assert await uow.callbacks.ahead_of("technical", 5.0) == 0
        assert await uow.callbacks.ahead_of("technical", 20.0) == 2
        assert await uow.callbacks.ahead_of("technical", 25.0) == 2
        assert await uow.callbacks.ahead_of("technical", 99.0) == 3
        await uow.callbacks.mark_reserved("a", "alice", NOW + timedelta(minutes=5))
        await uow.callbacks.finish("b", CallbackState.CANCELLED, NOW, "caller hung up")
        assert await uow.callbacks.ahead_of("technical", 99.0) == 1


async def test_reserved_ticket_stays_first_when_higher_priority_arrives(store: Store) -> None:
    await enqueue(store, make_ticket("head", service_key=50.0), make_ticket("next", service_key=60.0))
    async with store.uow() as uow:
        reserved = await uow.callbacks.mark_reserved("head", "alice", NOW + timedelta(minutes=5))
        await uow.callbacks.enqueue(make_ticket("vip", service_key=10.0))
        await uow.commit()
    assert reserved.state is CallbackState.RESERVED and reserved.agent_id == "alice"
    assert reserved.reserved_until == NOW + timedelta(minutes=5)
    async with store.uow() as uow:
        queue = await uow.callbacks.open_in_team("technical", 10)
        vip = await uow.callbacks.get("vip")
        head = await uow.callbacks.get("head")
    assert [(t.call_id, t.state, t.position) for t in queue] == [
        ("head", CallbackState.RESERVED, 1),
        ("vip", CallbackState.WAITING, 2),
        ("next", CallbackState.WAITING, 3),
    ]
    assert vip is not None and vip.position == 2
    assert head is not None and head.position == 1


async def test_finish_closes_ticket_and_frees_position_when_terminal(store: Store) -> None:
    await enqueue(store, make_ticket("a", service_key=1.0), make_ticket("b", service_key=2.0))
    done_at = NOW + timedelta(minutes=3)
    async with store.uow() as uow:
        await uow.callbacks.mark_reserved("a", "alice", NOW + timedelta(minutes=5))
        finished = await uow.callbacks.finish("a", CallbackState.CONNECTED, done_at, "talked to alice")
        await uow.commit()
    assert (finished.state, finished.finished_at, finished.note, finished.position) == (
        CallbackState.CONNECTED,
        done_at,
        "talked to alice",
        0,
    )
    async with store.uow() as uow:
        b = await uow.callbacks.get("b")
        a = await uow.callbacks.get("a")
        retried = await uow.callbacks.finish(
            "a", CallbackState.CONNECTED, done_at + timedelta(hours=1), "dup"
        )
        with pytest.raises(Conflict):
            await uow.callbacks.finish("a", CallbackState.EXPIRED, done_at, "too late")
        with pytest.raises(Conflict):
            await uow.callbacks.mark_reserved("a", "bob", NOW)
        with pytest.raises(InvalidRequest):
            await uow.callbacks.finish("b", CallbackState.WAITING, done_at, "not terminal")
        with pytest.raises(NotFound):
            await uow.callbacks.finish("zzz", CallbackState.CANCELLED, done_at, "")
        with pytest.raises(NotFound):
            await uow.callbacks.mark_reserved("zzz", "bob", NOW)
    assert b is not None and b.position == 1
    assert a == finished
    assert retried == finished


async def test_find_filters_by_team_and_states_when_mixed(store: Store) -> None:
    await enqueue(
        store,
        make_ticket("w1", service_key=2.0),
        make_ticket("w2", service_key=1.0),
        make_ticket("gone", service_key=0.5),
        make_ticket("bw", team_id="billing", service_key=1.0),
    )
    async with store.uow() as uow:
        await uow.callbacks.finish("gone", CallbackState.EXPIRED, NOW, "ttl")
        await uow.commit()
    async with store.uow() as uow:
        waiting = await uow.callbacks.find(team_id="technical", states={CallbackState.WAITING}, limit=10)
        closed = await uow.callbacks.find(team_id=None, states={CallbackState.EXPIRED}, limit=10)
        everything = await uow.callbacks.find(team_id=None, states=set(), limit=10)
        limited = await uow.callbacks.find(team_id=None, states=set(), limit=2)
    assert [(t.call_id, t.position) for t in waiting] == [("w2", 1), ("w1", 2)]
    assert [(t.call_id, t.position, t.note) for t in closed] == [("gone", 0, "ttl")]
    assert sorted(t.call_id for t in everything) == ["bw", "gone", "w1", "w2"]
    assert len(limited) == 2
    async with store.uow() as uow:
        await uow.callbacks.mark_reserved("w1", "alice", NOW + timedelta(minutes=5))
        open_everywhere = await uow.callbacks.find(
            team_id=None, states={CallbackState.WAITING, CallbackState.RESERVED}, limit=10
        )
    assert [(t.team_id, t.call_id, t.position) for t in open_everywhere] == [
        ("billing", "bw", 1),
        ("technical", "w1", 1),
        ("technical", "w2", 2),
    ]


async def test_waiting_head_matches_general_path_when_queue_is_mixed(store: Store) -> None:
    await enqueue(
        store,
        *_tied_technical_tickets(),
        *(make_ticket(f"b{i:02d}", team_id="billing", service_key=float(i)) for i in range(5)),
    )
    async with store.uow() as uow:
        for call_id in ("t05", "t02", "b03"):
            await uow.callbacks.mark_reserved(call_id, "alice", NOW + timedelta(minutes=5))
        await uow.callbacks.finish("t00", CallbackState.CONNECTED, NOW, "done")
        await uow.callbacks.finish("t09", CallbackState.EXPIRED, NOW, "ttl")
        await uow.callbacks.finish("b01", CallbackState.CANCELLED, NOW, "hung up")
        await uow.commit()
    async with store.uow() as uow:
        heads = {
            (team, limit): await uow.callbacks.find(team_id=team, states={CallbackState.WAITING}, limit=limit)
            for team in ("technical", "billing")
            for limit in (1, 3, 100)
        }
        # The general path: every open ticket of every team, ranked over each team's whole queue.
        general = await uow.callbacks.find(
            team_id=None, states={CallbackState.WAITING, CallbackState.RESERVED}, limit=1000
        )
        nobody = await uow.callbacks.find(team_id="nobody", states={CallbackState.WAITING}, limit=5)
        none_asked = await uow.callbacks.find(team_id="technical", states={CallbackState.WAITING}, limit=0)
    for (team, limit), head in heads.items():
        expected = [t for t in general if t.team_id == team and t.state is CallbackState.WAITING][:limit]
        assert head == expected
    assert [(t.call_id, t.position) for t in heads[("technical", 3)]] == [("t04", 3), ("t08", 4), ("t01", 5)]
    assert [(t.call_id, t.position) for t in heads[("billing", 1)]] == [("b00", 2)]
    assert len(heads[("technical", 100)]) == 8
    assert nobody == [] and none_asked == []


async def test_get_positions_and_waiting_before_agree_with_the_ranking_when_keys_tie(store: Store) -> None:
    await enqueue(store, *_tied_technical_tickets())
    async with store.uow() as uow:
        for call_id in ("t05", "t02"):
            await uow.callbacks.mark_reserved(call_id, "alice", NOW + timedelta(minutes=5))
        await uow.callbacks.finish("t00", CallbackState.CONNECTED, NOW, "done")
        await uow.commit()
    async with store.uow() as uow:
        ranked = await uow.callbacks.find(
            team_id="technical", states={CallbackState.WAITING, CallbackState.RESERVED}, limit=100
        )
        singly = [await uow.callbacks.get(t.call_id) for t in ranked]
        blocked = [await uow.callbacks.waiting_before(t) for t in ranked]
    assert [t.position for t in ranked] == list(range(1, 12))
    assert [t.position if t else None for t in singly] == list(range(1, 12))
    # Served first: both RESERVED tickets and the first WAITING one; every later WAITING one is blocked.
    first_waiting = next(i for i, t in enumerate(ranked) if t.state is CallbackState.WAITING)
    assert blocked == [t.state is CallbackState.WAITING and i > first_waiting for i, t in enumerate(ranked)]


@pytest.mark.parametrize(
    "states", [{CallbackState.WAITING, CallbackState.RESERVED}, {CallbackState.WAITING}, set()]
)
async def test_find_pages_through_every_ticket_once_in_order_when_given_each_pages_last_ticket(
    store: Store, states: set[CallbackState]
) -> None:
    await enqueue(
        store,
        *_tied_technical_tickets(),
        *(make_ticket(f"b{i:02d}", team_id="billing", service_key=float(i % 2)) for i in range(5)),
    )
    async with store.uow() as uow:
        for call_id in ("t05", "t02", "b03"):
            await uow.callbacks.mark_reserved(call_id, "alice", NOW + timedelta(minutes=5))
        await uow.callbacks.finish("t09", CallbackState.EXPIRED, NOW, "ttl")
        await uow.commit()
    async with store.uow() as uow:
        whole = await uow.callbacks.find(team_id=None, states=states, limit=1000)
        pages: list[list[CallbackTicket]] = []
        after: CallbackTicket | None = None
        for _ in range(len(whole)):  # bounded: a cursor that did not advance would loop forever
            page = await uow.callbacks.find(team_id=None, states=states, limit=3, after=after)
            if not page:
                break
            pages.append(page)
            after = page[-1]
        technical = await uow.callbacks.find(team_id="technical", states=states, limit=4)
        rest = await uow.callbacks.find(team_id="technical", states=states, limit=100, after=technical[-1])
    assert [t for page in pages for t in page] == whole, "same tickets, same order, same positions"
    assert all(len(page) == 3 for page in pages[:-1])
    assert technical + rest == [t for t in whole if t.team_id == "technical"]
