"""Agent repository on SQLite and PostgreSQL: round trips, counters kept on upsert, status, paging,
dispatch candidates (filters, order, limit, index use), others, counts and team statistics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from routing_service.domain.models import AgentStatus, Complexity, Destination
from routing_service.store import Store
from routing_service.store.agents import (
    _NOTE_MISS,
    _SET_AVAILABLE,
    _SET_AWAY,
    _SET_STATUS,
    candidates_statement,
)
from routing_service.store.postgres import PostgresDatabase
from routing_service.store.sqlite import SqliteDatabase
from tests.service.store_builders import NOW, add_agents, enqueue, make_agent, make_ticket, reserve


async def test_agent_round_trips_when_upserted(store: Store) -> None:
    agent = make_agent(
        "alice",
        teams=("technical", "enterprise"),
        capacity=3,
        max_complexity=Complexity.ADVANCED,
        skills=frozenset({"api", "sso"}),
        idle_since=NOW - timedelta(minutes=3),
    )
    async with store.uow() as uow:
        stored, created = await uow.agents.upsert(agent, NOW)
        await uow.commit()
    assert created
    async with store.uow() as uow:
        got = await uow.agents.get("alice")
    assert got is not None
    assert got == stored
    assert got.team_ids == ("technical", "enterprise")
    assert got.skills == frozenset({"api", "sso"})
    assert got.max_complexity is Complexity.ADVANCED
    assert got.status is AgentStatus.AVAILABLE
    assert got.idle_since == NOW - timedelta(minutes=3)
    assert got.idle_since is not None and got.idle_since.tzinfo is not None
    assert got.updated_at == NOW


async def test_get_returns_none_when_agent_unknown(store: Store) -> None:
    async with store.uow() as uow:
        assert await uow.agents.get("nobody") is None


async def test_sip_destination_round_trips_when_agent_has_no_number(store: Store) -> None:
    agent = replace(make_agent("sip"), destination=Destination(sip_uri="sip:sip@example.com"))
    await add_agents(store, agent)
    async with store.uow() as uow:
        got = await uow.agents.get("sip")
    assert got is not None and got.destination == Destination(sip_uri="sip:sip@example.com")


async def test_upsert_keeps_load_counters_when_agent_exists(store: Store) -> None:
    await add_agents(store, make_agent("alice", capacity=2))
    assert await reserve(store, "alice", "call-1")
    later = NOW + timedelta(minutes=5)
    async with store.uow() as uow:
        stored, created = await uow.agents.upsert(
            make_agent("alice", teams=("billing",), capacity=4, status=AgentStatus.BUSY), later
        )
        await uow.commit()
    assert not created
    assert stored.active_assignments == 1
    async with store.uow() as uow:
        got = await uow.agents.get("alice")
    assert got is not None
    assert (got.active_assignments, got.capacity, got.team_ids, got.status) == (
        1,
        4,
        ("billing",),
        AgentStatus.BUSY,
    )
    assert got.updated_at == later


async def test_set_status_sets_idle_since_when_becoming_available_without_it(store: Store) -> None:
    await add_agents(store, make_agent("alice", status=AgentStatus.OFFLINE))
    async with store.uow() as uow:
        busy = await uow.agents.set_status("alice", AgentStatus.BUSY, NOW)
        assert busy is not None and busy.status is AgentStatus.BUSY and busy.idle_since is None
        available = await uow.agents.set_status("alice", AgentStatus.AVAILABLE, NOW + timedelta(minutes=1))
        await uow.commit()
    assert available is not None
    assert available.status is AgentStatus.AVAILABLE
    assert available.idle_since == NOW + timedelta(minutes=1)
    async with store.uow() as uow:
        again = await uow.agents.set_status("alice", AgentStatus.AVAILABLE, NOW + timedelta(minutes=9))
    assert again is not None and again.idle_since == NOW + timedelta(minutes=1)


async def test_set_status_returns_none_when_agent_unknown(store: Store) -> None:
    async with store.uow() as uow:
        assert await uow.agents.set_status("ghost", AgentStatus.BUSY, NOW) is None


async def test_status_and_miss_writes_are_compiled_once_per_database(store: Store) -> None:
    """Presence systems set statuses all day: `set_status` and `note_missed_offer` run statements compiled
    once per database (shared), not built and compiled on each call."""
    await add_agents(store, make_agent("alice", status=AgentStatus.OFFLINE))
    async with store.uow() as uow:
        await uow.agents.set_status("alice", AgentStatus.BUSY, NOW)
        available = await uow.agents.set_status("alice", AgentStatus.AVAILABLE, NOW)
        missed = await uow.agents.note_missed_offer("alice", NOW, away_after=1)
        await uow.commit()
    assert available is not None and available.missed_in_row == 0
    assert missed is not None and missed.set_away and missed.agent.status is AgentStatus.AWAY
    database = store.database
    assert isinstance(database, SqliteDatabase | PostgresDatabase)
    statements = database.statements
    assert all(statements.holds(s) for s in (_SET_STATUS, _SET_AVAILABLE, _NOTE_MISS, _SET_AWAY))


async def test_page_walks_keyset_when_filtered_by_team_and_status(store: Store) -> None:
    agents = [
        make_agent(
            f"a{i:02d}",
            teams=("technical",) if i % 2 else ("billing",),
            status=AgentStatus.BUSY if i % 3 == 0 else AgentStatus.AVAILABLE,
        )
        for i in range(12)
    ]
    await add_agents(store, *agents)
    seen: list[str] = []
    after: str | None = None
    async with store.uow() as uow:
        while True:
            page = await uow.agents.page(
                team_id="technical", status=AgentStatus.AVAILABLE, limit=2, after_id=after
            )
            if not page:
                break
            seen += [a.agent_id for a in page]
            after = page[-1].agent_id
        everyone = await uow.agents.page(team_id=None, status=None, limit=100, after_id=None)
    expected = [a.agent_id for a in agents if "technical" in a.team_ids and a.status is AgentStatus.AVAILABLE]
    assert seen == sorted(expected)
    assert [a.agent_id for a in everyone] == sorted(a.agent_id for a in agents)


async def test_count_in_team_counts_members_when_agents_in_several_teams(store: Store) -> None:
    await add_agents(
        store,
        make_agent("a", teams=("technical", "billing")),
        make_agent("b", teams=("technical",)),
        make_agent("c", teams=("billing",), status=AgentStatus.OFFLINE),
    )
    async with store.uow() as uow:
        assert await uow.agents.count_in_team("technical") == 2
        assert await uow.agents.count_in_team("billing") == 2
        assert await uow.agents.count_in_team("product") == 0


async def test_candidates_filter_and_order_when_team_mixes_agents(store: Store) -> None:
    await add_agents(
        store,
        make_agent("idle-long", capacity=2, idle_since=NOW - timedelta(hours=2)),
        make_agent("idle-short", capacity=2, idle_since=NOW - timedelta(minutes=5)),
        make_agent("never-idle", capacity=2, idle_since=None),
        make_agent("b-tie", capacity=2, idle_since=NOW - timedelta(hours=2)),
        make_agent("busy-one", capacity=2, idle_since=NOW - timedelta(days=1)),
        make_agent("full", capacity=1),
        make_agent("offline", status=AgentStatus.OFFLINE),
        make_agent("wrap", status=AgentStatus.WRAP_UP),
        make_agent("junior", max_complexity=Complexity.BASIC),
        make_agent("other-team", teams=("billing",)),
    )
    assert await reserve(store, "busy-one", "c1")
    assert await reserve(store, "full", "c2")
    async with store.uow() as uow:
        ranked = await uow.agents.candidates("technical", Complexity.ADVANCED, 10)
        top2 = await uow.agents.candidates("technical", Complexity.ADVANCED, 2)
        basic = await uow.agents.candidates("technical", Complexity.BASIC, 10)
    assert [a.agent_id for a in ranked] == ["never-idle", "b-tie", "idle-long", "idle-short", "busy-one"]
    assert [a.agent_id for a in top2] == ["never-idle", "b-tie"]
    assert "junior" in [a.agent_id for a in basic]
    assert all(a.team_ids == ("technical",) for a in ranked)


async def test_others_excludes_given_ids_when_listing_team(store: Store) -> None:
    await add_agents(store, *(make_agent(f"a{i}") for i in range(5)), make_agent("x", teams=("billing",)))
    async with store.uow() as uow:
        others = await uow.agents.others("technical", {"a1", "a3"}, 10)
        limited = await uow.agents.others("technical", set(), 2)
    assert [a.agent_id for a in others] == ["a0", "a2", "a4"]
    assert [a.agent_id for a in limited] == ["a0", "a1"]


async def test_team_stats_aggregates_when_teams_have_load_and_waiting_callbacks(store: Store) -> None:
    await add_agents(
        store,
        make_agent("a", capacity=2),
        make_agent("b", capacity=1),
        make_agent("c", status=AgentStatus.OFFLINE),
        make_agent("d", teams=("billing", "technical"), capacity=1),
    )
    assert await reserve(store, "a", "c1")
    assert await reserve(store, "b", "c2")
    async with store.uow() as uow:
        await uow.callbacks.enqueue(
            make_ticket("w1", service_key=10.0, enqueued_at=NOW - timedelta(minutes=4))
        )
        await uow.callbacks.enqueue(
            make_ticket("w2", service_key=5.0, enqueued_at=NOW - timedelta(minutes=9))
        )
        await uow.callbacks.enqueue(make_ticket("w3", team_id="billing", service_key=1.0))
        await uow.commit()
    async with store.uow() as uow:
        stats = await uow.agents.team_stats(["technical", "billing", "product"], NOW)
    tech = stats["technical"]
    assert (tech.total_agents, tech.available_agents, tech.active_assignments) == (4, 2, 2)
    assert tech.waiting_callbacks == 2
    assert tech.oldest_waiting_since == NOW - timedelta(minutes=9)
    billing = stats["billing"]
    assert (billing.total_agents, billing.available_agents, billing.waiting_callbacks) == (1, 1, 1)
    product = stats["product"]
    assert (product.total_agents, product.waiting_callbacks, product.oldest_waiting_since) == (0, 0, None)


async def test_candidates_use_dispatch_index_when_many_agents(store: Store) -> None:
    teams = ("technical", "billing", "product", "general")
    await add_agents(
        store,
        *(
            make_agent(
                f"agent-{i:05d}",
                teams=(teams[i % 4],),
                capacity=1 + i % 3,
                max_complexity=Complexity(1 + (i // 4) % 4),
                idle_since=None if i % 7 == 0 else NOW - timedelta(seconds=i),
                status=AgentStatus.AVAILABLE if i % 5 else AgentStatus.BUSY,
            )
            for i in range(2000)
        ),
    )
    async with store.uow() as uow:
        link = uow._session
        assert link is not None
        dialect = link.dialect_name
        ranked = await uow.agents.candidates("billing", Complexity.ADVANCED, 5)
        assert len(ranked) == 5
        # The statement the repository runs, explained by the database itself: right after the import
        # (no statistics: SQLite never gathers them on its own) and again after ANALYZE.
        statement = (
            candidates_statement(postgres=dialect == "postgresql", min_complexity=Complexity.ADVANCED)
            .params(team_id="billing", min_complexity=int(Complexity.ADVANCED), limit=5)
            .compile(dialect=store.database.dialect, compile_kwargs={"literal_binds": True})
        )
        for analyzed in (False, True):
            if analyzed:
                await link.execute(text("ANALYZE"))
            if dialect == "postgresql":
                explain = f"EXPLAIN {statement}"
                plan = "\n".join(row[0] for row in await link.execute(text(explain)))
                assert "Index Scan using ix_agents_dispatch_pg" in plan, plan
                assert "Sort" not in plan, plan
            else:
                explain = f"EXPLAIN QUERY PLAN {statement}"
                # Each EXPLAIN QUERY PLAN row is (id, parent, notused, detail).
                rows: Iterable[Sequence[Any]] = await link.execute(text(explain))
                steps = [str(row[3]) for row in rows]
                # One walk per qualifying level (ADVANCED, CRITICAL), each in index order from the front and
                # stopping at LIMIT; only the at most LIMIT rows each returns are sorted for the merge.
                walks = [step for step in steps if "agents USING" in step or step.startswith("SCAN agents")]
                assert (
                    walks == ["SEARCH agents USING INDEX ix_agents_dispatch_by_level (max_complexity=?)"] * 2
                ), steps
                assert sum("TEMP B-TREE" in step for step in steps) <= 2, steps


async def test_skip_locked_candidates_pass_over_agents_a_concurrent_transaction_is_reserving(
    store: Store,
) -> None:
    await add_agents(
        store,
        *(make_agent(f"agent-{i}", capacity=2, idle_since=NOW - timedelta(minutes=10 - i)) for i in range(4)),
    )
    async with store.uow() as first:
        taken = await first.agents.candidates("technical", Complexity.BASIC, 2, skip_locked=True)
        assert [a.agent_id for a in taken] == ["agent-0", "agent-1"]
        if store.url.startswith("postgresql"):
            # Concurrently (its own connection and transaction): the two locked agents are passed over at
            # once, without waiting for the first transaction; without skip_locked, nothing is passed over.
            async with store.uow() as second:
                others = await asyncio.wait_for(
                    second.agents.candidates("technical", Complexity.BASIC, 2, skip_locked=True), 5
                )
                plain = await second.agents.candidates("technical", Complexity.BASIC, 2)
            assert [a.agent_id for a in others] == ["agent-2", "agent-3"]
            assert [a.agent_id for a in plain] == ["agent-0", "agent-1"]


async def test_candidates_merge_qualifying_levels_in_dispatch_order_past_idle_unqualified_agents(
    store: Store,
) -> None:
    # Forty long-idle intermediate agents lead the dispatch order (nobody picks them for advanced calls);
    # the qualified ones are interleaved across ADVANCED and CRITICAL, one of them already busier.
    unqualified = [
        make_agent(
            f"junior-{i:02d}", max_complexity=Complexity.INTERMEDIATE, idle_since=NOW - timedelta(days=1)
        )
        for i in range(40)
    ]
    qualified = [
        make_agent("adv-a", max_complexity=Complexity.ADVANCED, idle_since=NOW - timedelta(minutes=50)),
        make_agent("crit-a", max_complexity=Complexity.CRITICAL, idle_since=NOW - timedelta(minutes=40)),
        make_agent("adv-b", max_complexity=Complexity.ADVANCED, idle_since=NOW - timedelta(minutes=30)),
        make_agent("crit-b", max_complexity=Complexity.CRITICAL, idle_since=None, capacity=2),
        make_agent(
            "crit-c", max_complexity=Complexity.CRITICAL, idle_since=NOW - timedelta(minutes=60), capacity=2
        ),
    ]
    await add_agents(store, *unqualified, *qualified)
    await reserve(store, "crit-c", "call-busy")  # one active call: after every idle one

    async with store.uow() as uow:
        advanced = await uow.agents.candidates("technical", Complexity.ADVANCED, 4)
        critical = await uow.agents.candidates("technical", Complexity.CRITICAL, 10)
        basic = await uow.agents.candidates("technical", Complexity.BASIC, 2)

    # Least busy, then never idle (NULL) first, then longest idle, then id: the order of one global walk.
    assert [a.agent_id for a in advanced] == ["crit-b", "adv-a", "crit-a", "adv-b"]
    assert [a.agent_id for a in critical] == ["crit-b", "crit-a", "crit-c"]
    assert [a.agent_id for a in basic] == ["crit-b", "junior-00"]


async def test_queue_and_candidates_reads_candidates_only_when_no_callback_waits_ahead(store: Store) -> None:
    """One statement on PostgreSQL (the candidates in a LATERAL sub-select run only while nobody waits
    ahead), two on SQLite: the same answers as `ahead_of` and `candidates` asked one after the other."""
    await add_agents(store, make_agent("ann"), make_agent("bob", capacity=2), make_agent("cy"))
    assert await reserve(store, "bob", "bobs-call")  # busier than ann and cy
    await enqueue(store, make_ticket("queued-1", service_key=10.0), make_ticket("queued-2", service_key=20.0))
    async with store.uow() as uow:
        answers = [
            await uow.agents.queue_and_candidates(
                "technical", Complexity.BASIC, 2, service_key=key, skip_locked=skip
            )
            for key in (5.0, 15.0, 25.0)
            for skip in (False, True)
        ]
        expected = await uow.agents.candidates("technical", Complexity.BASIC, 2)
        elsewhere = await uow.agents.queue_and_candidates("billing", Complexity.BASIC, 2, service_key=25.0)
    ids = [(ahead, [agent.agent_id for agent in found]) for ahead, found in answers]
    assert ids == [(0, ["ann", "cy"])] * 2 + [(1, [])] * 2 + [(2, [])] * 2
    assert answers[0][1] == expected
    assert elsewhere == (0, [])
