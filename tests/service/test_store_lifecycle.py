"""The assignment lifecycle in the store, on SQLite and PostgreSQL: stage moves (atomic, idempotent, slot
given back exactly once), the call's live and missed assignments, hand-over of a held slot, misses in a row
and away, and the 0006 migration of existing rows."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine as create_engine

from routing_service.domain.errors import Conflict
from routing_service.domain.lifecycle import AssignmentStage
from routing_service.domain.models import AgentStatus, Customer
from routing_service.store import Store
from routing_service.store.migrate import upgrade
from tests.service.store_builders import HOLD, NOW, add_agents, make_agent, reserve

S = AssignmentStage
LATER = NOW + timedelta(minutes=3)


async def _agent_load(store: Store, agent_id: str) -> tuple[int, AgentStatus, int]:
    async with store.uow() as uow:
        agent = await uow.agents.get(agent_id)
    assert agent is not None
    return agent.active_assignments, agent.status, agent.missed_in_row


async def test_reserve_stores_team_and_starts_reserved_when_call_escalates(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "c1", team_id="technical")
    async with store.uow() as uow:
        live = await uow.assignments.live_for_call("c1")
        assert await uow.assignments.live_for_call("c1", "callback") is None
        assert await uow.assignments.live_for_call("other") is None
    assert live is not None
    assert (live.agent_id, live.team_id, live.stage, live.reserved_at) == (
        "alice",
        "technical",
        S.RESERVED,
        NOW,
    )
    assert live.expires_at == NOW + HOLD and live.holds_slot


async def test_stages_move_forward_and_keep_the_slot_until_completed(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "c1", team_id="technical")
    async with store.uow() as uow:
        offered = await uow.assignments.transition("c1", "live", S.OFFERED, NOW, "forwarding")
        connected = await uow.assignments.transition(
            "c1",
            "live",
            S.CONNECTED,
            LATER,
            "assistant-forwarded-call",
            expires_at=LATER + timedelta(hours=1),
        )
        wrap = await uow.assignments.transition(
            "c1", "live", S.WRAP_UP, LATER + timedelta(minutes=10), "completed", expires_at=NOW + HOLD * 2
        )
        await uow.commit()
    assert offered is not None and offered.released is None
    assert offered.assignment.stage is S.OFFERED and offered.assignment.offered_at == NOW
    assert offered.assignment.expires_at == NOW + HOLD, "no new time-out given: kept"
    assert connected is not None and connected.released is None
    assert connected.assignment.connected_at == LATER and connected.assignment.offered_at == NOW
    assert connected.assignment.expires_at == LATER + timedelta(hours=1)
    assert wrap is not None and wrap.released is None
    assert wrap.assignment.completed_at == LATER + timedelta(minutes=10)
    assert (await _agent_load(store, "alice"))[0] == 1, "still busy through wrap-up"
    async with store.uow() as uow:
        done = await uow.assignments.transition(
            "c1", "live", S.COMPLETED, LATER + timedelta(minutes=11), "over"
        )
        await uow.commit()
    assert done is not None and done.released is not None
    assert done.released.agent_id == "alice" and done.released.free_slots == 1
    assert done.released.team_ids == ("technical",)
    assert done.assignment.stage is S.COMPLETED
    assert done.assignment.completed_at == LATER + timedelta(minutes=10), "end of conversation kept"
    assert done.assignment.released_at == LATER + timedelta(minutes=11)
    assert (await _agent_load(store, "alice"))[0] == 0
    async with store.uow() as uow:
        assert await uow.assignments.live_for_call("c1") is None
        latest = await uow.assignments.latest_for_call("c1")
    assert latest is not None and latest.stage is S.COMPLETED


async def test_transition_changes_nothing_when_repeated_or_not_allowed_from_the_stage(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "c1")
    async with store.uow() as uow:
        assert await uow.assignments.transition("c1", "live", S.WRAP_UP, NOW, "too early") is None
        assert await uow.assignments.transition("c1", "live", S.COMPLETED, NOW, "too early") is None
        assert await uow.assignments.transition("c1", "live", S.CONNECTED, NOW, "x") is not None
        assert await uow.assignments.transition("c1", "live", S.CONNECTED, NOW, "again") is None
        assert await uow.assignments.transition("c1", "live", S.MISSED, NOW, "busy") is None, "talking"
        assert await uow.assignments.transition("c1", "live", S.RELEASED, NOW, "ended") is None
        assert await uow.assignments.transition("ghost", "live", S.OFFERED, NOW, "x") is None
        await uow.commit()
    with pytest.raises(ValueError):
        async with store.uow() as uow:
            await uow.assignments.transition("c1", "live", S.RESERVED, NOW, "x")
    assert (await _agent_load(store, "alice"))[0] == 1


@pytest.mark.parametrize("to_stage", [S.MISSED, S.RELEASED])
async def test_a_miss_or_unused_release_frees_the_slot_once_when_events_race(
    store: Store, to_stage: AssignmentStage
) -> None:
    await add_agents(store, make_agent("alice", capacity=2))
    assert await reserve(store, "alice", "c1")
    assert await reserve(store, "alice", "c2")

    async def move() -> bool:
        async with store.uow() as uow:
            change = await uow.assignments.transition("c1", "live", to_stage, NOW, "busy")
            await uow.commit()
            return change is not None

    results = await asyncio.gather(*(move() for _ in range(8)))
    assert results.count(True) == 1
    assert (await _agent_load(store, "alice"))[0] == 1
    async with store.uow() as uow:
        missed = await uow.assignments.missed_agents("c1")
    assert missed == ({"alice"} if to_stage is S.MISSED else set())


async def test_missed_agents_lists_everyone_who_missed_the_call(store: Store) -> None:
    await add_agents(store, make_agent("alice"), make_agent("bob"), make_agent("carol", capacity=2))
    for agent_id in ("alice", "bob"):
        assert await reserve(store, agent_id, "c1")
        async with store.uow() as uow:
            assert await uow.assignments.transition("c1", "live", S.MISSED, NOW, "no-answer")
            await uow.commit()
    assert await reserve(store, "carol", "c1")
    assert await reserve(store, "carol", "c2")
    async with store.uow() as uow:
        assert await uow.assignments.missed_agents("c1") == {"alice", "bob"}
        assert await uow.assignments.missed_agents("c2") == set()
        await uow.customers.upsert(Customer(number="+15551230001", tier="premium", account_name="Acme"), NOW)
        offers = await uow.assignments.offers_for_call("c1")
        quiet = await uow.assignments.offers_for_call("c3")
        # With a caller key, the customer comes in the same read (one statement on PostgreSQL).
        with_customer = await uow.assignments.offers_for_call("c1", "+15551230001")
        quiet_customer = await uow.assignments.offers_for_call("c3", "+15551230001")
        unknown = await uow.assignments.offers_for_call("c1", "+15559999999")
        live = await uow.assignments.live_for_agents(["carol", "alice", "nobody"])
    assert offers.missed == {"alice", "bob"}
    assert offers.live is not None and (offers.live.agent_id, offers.live.stage) == ("carol", S.RESERVED)
    assert quiet.live is None and quiet.missed == frozenset()
    assert offers.customer is None and quiet.customer is None
    customer = with_customer.customer
    assert customer is not None and (customer.tier, customer.account_name) == ("premium", "Acme")
    assert (with_customer.live, with_customer.missed) == (offers.live, offers.missed)
    assert (quiet_customer.live, quiet_customer.missed, quiet_customer.customer) == (
        None,
        frozenset(),
        customer,
    )
    assert (unknown.live, unknown.missed, unknown.customer) == (offers.live, offers.missed, None)
    assert [(a.call_id, a.agent_id) for a in live] == [("c1", "carol"), ("c2", "carol")]


async def test_administrative_release_ends_any_stage_as_released(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "c1")
    async with store.uow() as uow:
        await uow.assignments.transition("c1", "live", S.CONNECTED, NOW, "handed over")
        released = await uow.assignments.release("c1", "live", LATER, "supervisor")
        await uow.commit()
    assert released is not None and released.free_slots == 1
    async with store.uow() as uow:
        latest = await uow.assignments.latest_for_call("c1")
    assert latest is not None and latest.stage is S.RELEASED and latest.reason == "supervisor"


async def test_hand_over_moves_a_held_callback_slot_onto_the_new_call_without_freeing_it(
    store: Store,
) -> None:
    await add_agents(store, make_agent("alice"))
    assert await reserve(store, "alice", "orig", purpose="callback", team_id="technical")
    async with store.uow() as uow:
        moved = await uow.assignments.hand_over(
            from_call_id="orig",
            from_purpose="callback",
            to_call_id="dial",
            to_purpose="live",
            team_id="technical",
            now=LATER,
            expires_at=LATER + HOLD,
        )
        again = await uow.assignments.hand_over(
            from_call_id="orig",
            from_purpose="callback",
            to_call_id="dial",
            to_purpose="live",
            team_id="technical",
            now=LATER,
            expires_at=LATER + HOLD,
        )
        await uow.commit()
    assert (moved, again) == ("alice", None)
    assert (await _agent_load(store, "alice"))[0] == 1, "the slot never went free"
    async with store.uow() as uow:
        live = await uow.assignments.live_for_call("dial")
        old = await uow.assignments.latest_for_call("orig", "callback")
    assert live is not None and (live.agent_id, live.stage, live.team_id) == (
        "alice",
        S.RESERVED,
        "technical",
    )
    assert live.reserved_at == LATER and live.expires_at == LATER + HOLD
    assert old is not None and old.stage is S.RELEASED and "dial" in old.reason


async def test_hand_over_gives_the_slot_back_when_the_new_call_is_held_by_someone_else(store: Store) -> None:
    await add_agents(store, make_agent("alice"), make_agent("bob"))
    assert await reserve(store, "alice", "orig", purpose="callback")
    assert await reserve(store, "bob", "dial")
    with pytest.raises(Conflict):
        async with store.uow() as uow:
            await uow.assignments.hand_over(
                from_call_id="orig",
                from_purpose="callback",
                to_call_id="dial",
                to_purpose="live",
                team_id=None,
                now=LATER,
                expires_at=LATER + HOLD,
            )
            await uow.commit()
    assert (await _agent_load(store, "alice"))[0] == 1, "rolled back: the callback still holds alice"


async def test_missed_offers_in_a_row_set_an_available_specialist_away_at_the_limit(store: Store) -> None:
    await add_agents(store, make_agent("alice"), make_agent("off", status=AgentStatus.OFFLINE))
    outcomes = []
    for _ in range(4):
        async with store.uow() as uow:
            missed = await uow.agents.note_missed_offer("alice", NOW, 3)
            await uow.commit()
        assert missed is not None
        outcomes.append((missed.agent.missed_in_row, missed.agent.status, missed.set_away))
    assert outcomes == [
        (1, AgentStatus.AVAILABLE, False),
        (2, AgentStatus.AVAILABLE, False),
        (3, AgentStatus.AWAY, True),
        (4, AgentStatus.AWAY, False),
    ]
    async with store.uow() as uow:
        assert await uow.agents.note_missed_offer("ghost", NOW, 3) is None
        for _ in range(3):
            offline = await uow.agents.note_missed_offer("off", NOW, 3)
        never = await uow.agents.note_missed_offer("off", NOW, 0)
        await uow.commit()
    assert offline is not None and offline.agent.status is AgentStatus.OFFLINE and not offline.set_away
    assert never is not None and not never.set_away
    async with store.uow() as uow:
        away = await uow.agents.page(team_id=None, status=AgentStatus.AWAY, limit=10, after_id=None)
        back = await uow.agents.set_status("alice", AgentStatus.AVAILABLE, LATER)
        await uow.commit()
    assert [a.agent_id for a in away] == ["alice"]
    assert back is not None and back.missed_in_row == 0 and back.status is AgentStatus.AVAILABLE


async def test_reset_misses_starts_the_count_over_when_the_specialist_takes_a_call(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    async with store.uow() as uow:
        await uow.agents.note_missed_offer("alice", NOW, 3)
        await uow.agents.note_missed_offer("alice", NOW, 3)
        await uow.agents.reset_misses("alice", NOW)
        await uow.agents.reset_misses("ghost", NOW)
        await uow.commit()
    assert await _agent_load(store, "alice") == (0, AgentStatus.AVAILABLE, 0)


async def test_0006_migrates_existing_assignments_to_reserved_and_released(database_url: str) -> None:
    await upgrade(database_url, "0005_leaner_decision_writes")
    engine = create_engine(database_url)
    naive = NOW.replace(tzinfo=None)
    try:
        async with engine.begin() as connection:
            now = naive if connection.dialect.name == "sqlite" else NOW
            await connection.execute(
                text(
                    "INSERT INTO agents (agent_id, display_name, dest_number, skills, max_complexity,"
                    " capacity, status, active_assignments, updated_at)"
                    " VALUES ('alice', 'Alice', '+15550100201', '[]', 4, 2, 'available', 1, :now)"
                ),
                {"now": now},
            )
            await connection.execute(
                text(
                    "INSERT INTO assignments (call_id, purpose, agent_id, state, reserved_at, expires_at,"
                    " released_at, release_reason) VALUES"
                    " ('held', 'live', 'alice', 'active', :now, :now, NULL, ''),"
                    " ('done', 'live', 'alice', 'released', :now, :now, :now, 'ended')"
                ),
                {"now": now},
            )
    finally:
        await engine.dispose()
    await upgrade(database_url)
    async with await Store.open(database_url) as store, store.uow() as uow:
        held = await uow.assignments.live_for_call("held")
        done = await uow.assignments.latest_for_call("done")
        alice = await uow.agents.get("alice")
    assert held is not None and held.stage is S.RESERVED and held.team_id is None
    assert done is not None and done.stage is S.RELEASED
    assert alice is not None and alice.missed_in_row == 0
