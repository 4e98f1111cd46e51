"""Assignments on SQLite and PostgreSQL: atomic reservation under concurrency, release semantics and
idempotency, expiry, handle time, and the one-active-assignment-per-call guarantee."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from routing_service.domain.errors import Conflict
from routing_service.domain.lifecycle import AssignmentStage
from routing_service.domain.models import AgentStatus
from routing_service.store import Store
from tests.service.store_builders import HOLD, NOW, add_agents, make_agent, reserve

CONNECTED, WRAP_UP, COMPLETED, MISSED = (
    AssignmentStage.CONNECTED,
    AssignmentStage.WRAP_UP,
    AssignmentStage.COMPLETED,
    AssignmentStage.MISSED,
)


async def _attempt(store: Store, agent_id: str, call_id: str) -> bool:
    async with store.uow() as uow:
        won = await uow.assignments.reserve(
            agent_id=agent_id, call_id=call_id, purpose="live", now=NOW, expires_at=NOW + HOLD
        )
        await uow.commit()
        return won


@pytest.mark.parametrize("capacity", [1, 3])
async def test_exactly_capacity_reservations_win_when_50_race_for_one_agent(
    store: Store, capacity: int
) -> None:
    await add_agents(store, make_agent("alice", capacity=capacity))
    results = await asyncio.gather(*(_attempt(store, "alice", f"call-{i}") for i in range(50)))
    assert results.count(True) == capacity
    async with store.uow() as uow:
        agent = await uow.agents.get("alice")
        holders = [await uow.assignments.active_for_call(f"call-{i}", "live") for i in range(50)]
    assert agent is not None and agent.active_assignments == capacity
    assert sum(holder == "alice" for holder in holders) == capacity
    assert [won for won in results] == [holder is not None for holder in holders]


async def test_reserve_fails_when_agent_not_available_or_unknown(store: Store) -> None:
    await add_agents(
        store, make_agent("off", status=AgentStatus.OFFLINE), make_agent("wrap", status=AgentStatus.WRAP_UP)
    )
    assert not await reserve(store, "off", "c1")
    assert not await reserve(store, "wrap", "c2")
    assert not await reserve(store, "ghost", "c3")
    async with store.uow() as uow:
        off = await uow.agents.get("off")
    assert off is not None and off.active_assignments == 0


async def test_reserve_is_undone_when_transaction_not_committed(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    async with store.uow() as uow:
        assert await uow.assignments.reserve(
            agent_id="alice", call_id="c1", purpose="live", now=NOW, expires_at=NOW + HOLD
        )
    async with store.uow() as uow:
        agent = await uow.agents.get("alice")
        assert await uow.assignments.active_for_call("c1", "live") is None
    assert agent is not None and agent.active_assignments == 0


async def test_reserve_raises_conflict_when_call_already_holds_assignment(store: Store) -> None:
    await add_agents(store, make_agent("alice"), make_agent("bob", capacity=2))
    assert await reserve(store, "alice", "c1")
    async with store.uow() as uow:
        with pytest.raises(Conflict):
            await uow.assignments.reserve(
                agent_id="bob", call_id="c1", purpose="live", now=NOW, expires_at=NOW + HOLD
            )
        bob = await uow.agents.get("bob")
        # a different purpose for the same call is a separate assignment
        assert await uow.assignments.reserve(
            agent_id="bob", call_id="c1", purpose="callback", now=NOW, expires_at=NOW + HOLD
        )
        await uow.commit()
    assert bob is not None and bob.active_assignments == 0
    async with store.uow() as uow:
        assert await uow.assignments.active_for_call("c1", "live") == "alice"
        assert await uow.assignments.active_for_call("c1", "callback") == "bob"


async def test_release_frees_slot_and_marks_idle_when_last_assignment_ends(store: Store) -> None:
    await add_agents(store, make_agent("alice", teams=("technical", "enterprise"), capacity=2))
    assert await reserve(store, "alice", "c1")
    assert await reserve(store, "alice", "c2")
    first_end = NOW + timedelta(minutes=4)
    async with store.uow() as uow:
        released = await uow.assignments.release("c1", "live", first_end, "ended")
        await uow.commit()
    assert released is not None
    assert (released.call_id, released.agent_id, released.free_slots) == ("c1", "alice", 1)
    assert released.team_ids == ("technical", "enterprise")
    async with store.uow() as uow:
        agent = await uow.agents.get("alice")
    assert agent is not None and agent.active_assignments == 1 and agent.idle_since is None
    second_end = NOW + timedelta(minutes=6)
    async with store.uow() as uow:
        released = await uow.assignments.release("c2", "live", second_end, "ended")
        await uow.commit()
        agent = await uow.agents.get("alice")
    assert released is not None and released.free_slots == 2
    assert agent is not None and agent.active_assignments == 0 and agent.idle_since == second_end


async def test_release_returns_none_when_repeated_or_unknown(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "c1")
    async with store.uow() as uow:
        assert await uow.assignments.release("c1", "live", NOW, "ended") is not None
        await uow.commit()
    async with store.uow() as uow:
        assert await uow.assignments.release("c1", "live", NOW, "ended again") is None
        assert await uow.assignments.release("c1", "callback", NOW, "wrong purpose") is None
        assert await uow.assignments.release("nope", "live", NOW, "unknown") is None
        agent = await uow.agents.get("alice")
    assert agent is not None and agent.active_assignments == 0
    assert await reserve(store, "alice", "c1"), "a released call may be reserved again"


async def test_release_never_goes_below_zero_when_counter_was_reset(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "c1")
    async with store.uow() as uow:
        link = uow._session
        assert link is not None
        from sqlalchemy import text

        await link.execute(text("UPDATE agents SET active_assignments = 0"))
        released = await uow.assignments.release("c1", "live", NOW, "ended")
        agent = await uow.agents.get("alice")
    assert released is not None and released.free_slots == 1
    assert agent is not None and agent.active_assignments == 0


async def test_expired_lists_only_active_overdue_when_some_released(store: Store) -> None:
    await add_agents(store, make_agent("alice", capacity=5))
    assert await reserve(store, "alice", "old", hold=timedelta(minutes=1))
    assert await reserve(store, "alice", "older", now=NOW - timedelta(minutes=5), hold=timedelta(minutes=1))
    assert await reserve(store, "alice", "fresh", hold=timedelta(hours=2))
    assert await reserve(store, "alice", "gone", hold=timedelta(minutes=1))
    async with store.uow() as uow:
        await uow.assignments.release("gone", "live", NOW, "ended")
        await uow.commit()
    later = NOW + timedelta(minutes=10)
    async with store.uow() as uow:
        due = await uow.assignments.expired(later, 10)
        assert [(a.call_id, a.purpose, a.stage) for a in due] == [
            ("older", "live", AssignmentStage.RESERVED),
            ("old", "live", AssignmentStage.RESERVED),
        ]
        assert [a.call_id for a in await uow.assignments.expired(later, 1)] == ["older"]
        assert await uow.assignments.expired(NOW - timedelta(hours=1), 10) == []


async def _converse(
    store: Store, agent_id: str, call_id: str, *, team: str, start: datetime, minutes: float
) -> None:
    """Reserve, hand over at `start` (connected), complete `minutes` later (wrap-up), then free."""
    assert await reserve(store, agent_id, call_id, now=start - timedelta(seconds=30), team_id=team)
    async with store.uow() as uow:
        assert await uow.assignments.transition(call_id, "live", CONNECTED, start, "handed over")
        end = start + timedelta(minutes=minutes)
        assert await uow.assignments.transition(call_id, "live", WRAP_UP, end, "completed")
        assert await uow.assignments.transition(
            call_id, "live", COMPLETED, end + timedelta(minutes=1), "wrap-up over"
        )
        await uow.commit()


async def test_recent_handle_time_averages_team_conversations_when_completed_since(store: Store) -> None:
    await add_agents(
        store, make_agent("alice", capacity=5), make_agent("bob", teams=("billing",), capacity=5)
    )
    async with store.uow() as uow:
        assert await uow.assignments.recent_handle_time("technical", NOW) is None
    await _converse(store, "alice", "c1", team="technical", start=NOW, minutes=4)
    await _converse(store, "alice", "c2", team="technical", start=NOW, minutes=8)
    await _converse(store, "alice", "old", team="technical", start=NOW - timedelta(hours=3), minutes=60)
    await _converse(store, "bob", "b1", team="billing", start=NOW, minutes=30)
    # reservations that never connected have no handle time, however long they were held
    assert await reserve(store, "alice", "unused", now=NOW - timedelta(hours=1), team_id="technical")
    assert await reserve(store, "alice", "missed", now=NOW - timedelta(hours=1), team_id="technical")
    assert await reserve(store, "alice", "still-talking", team_id="technical")
    async with store.uow() as uow:
        await uow.assignments.release("unused", "live", NOW + timedelta(minutes=30), "ended")
        await uow.assignments.transition("missed", "live", MISSED, NOW + timedelta(minutes=30), "busy")
        await uow.assignments.transition("still-talking", "live", CONNECTED, NOW, "handed over")
        await uow.commit()
    async with store.uow() as uow:
        mean = await uow.assignments.recent_handle_time("technical", NOW - timedelta(minutes=1))
        billing = await uow.assignments.recent_handle_time("billing", NOW - timedelta(minutes=1))
    assert mean is not None and abs(mean.total_seconds() - 6 * 60) < 0.01
    assert billing is not None and abs(billing.total_seconds() - 30 * 60) < 0.01


async def test_recent_handle_time_averages_only_the_teams_latest_conversations_when_given_a_sample_size(
    store: Store,
) -> None:
    # Newest first: c4 (2 min, ended last), c3 (10 min), then the older c2 and c1 fall outside a sample
    # of two; bob's billing call is newer still but of another team.
    await add_agents(
        store, make_agent("alice", capacity=9), make_agent("bob", teams=("billing",), capacity=9)
    )
    calls = (("c1", 0, 40), ("c2", 1, 30), ("c3", 2, 10), ("c4", 3, 2))
    for call, started, minutes in calls:
        start = NOW + timedelta(minutes=started * 60)
        await _converse(store, "alice", call, team="technical", start=start, minutes=minutes)
    await _converse(store, "bob", "b1", team="billing", start=NOW + timedelta(hours=4), minutes=60)
    async with store.uow() as uow:
        latest_two = await uow.assignments.recent_handle_time("technical", NOW, limit=2)
        all_four = await uow.assignments.recent_handle_time("technical", NOW, limit=100)
        in_window = await uow.assignments.recent_handle_time(
            "technical", NOW + timedelta(minutes=150), limit=100
        )
    assert latest_two is not None and abs(latest_two.total_seconds() - 6 * 60) < 0.01
    assert all_four is not None and abs(all_four.total_seconds() - 20.5 * 60) < 0.01
    assert in_window is not None and abs(in_window.total_seconds() - 2 * 60) < 0.01, (
        "conversations that ended before `since` are not sampled"
    )


async def test_reserve_keeps_single_slot_when_call_already_holds_that_agent(store: Store) -> None:
    await add_agents(store, make_agent("alice", capacity=2), make_agent("solo", capacity=1))
    assert await reserve(store, "alice", "c1")
    assert await reserve(store, "alice", "c1")
    assert await reserve(store, "solo", "c2")
    assert await reserve(store, "solo", "c2"), "full, but the call already holds this agent's slot"
    assert not await reserve(store, "solo", "c3")
    async with store.uow() as uow:
        alice = await uow.agents.get("alice")
        solo = await uow.agents.get("solo")
    assert alice is not None and alice.active_assignments == 1
    assert solo is not None and solo.active_assignments == 1


async def test_one_reservation_wins_when_replicas_share_the_database(database_url: str) -> None:
    """Five engines (as five routing replicas or processes would have) race for one slot: on SQLite each
    has its own connection, so this exercises BEGIN IMMEDIATE and the busy timeout across connections."""
    replicas = [await Store.open(database_url) for _ in range(5)]
    try:
        await add_agents(replicas[0], make_agent("alice", capacity=1))
        results = await asyncio.gather(*(_attempt(replicas[i % 5], "alice", f"call-{i}") for i in range(50)))
        async with replicas[1].uow() as uow:
            agent = await uow.agents.get("alice")
    finally:
        for replica in replicas:
            await replica.close()
    assert results.count(True) == 1
    assert agent is not None and agent.active_assignments == 1


async def test_cancelled_unit_of_work_rolls_back_and_frees_connection_when_request_is_abandoned(
    store: Store,
) -> None:
    await add_agents(store, make_agent("alice"))
    holding = asyncio.Event()

    async def abandoned() -> None:
        async with store.uow() as uow:
            assert await uow.assignments.reserve(
                agent_id="alice", call_id="c1", purpose="live", now=NOW, expires_at=NOW + HOLD
            )
            holding.set()
            await asyncio.Event().wait()  # the client went away mid-request

    task = asyncio.create_task(abandoned())
    await holding.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.uow() as uow:
        agent = await uow.agents.get("alice")
    assert agent is not None and agent.active_assignments == 0
    assert await reserve(store, "alice", "c2")
