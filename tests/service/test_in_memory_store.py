"""The in-memory store (tests/support/in_memory_store.py) behaves as the SQL store does, on SQLite and
PostgreSQL: random sequences of the routing use cases (escalations and their repeats and retries, call
events, completions, releases, status changes, callback claims and finishes, sweeps, outcomes) run on both,
and every answer, every error and the final state must be identical. This is what lets the use-case tests
of tests/unit trust the fake."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from routing_service.app.agents import set_agent_status
from routing_service.app.assignments import release_assignment
from routing_service.app.callbacks import claim_callback, finish_callback
from routing_service.app.customers import record_outcome
from routing_service.app.lifecycle import CallEvent, complete_assignment, record_call_event
from routing_service.app.ports import UnitOfWorkFactory
from routing_service.app.resolve import resolve_escalation
from routing_service.app.sweeper import sweep_once
from routing_service.domain.errors import EscalationError
from routing_service.domain.lifecycle import CallEventKind
from routing_service.domain.models import (
    AgentStatus,
    CallbackState,
    Complexity,
    Customer,
    EscalationRequest,
)
from routing_service.store import Store
from routing_service.store.migrate import upgrade
from tests.conftest import PG_ADMIN_DB, PG_HOST, PG_PORT, PG_USER, drop_pg_database, pg_url
from tests.support.in_memory_store import InMemoryDatabase
from tests.support.routing_builders import NOW, make_agent, seed, techcorp_policy

POLICY = techcorp_policy()
CALLERS = ("+15551110001", "+15551110002", "+15551110003", "")
CALLS = tuple(f"call-{n}" for n in range(5))
TEAMS = ("technical", "billing", "general", "enterprise")
BENCH = ("tia", "tom", "tess", "ted", "tara", "tim")
AGENT_IDS = ("ann", "bob", "cy", "dee", "eve")
# Weighted towards the technical team's rule (technical, intermediate or advanced), where most specialists
# are: there the order of candidates and the batches matter.
CATEGORIES = ("technical", "technical", "technical", "billing", "product", "weather", "")
CLAIMS = (Complexity.ADVANCED, Complexity.ADVANCED, Complexity.INTERMEDIATE, None, *Complexity)
REASONS = ("the login page is slow", "the API integration fails", "our site is down", "", "")
ENDED_REASONS = (
    "assistant-forwarded-call",
    "call.forwarding.no-answer",
    "customer-ended-call",
    "customer-ended-call-before-warm-transfer",
)

idle_since = st.one_of(st.none(), st.integers(1, 120).map(lambda m: NOW - timedelta(minutes=m)))
# A bench of free technical specialists (more than one batch of candidates, in an order their idle times
# decide), and a few others of any team, status and level.
bench = st.lists(
    st.builds(make_agent, st.sampled_from(BENCH), capacity=st.integers(1, 2), idle_since=idle_since),
    min_size=3,
    max_size=len(BENCH),
    unique_by=lambda a: a.agent_id,
)
others = st.lists(
    st.builds(
        make_agent,
        st.sampled_from(AGENT_IDS),
        teams=st.lists(st.sampled_from(TEAMS), min_size=1, max_size=3, unique=True).map(tuple),
        capacity=st.integers(1, 2),
        max_complexity=st.sampled_from(list(Complexity)),
        status=st.sampled_from(
            [AgentStatus.AVAILABLE, AgentStatus.AVAILABLE, AgentStatus.BUSY, AgentStatus.AWAY]
        ),
        idle_since=idle_since,
    ),
    max_size=len(AGENT_IDS),
    unique_by=lambda a: a.agent_id,
)
agents_strategy = st.builds(lambda b, o: [*b, *o], bench, others)
customers_strategy = st.lists(
    st.builds(
        Customer,
        number=st.sampled_from(CALLERS[:3]),
        tier=st.sampled_from(["enterprise", "premium", "standard"]),
        previous_escalations=st.integers(0, 3),
        last_agent_id=st.one_of(st.none(), st.sampled_from(BENCH + AGENT_IDS)),
    ),
    max_size=3,
    unique_by=lambda c: c.number,
)
calls = st.sampled_from(CALLS)
escalations = st.tuples(
    st.just("resolve"),
    calls,
    st.sampled_from(CALLERS),
    st.sampled_from(CATEGORIES),
    st.sampled_from(CLAIMS),
    st.sampled_from(REASONS),
    st.sampled_from(["tool-1", "tool-2", "tool-3"]),
    st.sampled_from([False, False, True]),
)
operations = st.lists(
    st.one_of(
        escalations,
        escalations,
        escalations,
        st.tuples(st.just("callback call"), calls, calls),
        st.tuples(st.just("forwarding"), calls),
        st.tuples(st.just("ended"), calls, st.sampled_from(ENDED_REASONS)),
        st.tuples(st.just("complete"), calls, st.booleans()),
        st.tuples(st.just("release"), calls),
        st.tuples(st.just("status"), st.sampled_from(BENCH + AGENT_IDS), st.sampled_from(list(AgentStatus))),
        st.tuples(st.just("claim"), calls),
        st.tuples(
            st.just("finish"), calls, st.sampled_from([CallbackState.CONNECTED, CallbackState.CANCELLED])
        ),
        st.tuples(st.just("outcome"), calls, st.sampled_from([None, *BENCH, *AGENT_IDS])),
        st.tuples(st.just("sweep")),
        st.tuples(st.just("wait"), st.integers(1, 200)),
    ),
    min_size=5,
    max_size=30,
)


@dataclass(frozen=True)
class Scenario:
    agents: list[Any]
    customers: list[Customer]
    operations: list[tuple[Any, ...]]


scenarios = st.builds(Scenario, agents_strategy, customers_strategy, operations)

BATCH_ORDER = Scenario(
    agents=[make_agent(name, idle_since=NOW - timedelta(minutes=n)) for n, name in enumerate(BENCH)],
    customers=[],
    operations=[("resolve", "call-0", CALLERS[0], "technical", Complexity.ADVANCED, "", "tool-1", False)],
)
"""Always tried: more free specialists than one batch holds, longest idle last by name."""


async def _answer(action: Awaitable[Any]) -> Any:
    """What a use case answered, or the error it raised (type and message)."""
    try:
        return await action
    except EscalationError as error:
        return (type(error).__name__, str(error))


async def play(uow: UnitOfWorkFactory, scenario: Scenario) -> list[Any]:
    """Run the scenario on `uow`; everything observable, in order: each answer, then the final state."""
    await seed(uow, *scenario.agents, customers=tuple(scenario.customers))
    ids = itertools.count(1)
    now = NOW
    seen: list[Any] = []
    for op in scenario.operations:
        if op[0] == "wait":
            now += timedelta(minutes=op[1])
            continue
        seen.append((op, await _answer(perform(uow, op, now, lambda: f"d{next(ids):04d}"))))
    seen.append(await final_state(uow, now))
    return seen


def perform(
    uow: UnitOfWorkFactory, op: tuple[Any, ...], now: datetime, new_id: Callable[[], str]
) -> Awaitable[Any]:
    """The use case call `op` stands for."""
    kind, args = op[0], op[1:]
    if kind == "resolve":
        call_id, caller, category, claimed, reason, tool_call_id, dry_run = args
        request = EscalationRequest(
            call_id=call_id,
            caller_number=caller,
            issue_category=category,
            claimed_complexity=claimed,
            escalation_reason=reason,
            tool_call_id=tool_call_id,
            dry_run=dry_run,
        )
        return resolve_escalation(request, uow=uow, policy=POLICY, now=now, new_id=new_id)
    if kind == "callback call":
        request = EscalationRequest(
            call_id=f"back-{args[0]}", callback_of_call_id=args[1], caller_number=CALLERS[0]
        )
        return resolve_escalation(request, uow=uow, policy=POLICY, now=now, new_id=new_id)
    if kind in ("forwarding", "ended"):
        event_kind = CallEventKind.FORWARDING if kind == "forwarding" else CallEventKind.ENDED
        event = CallEvent(args[0], event_kind, ended_reason=args[1] if kind == "ended" else "")
        return record_call_event(event, uow=uow, policy=POLICY, now=now)
    if kind == "complete":
        return complete_assignment(call_id=args[0], skip_wrap_up=args[1], uow=uow, policy=POLICY, now=now)
    if kind == "release":
        return release_assignment(args[0], "released in a test", uow=uow, now=now)
    if kind == "status":
        return set_agent_status(args[0], args[1], uow=uow, now=now)
    if kind == "claim":
        return claim_callback(args[0], None, uow=uow, policy=POLICY, now=now)
    if kind == "finish":
        return finish_callback(args[0], args[1], "done", uow=uow, now=now)
    if kind == "outcome":
        return record_outcome(args[0], args[1], uow=uow, policy=POLICY, now=now)
    assert kind == "sweep", kind
    return sweep_once(uow=uow, now=now, callback_ttl=timedelta(hours=2), policy=POLICY)


async def final_state(uow: UnitOfWorkFactory, now: datetime) -> Any:
    async with uow() as u:
        agents = await u.agents.page(team_id=None, status=None, limit=100, after_id=None)
        return (
            agents,
            await u.agents.team_stats(list(TEAMS), now),
            await u.assignments.live_for_agents([a.agent_id for a in agents]),
            [await u.assignments.latest_for_call(call) for call in CALLS],
            [await u.assignments.missed_agents(call) for call in CALLS],
            [await u.assignments.offers_for_call(call) for call in CALLS],
            [await u.assignments.offers_for_call(call, caller) for call in CALLS for caller in CALLERS[:2]],
            await u.assignments.expired(now + timedelta(days=1), 100),
            await u.callbacks.find(team_id=None, states=set(), limit=100),
            await u.decisions.page(team_id=None, kind=None, limit=100, before=None),
            [await u.customers.get(number) for number in CALLERS[:3]],
        )


async def _on_memory(scenario: Scenario) -> list[Any]:
    return await play(InMemoryDatabase(), scenario)


async def _on_sql(url: str, scenario: Scenario) -> list[Any]:
    store = await Store.open(url, migrate=False)
    try:
        return await play(store.uow_factory, scenario)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def sqlite_template() -> Iterator[Path]:
    """A migrated SQLite file, copied for each example (a migration per example would dominate the run)."""
    folder = Path(tempfile.mkdtemp(prefix="escalade-parity-"))
    template = folder / "template.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{template}"))
    yield template
    shutil.rmtree(folder)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios)
@example(scenario=BATCH_ORDER)
def test_in_memory_store_answers_as_sqlite_does(sqlite_template: Path, scenario: Scenario) -> None:
    copy = sqlite_template.with_name(f"example-{id(scenario)}.db")
    shutil.copyfile(sqlite_template, copy)
    try:
        on_sql = asyncio.run(_on_sql(f"sqlite+aiosqlite:///{copy}", scenario))
    finally:
        for leftover in copy.parent.glob(f"{copy.name}*"):
            leftover.unlink()
    assert asyncio.run(_on_memory(scenario)) == on_sql


async def create_pg_database(*, template: str = "") -> str:
    """A new database on the test server (a copy of `template` when given)."""
    name = f"escalade_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()
    return name


@pytest.fixture(scope="module")
def pg_template() -> Iterator[str]:
    """A migrated PostgreSQL database, copied for each example (CREATE DATABASE ... TEMPLATE)."""
    name = asyncio.run(create_pg_database())
    try:
        asyncio.run(upgrade(pg_url(name)))
        yield name
    finally:
        asyncio.run(drop_pg_database(name))


@pytest.mark.postgres
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios)
def test_in_memory_store_answers_as_postgres_does(pg_template: str, scenario: Scenario) -> None:
    name = asyncio.run(create_pg_database(template=pg_template))
    try:
        on_sql = asyncio.run(_on_sql(pg_url(name), scenario))
    finally:
        asyncio.run(drop_pg_database(name))
    assert asyncio.run(_on_memory(scenario)) == on_sql
