"""Decision audit log on SQLite and PostgreSQL: full round trip with trace, duplicates, latest per call,
keyset paging newest first with filters."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from dataclasses import replace
from datetime import timedelta

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import pytest

from routing_service.app.ports import DuplicateDecision
from routing_service.domain.models import DecisionKind, Destination
from routing_service.store import Store
from routing_service.store.decisions import decision_to_body
from routing_service.store.postgres import asyncpg_connect_args
from routing_service.store.sqlite import SqliteDatabase
from tests.service.store_builders import HOLD, NOW, add_agents, make_agent, make_decision, make_ticket


async def test_decision_round_trips_with_trace_when_stored(store: Store) -> None:
    decision = replace(
        make_decision("20261123090000000000-aaaa", "call-1"),
        missed_agent_ids=("a-missed",),
        callback_of_call_id="call-0",
    )
    callback = replace(
        make_decision("20261123090000000001-bbbb", "call-2", kind=DecisionKind.CALLBACK, agent_id=None),
        destination=Destination(number="+15550100600"),
        estimated_wait=None,
        claimed_complexity=None,
        callback=replace(
            make_ticket("call-2", service_key=1.5e9), position=3, first_message="We are calling you back."
        ),
    )
    async with store.uow() as uow:
        await uow.decisions.add(decision)
        await uow.decisions.add(callback)
        await uow.commit()
    async with store.uow() as uow:
        got = await uow.decisions.get("call-1", "tool-1")
        got_callback = await uow.decisions.get("call-2", "tool-1")
        assert await uow.decisions.get("call-1", "other-tool") is None
    assert got == decision
    assert got_callback == callback
    assert got is not None and got.trace == decision.trace and got.decided_at.tzinfo is not None


async def test_add_raises_duplicate_when_same_call_and_tool_call(store: Store) -> None:
    async with store.uow() as uow:
        await uow.decisions.add(make_decision("d1", "call-1"))
        await uow.commit()
    async with store.uow() as uow:
        with pytest.raises(DuplicateDecision):
            await uow.decisions.add(make_decision("d2", "call-1"))
        # the unit of work stays usable after the duplicate
        await uow.decisions.add(make_decision("d3", "call-1", "tool-2"))
        await uow.commit()
    async with store.uow() as uow:
        kept = await uow.decisions.get("call-1", "tool-1")
    assert kept is not None and kept.decision_id == "d1"


async def test_reservation_rolls_back_when_decision_is_duplicate(store: Store) -> None:
    await add_agents(store, make_agent("alice"))
    async with store.uow() as uow:
        await uow.decisions.add(make_decision("d1", "call-1"))
        await uow.commit()
    with pytest.raises(DuplicateDecision):
        async with store.uow() as uow:
            assert await uow.assignments.reserve(
                agent_id="alice", call_id="call-1", purpose="live", now=NOW, expires_at=NOW + HOLD
            )
            await uow.decisions.add(make_decision("d2", "call-1"))
            await uow.commit()
    async with store.uow() as uow:
        agent = await uow.agents.get("alice")
        assert await uow.assignments.active_for_call("call-1", "live") is None
    assert agent is not None and agent.active_assignments == 0


async def test_only_one_decision_stored_when_retries_race(store: Store) -> None:
    async def attempt(index: int) -> str:
        async with store.uow() as uow:
            try:
                await uow.decisions.add(make_decision(f"d{index}", "call-1"))
            except DuplicateDecision:
                return "duplicate"
            await uow.commit()
            return "stored"

    outcomes = await asyncio.gather(*(attempt(i) for i in range(10)))
    assert outcomes.count("stored") == 1 and outcomes.count("duplicate") == 9


async def test_latest_for_call_returns_newest_when_several_tool_calls(store: Store) -> None:
    async with store.uow() as uow:
        await uow.decisions.add(make_decision("d1", "call-1", "t1", decided_at=NOW))
        await uow.decisions.add(make_decision("d3", "call-1", "t3", decided_at=NOW + timedelta(seconds=5)))
        await uow.decisions.add(make_decision("d2", "call-1", "t2", decided_at=NOW + timedelta(seconds=5)))
        await uow.decisions.add(make_decision("d9", "call-2", "t1", decided_at=NOW + timedelta(hours=1)))
        await uow.commit()
    async with store.uow() as uow:
        latest = await uow.decisions.latest_for_call("call-1")
        assert await uow.decisions.latest_for_call("call-404") is None
    assert latest is not None and latest.decision_id == "d3"


async def test_page_walks_newest_first_when_filtered(store: Store) -> None:
    kinds = [DecisionKind.TRANSFER_AGENT, DecisionKind.CALLBACK, DecisionKind.TRANSFER_TEAM]
    decisions = [
        make_decision(
            f"{i:04d}",
            f"call-{i}",
            decided_at=NOW + timedelta(seconds=i // 2),  # pairs share a timestamp: decision_id breaks ties
            team_id="technical" if i % 2 else "billing",
            kind=kinds[i % 3],
        )
        for i in range(15)
    ]
    async with store.uow() as uow:
        for decision in decisions:
            await uow.decisions.add(decision)
        await uow.commit()

    async def walk(team_id: str | None, kind: DecisionKind | None) -> list[str]:
        seen: list[str] = []
        before: str | None = None
        async with store.uow() as uow:
            while page := await uow.decisions.page(team_id=team_id, kind=kind, limit=4, before=before):
                seen += [d.decision_id for d in page]
                before = page[-1].decision_id
        return seen

    newest_first = sorted(decisions, key=lambda d: (d.decided_at, d.decision_id), reverse=True)
    assert await walk(None, None) == [d.decision_id for d in newest_first]
    assert await walk("technical", None) == [d.decision_id for d in newest_first if d.team_id == "technical"]
    assert await walk(None, DecisionKind.CALLBACK) == [
        d.decision_id for d in newest_first if d.kind is DecisionKind.CALLBACK
    ]
    assert await walk("billing", DecisionKind.TRANSFER_AGENT) == [
        d.decision_id
        for d in newest_first
        if d.team_id == "billing" and d.kind is DecisionKind.TRANSFER_AGENT
    ]


async def _reserve_with(store: Store, agent_id: str, decision_id: str, call_id: str) -> bool:
    """Reserve `agent_id` for `call_id` with its decision, committed."""
    async with store.uow() as uow:
        won = await uow.assignments.reserve(
            agent_id=agent_id,
            call_id=call_id,
            purpose="live",
            now=NOW,
            expires_at=NOW + HOLD,
            team_id="technical",
            decision=make_decision(decision_id, call_id, agent_id=agent_id),
        )
        await uow.commit()
    return won


async def test_a_reservation_stores_its_decision_exactly_when_it_wins(store: Store) -> None:
    """On PostgreSQL the decision row comes from the reservation's own statement (fed by the assignment's
    insert); on SQLite it is the next statement: the same contract."""
    await add_agents(store, make_agent("alice"), make_agent("bob", capacity=2))
    assert await _reserve_with(store, "alice", "d-1", "call-1")
    assert not await _reserve_with(store, "alice", "d-2", "call-2"), "alice's only slot is taken"
    assert await _reserve_with(store, "bob", "d-3", "call-3")
    # The call holds bob already: the reservation stands (no second slot) and the decision is stored.
    async with store.uow() as uow:
        assert await uow.assignments.reserve(
            agent_id="bob",
            call_id="call-3",
            purpose="live",
            now=NOW,
            expires_at=NOW + HOLD,
            decision=make_decision("d-4", "call-3", "tool-2", agent_id="bob"),
        )
        await uow.commit()
    async with store.uow() as uow:
        stored = {
            f"{call}/{tool}": await uow.decisions.get(call, tool)
            for call, tool in (
                ("call-1", "tool-1"),
                ("call-2", "tool-1"),
                ("call-3", "tool-1"),
                ("call-3", "tool-2"),
            )
        }
        bob = await uow.agents.get("bob")
    assert stored["call-1/tool-1"] == make_decision("d-1", "call-1", agent_id="alice")
    assert stored["call-2/tool-1"] is None
    third = [stored[key] for key in ("call-3/tool-1", "call-3/tool-2")]
    assert [d.decision_id if d is not None else None for d in third] == ["d-3", "d-4"]
    assert bob is not None and bob.active_assignments == 1


async def test_a_reservation_meeting_its_stored_decision_raises_duplicate_and_rolls_back(
    store: Store,
) -> None:
    await add_agents(store, make_agent("alice"), make_agent("bob"))
    assert await _reserve_with(store, "alice", "d-1", "call-1")
    async with store.uow() as uow:
        await uow.assignments.release("call-1", "live", NOW, "missed")  # the repeat settles the first offer
        with pytest.raises(DuplicateDecision):
            await uow.assignments.reserve(
                agent_id="bob",
                call_id="call-1",
                purpose="live",
                now=NOW,
                expires_at=NOW + HOLD,
                decision=make_decision("d-2", "call-1", agent_id="bob"),
            )
        await uow.rollback()
    async with store.uow() as uow:
        bob = await uow.agents.get("bob")
        stored = await uow.decisions.get("call-1", "tool-1")
        holder = await uow.assignments.active_for_call("call-1", "live")
    assert bob is not None and bob.active_assignments == 0
    assert stored is not None and stored.decision_id == "d-1"
    assert holder == "alice"


async def _raw(store: Store, sql_sqlite: str, sql_pg: str, *args: object) -> list[tuple[object, ...]]:
    """A statement on the store's database through a connection of its own (the driver's own text)."""
    if isinstance(store.database, SqliteDatabase):
        with sqlite3.connect(store.database.path) as connection:
            return [tuple(row) for row in connection.execute(sql_sqlite, args)]
    connection = await asyncpg.connect(**asyncpg_connect_args(store.url))
    try:
        return [tuple(row) for row in await connection.fetch(sql_pg, *args)]
    finally:
        await connection.close()


async def test_documents_are_stored_as_compact_utf8_json(store: Store) -> None:
    decision = replace(make_decision("d1", "call-1"), reason="Café … tier premium")
    async with store.uow() as uow:
        await uow.decisions.add(decision)
        await uow.commit()
    ((body,),) = await _raw(
        store,
        "SELECT body FROM decisions WHERE decision_id = ?",
        "SELECT body::text FROM decisions WHERE decision_id = $1",
        "d1",
    )
    assert isinstance(body, str) and '"reason":"Café … tier premium"' in body


async def test_a_body_an_earlier_version_wrote_with_json_dumps_reads_back(store: Store) -> None:
    decision = replace(make_decision("d1", "call-1"), reason="Café … tier premium")
    async with store.uow() as uow:
        await uow.decisions.add(decision)
        await uow.commit()
    old = json.dumps(decision_to_body(decision))  # spaces after separators, \u escapes
    assert "\\u00e9" in old
    await _raw(
        store,
        "UPDATE decisions SET body = ? WHERE decision_id = ?",
        "UPDATE decisions SET body = $1::json WHERE decision_id = $2",
        old,
        "d1",
    )
    async with store.uow() as uow:
        got = await uow.decisions.get("call-1", "tool-1")
    assert got == decision
