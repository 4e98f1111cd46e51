"""The store on PostgreSQL (`routing_service.store.postgres`): statements compiled once run on the asyncpg
pool, read the values their types say (aware UTC datetimes, decoded JSON, floats where a NUMERIC is declared
as float), belong to the unit of work's transaction (a rollback leaves nothing behind, a commit keeps
everything), fail with asyncpg's own exceptions, and a connection that dies (killed under a statement,
closed by the server while pooled, cancelled mid-statement) is `Unavailable` or replaced, never reused."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import asyncpg
import pytest
from sqlalchemy import Double, Numeric, bindparam, func, literal_column, select, text
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.sql import Executable

from routing_service.app.assignments import release_assignment
from routing_service.app.resolve import resolve_escalation
from routing_service.domain.errors import Unavailable
from routing_service.domain.models import Complexity, Customer, Decision, DecisionKind, EscalationRequest
from routing_service.store import Store
from routing_service.store.agents import _CANDIDATES_PG, _GET, _OTHERS, _OTHERS_ALL
from routing_service.store.assignments import _FREE_SLOT, _RELEASE, _TAKE_SLOT, _slot_params
from routing_service.store.base import insert_ignore
from routing_service.store.callbacks import _AHEAD_OF, _WAITING_HEAD
from routing_service.store.customers import _GET as _GET_CUSTOMER
from routing_service.store.errors import is_unavailable
from routing_service.store.postgres import (
    _LOCK,
    PG_POOL_MAX,
    PostgresDatabase,
    PostgresLink,
    asyncpg_connect_args,
)
from routing_service.store.statements import SHARED_STATEMENTS, CompiledStatement, shared
from routing_service.store.tables import customers
from routing_service.store.unit_of_work import SqlUnitOfWork
from tests.service.store_builders import (
    AGENTS_IN,
    INSERT_CUSTOMER,
    NOW,
    add_agents,
    enqueue,
    make_agent,
    make_decision,
    make_ticket,
    reserve,
)
from tests.support.routing_builders import techcorp_policy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]
postgres_only = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

_SLEEP = shared(select(func.pg_sleep(bindparam("seconds", type_=Double()))))
# NUMERIC declared as float: the conversion is chosen by the column's type OID, learnt on the first run.
_NUMERIC_AS_FLOAT: Executable = shared(
    select(
        literal_column("1.5::numeric", Numeric(asdecimal=False)).label("n"),
        literal_column("2.5::float8", Double()).label("f"),
        literal_column("3.25::numeric", Numeric()).label("d"),
    )
)


def _database(store: Store) -> PostgresDatabase:
    database = store.database
    assert isinstance(database, PostgresDatabase)
    return database


def _link(uow: SqlUnitOfWork) -> PostgresLink:
    link = uow._session
    assert isinstance(link, PostgresLink)
    return link


def _connection(link: PostgresLink) -> Any:
    """The unit of work's pooled connection (taken by its first statement)."""
    connection = link._connection
    assert connection is not None, "no statement ran yet"
    return connection


def _backend_pid(link: PostgresLink) -> int:
    pid: int = _connection(link).get_server_pid()
    return pid


async def _admin(store: Store) -> asyncpg.Connection:
    """A plain asyncpg connection of its own to the store's database."""
    return await asyncpg.connect(**asyncpg_connect_args(store.url))


async def _terminate_backend(store: Store, pid: int) -> bool:
    """Kill backend `pid` from another connection (as a server restart or failover would); True if killed."""
    admin = await _admin(store)
    try:
        killed: bool = await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        return killed
    finally:
        await admin.close()


async def _backend_gone(store: Store, pid: int, within: float = 10.0) -> None:
    admin = await _admin(store)
    try:
        async with asyncio.timeout(within):
            while await admin.fetchval(  # noqa: ASYNC110 - polling the server, nothing to wait on
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                await asyncio.sleep(0.05)
    finally:
        await admin.close()


def _pool_is_all_idle(store: Store) -> bool:
    pool = _database(store).pool
    return bool(pool.get_idle_size() == pool.get_size())


def _customer_row(number: str, **overrides: Any) -> dict[str, Any]:
    return {
        "number": number,
        "tier": "standard",
        "account_name": "",
        "previous_escalations": 0,
        "last_agent_id": None,
        "updated_at": NOW,
        **overrides,
    }


async def _seed(store: Store) -> None:
    await add_agents(
        store,
        *(make_agent(f"agent-{i}", capacity=2, idle_since=NOW - timedelta(minutes=i)) for i in range(6)),
        make_agent("never-idle", capacity=2, idle_since=None, skills=frozenset({"api", "billing"})),
    )
    async with store.uow() as uow:
        await uow.customers.upsert(Customer(number="+15551230001", tier="gold", account_name="Acme"), NOW)
        await uow.commit()
    await enqueue(
        store, *(make_ticket(f"cb-{index}", service_key=key) for index, key in enumerate((2.5, 1.25, 7.0)))
    )


@postgres_only
async def test_statements_read_the_values_their_types_say(store: Store) -> None:
    await _seed(store)
    decision = make_decision("d-1", "call-1")
    async with store.uow() as uow:
        await uow.decisions.add(decision)
        await uow.commit()
    async with store.uow() as uow:
        # Another session time zone changes nothing: timestamptz values are read as aware UTC datetimes.
        await _link(uow).execute(text("SET LOCAL TIME ZONE 'Asia/Tokyo'"))
        candidates = await uow.agents.candidates("technical", Complexity.ADVANCED, 4)
        never_idle = await uow.agents.get("never-idle")
        stored = await uow.decisions.get("call-1", "tool-1")
        waiting = await uow.callbacks.get("cb-1")
    assert [a.agent_id for a in candidates] == ["never-idle", "agent-5", "agent-4", "agent-3"]
    assert candidates[1].idle_since == NOW - timedelta(minutes=5)
    assert all(a.updated_at == NOW and a.updated_at.tzinfo is UTC for a in candidates)
    assert candidates[1].idle_since is not None and candidates[1].idle_since.tzinfo is UTC
    assert never_idle is not None and never_idle.idle_since is None  # NULL stays None
    assert never_idle.skills == frozenset({"api", "billing"}) and never_idle.team_ids == (
        "technical",
    )  # JSON
    assert stored == decision  # the JSON body decoded back to the same decision
    assert (
        waiting is not None and waiting.service_key == 1.25 and type(waiting.service_key) is float
    )  # Double
    assert waiting.enqueued_at == NOW and waiting.enqueued_at.tzinfo is UTC

    # Declared types decide: NUMERIC(asdecimal=False) is a float, a plain Numeric a Decimal, FLOAT a float;
    # the first run (which learns the column OIDs) and the later ones read the same.
    runs = []
    for _ in range(2):
        async with store.uow() as uow:
            (row,) = (await _link(uow).execute(_NUMERIC_AS_FLOAT)).all()
            runs.append(tuple(row))
    assert runs[0] == runs[1] == (1.5, 2.5, Decimal("3.25"))
    assert [type(value) for value in runs[0]] == [type(value) for value in runs[1]] == [float, float, Decimal]


@postgres_only
async def test_shared_statements_are_compiled_once_and_others_on_each_call(store: Store) -> None:
    await _seed(store)
    database = _database(store)
    async with store.uow() as uow:
        await uow.agents.candidates("technical", Complexity.ADVANCED, 4)
        await uow.agents.candidates("technical", Complexity.BASIC, 2)
        await uow.customers.get("+15551230001")
    assert database.statements.holds(_CANDIDATES_PG) and database.statements.holds(_GET_CUSTOMER)
    params = {"team_id": "technical", "min_complexity": 1, "limit": 3}
    compiled = database.statements.get(_CANDIDATES_PG, params)
    assert compiled is database.statements.get(_CANDIDATES_PG, dict(params))
    assert compiled.result_processors is not None, "its column types were learnt on its first run"
    held = len(database.statements)
    # Not shared (a copy of the same statement): compiled afresh on each call, never cached.
    copy = _CANDIDATES_PG.execution_options()
    assert id(copy) not in SHARED_STATEMENTS
    assert database.statements.get(copy, params) is not database.statements.get(copy, params)
    assert not database.statements.holds(copy)
    assert len(database.statements) == held


async def _run_rolled_back(store: Store, statement: Executable, params: dict[str, Any]) -> tuple[Any, ...]:
    """Run `statement` in a unit of work that is rolled back: its rows (values and their types), column
    names and row count."""
    async with store.uow() as uow:
        result = await _link(uow).execute(statement, params)
        rows = result.all()
        return (
            [tuple(row) for row in rows],
            [[type(value) for value in row] for row in rows],
            [list(row._fields) for row in rows],
            result.rowcount,
        )


@postgres_only
async def test_every_kind_of_statement_reads_the_same_compiled_once_or_per_call(store: Store) -> None:
    await _seed(store)
    assert await reserve(store, "agent-1", "call-1")
    cases: list[tuple[Executable, dict[str, Any], int]] = [
        (_CANDIDATES_PG, {"team_id": "technical", "min_complexity": 1, "limit": 10}, 7),
        (_GET, {"agent_id": "agent-2"}, 1),
        (_GET, {"agent_id": "never-idle"}, 1),  # NULL timestamp
        (_GET, {"agent_id": "nobody"}, 0),
        (_GET_CUSTOMER, {"number": "+15551230001"}, 1),
        (_WAITING_HEAD, {"head_team": "technical", "head_limit": 5}, 3),  # FLOAT column
        (_AHEAD_OF, {"ahead_team": "technical", "ahead_key": 2.5}, 1),
        (_NUMERIC_AS_FLOAT, {}, 1),
        (_TAKE_SLOT, _slot_params("agent-3", NOW, critical=False, load_version=None), 1),  # command tag
        (_TAKE_SLOT, _slot_params("nobody", NOW, critical=False, load_version=None), 0),
        (_RELEASE, {"rel_call": "call-1", "rel_purpose": "live", "rel_at": NOW, "rel_reason": "done"}, 1),
        (_FREE_SLOT, {"rel_agent": "agent-1", "rel_idle": NOW, "rel_updated": NOW}, 1),
        (_LOCK, {"lock_key": "call-2"}, 1),  # a void column
        (insert_ignore(customers, postgres=True), _customer_row("+15551230001"), 0),  # conflict: 0 rows
        (insert_ignore(customers, postgres=True), _customer_row("+15551230002"), 1),
        (AGENTS_IN, {"min_capacity": 1, "ids": ["agent-1", "agent-4", "nobody"], "not_named": "x"}, 2),
    ]
    for statement, params, rowcount in cases:
        assert id(statement) in SHARED_STATEMENTS, statement
        first = await _run_rolled_back(store, statement, params)  # learns the column types
        cached = await _run_rolled_back(store, statement, params)
        per_call = await _run_rolled_back(store, statement.execution_options(), params)  # not shared
        assert first == cached == per_call, statement
        assert first[3] == rowcount, statement
    assert (await _run_rolled_back(store, _WAITING_HEAD, {"head_team": "technical", "head_limit": 5}))[0][0][
        0
    ] == "cb-1"


@postgres_only
async def test_expanding_in_lists_are_rendered_for_each_length(store: Store) -> None:
    await _seed(store)
    async with store.uow() as uow:
        link = _link(uow)

        async def ids(*wanted: str) -> list[str]:
            params = {"min_capacity": 2, "ids": list(wanted), "not_named": "Agent-2"}
            return [row.agent_id for row in await link.execute(AGENTS_IN, params)]

        # The parameters after the list are numbered after it, whatever its length.
        assert await ids("agent-1") == ["agent-1"]
        assert await ids("agent-4", "agent-2", "agent-1", "nobody") == ["agent-1", "agent-4"]
        assert await ids() == []
        assert await ids("agent-3", "agent-0") == ["agent-0", "agent-3"]
        # Through the repositories: an IN over a list of ids, and the expanding `exclude` of `others`.
        everyone = await uow.agents.others("technical", set(), 10)
        others = await uow.agents.others("technical", {"agent-0", "agent-5", "never-idle"}, 10)
        assert [a.agent_id for a in others] == ["agent-1", "agent-2", "agent-3", "agent-4"]
        assert len(everyone) == 7
        assert [a.agent_id for a in await uow.agents.others("technical", {"agent-9"}, 2)] == [
            "agent-0",
            "agent-1",
        ]
    assert not _database(store).statements.holds(_OTHERS)  # not shared: rendered per list
    assert _database(store).statements.holds(_OTHERS_ALL)
    assert await reserve(store, "agent-1", "call-1") and await reserve(store, "agent-2", "call-2")
    async with store.uow() as uow:
        live = await uow.assignments.live_for_agents(["agent-2", "agent-1", "agent-3"])
    assert sorted(record.agent_id for record in live) == ["agent-1", "agent-2"]


LOCK_KEYS = ["call-9", "it's", "back\\slash", "E'x'); SELECT 1; --", "ünïcödé", "\\'"]


@postgres_only
@pytest.mark.parametrize("key", LOCK_KEYS)
async def test_a_calls_lock_holds_until_its_unit_of_work_ends(store: Store, key: str) -> None:
    """Taken with the BEGIN (one simple-protocol round trip, the key as an escaped literal) or, once the
    transaction is open, as its own statement: the same `hashtext` lock either way, whatever the key holds."""

    async def lock_is_free() -> bool:
        other = await _admin(store)
        try:
            free: bool = await other.fetchval("SELECT pg_try_advisory_xact_lock(hashtext($1))", key)
            return free
        finally:
            await other.close()

    async with store.uow() as uow:
        await uow.assignments.lock_call(key)
        assert not _database(store).statements.holds(_LOCK), "rode with the BEGIN"
        assert not await lock_is_free()
        await uow.customers.get("+15551230001")  # later statements: still the same transaction
        assert not await lock_is_free()
        await uow.commit()
    assert await lock_is_free()
    async with store.uow() as uow:
        await uow.customers.get("+15551230001")  # the transaction is open: the lock is a statement of it
        await uow.assignments.lock_call(key)
        assert _database(store).statements.holds(_LOCK)
        assert not await lock_is_free()
    assert await lock_is_free()  # rolled back: released as well


@postgres_only
async def test_a_lock_waits_for_the_unit_of_work_holding_it(store: Store) -> None:
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with store.uow() as uow:
            await uow.assignments.lock_call("call-w")
            held.set()
            await release.wait()
            await uow.commit()

    task = asyncio.create_task(holder())
    await held.wait()
    async with store.uow() as uow:
        waiting = asyncio.create_task(uow.assignments.lock_call("call-w"))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "the second BEGIN-and-lock waits for the first transaction"
        release.set()
        await asyncio.wait_for(waiting, 10)
    await task


@postgres_only
async def test_a_lock_key_postgresql_cannot_hold_is_refused_as_a_statement_error(store: Store) -> None:
    with pytest.raises(asyncpg.PostgresError):
        async with store.uow() as uow:
            await uow.assignments.lock_call("nul\x00key")
    assert _pool_is_all_idle(store)


@postgres_only
async def test_statements_belong_to_the_unit_of_works_transaction(store: Store) -> None:
    await add_agents(store, make_agent("alice", capacity=2))
    # Left without commit: the writes are rolled back with the unit of work.
    async with store.uow() as uow:
        assert await uow.assignments.reserve(
            agent_id="alice", call_id="call-1", purpose="live", now=NOW, expires_at=NOW + timedelta(hours=1)
        )
        assert _connection(_link(uow)).is_in_transaction()
        # A textual statement sees the uncommitted write: one transaction, one connection.
        seen = await _link(uow).execute(
            text("SELECT active_assignments FROM agents WHERE agent_id = 'alice'")
        )
        assert seen.scalar_one() == 1
        # Another connection does not.
        admin = await _admin(store)
        try:
            assert await admin.fetchval("SELECT active_assignments FROM agents WHERE agent_id = 'alice'") == 0
        finally:
            await admin.close()
    async with store.uow() as uow:
        alice = await uow.agents.get("alice")
        assert alice is not None and alice.active_assignments == 0
        assert await uow.assignments.active_for_call("call-1", "live") is None

    # An explicit rollback, then more work committed in the same unit of work: only that is kept.
    async with store.uow() as uow:
        link = _link(uow)
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551239990"))
        await uow.rollback()
        assert not _connection(link).is_in_transaction()
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551239991"))
        await uow.commit()
        # And after the commit a statement begins a new transaction, rolled back on exit.
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551239992"))
        assert _connection(link).is_in_transaction()
    async with store.uow() as uow:
        assert await uow.customers.get("+15551239990") is None
        assert await uow.customers.get("+15551239991") is not None
        assert await uow.customers.get("+15551239992") is None
    assert _pool_is_all_idle(store)


@postgres_only
async def test_statement_failures_are_asyncpg_errors_and_leave_the_connection_usable(store: Store) -> None:
    async with store.uow() as uow:
        link = _link(uow)
        with pytest.raises(asyncpg.CheckViolationError) as check:
            await link.execute(INSERT_CUSTOMER, _customer_row("+15551230000", previous_escalations=-1))
        assert not is_unavailable(check.value)
        await uow.rollback()
        # A naive datetime is refused by the column type before anything is sent.
        with pytest.raises(ValueError, match="naive datetime"):
            await link.execute(
                INSERT_CUSTOMER, _customer_row("+15551230000", updated_at=datetime(2026, 1, 1))
            )
        await link.execute(INSERT_CUSTOMER, _customer_row("+15551230000"))
        pid = _backend_pid(link)
        with pytest.raises(asyncpg.UniqueViolationError) as duplicate:  # primary key
            await link.execute(INSERT_CUSTOMER, _customer_row("+15551230000"))
        assert isinstance(duplicate.value, asyncpg.IntegrityConstraintViolationError)
        assert not is_unavailable(duplicate.value)
        assert not _connection(link).is_closed()
    # The unit of work ends cleanly (rolled back) and the pooled connection is reused, still good.
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230000") is None
        assert _backend_pid(_link(uow)) == pid
    # Through a repository, an integrity error passes through as asyncpg's (it is not `Unavailable`).
    with pytest.raises(asyncpg.CheckViolationError):
        async with store.uow() as uow:
            await uow.agents.upsert(make_agent("alice", capacity=-1), NOW)


@postgres_only
async def test_a_connection_killed_under_a_statement_is_unavailable_and_replaced(store: Store) -> None:
    with pytest.raises(Unavailable) as failure:
        async with store.uow() as uow:
            await uow.customers.get("+15551230001")  # checks out a connection and begins
            pid = _backend_pid(_link(uow))
            assert await _terminate_backend(store, pid)
            await asyncio.sleep(0.1)
            await uow.customers.get("+15551230001")
    assert isinstance(failure.value.__cause__, asyncpg.PostgresConnectionError | asyncpg.InterfaceError)
    assert "+1555" not in str(failure.value), "the message names the failure, not the parameters"
    # The broken connection was discarded, not returned to the pool: the next unit of work runs.
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert _backend_pid(_link(uow)) != pid
    assert _pool_is_all_idle(store)


@postgres_only
async def test_a_killed_connection_fails_with_asyncpgs_error_and_is_not_reused(store: Store) -> None:
    async with store.uow() as uow:
        link = _link(uow)
        await link.execute(_GET_CUSTOMER, {"number": "+15551230001"})
        pid = _backend_pid(link)
        assert await _terminate_backend(store, pid)
        await asyncio.sleep(0.1)
        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError)) as failure:
            await link.execute(_GET_CUSTOMER, {"number": "+15551230001"})
        assert is_unavailable(failure.value), repr(failure.value)
    # Leaving the block (its error was handled) discards the connection quietly.
    async with store.uow() as uow:
        await uow.customers.get("+15551230001")
        assert _backend_pid(_link(uow)) != pid
    assert _pool_is_all_idle(store)


@postgres_only
async def test_a_unit_of_work_whose_connection_died_after_its_commit_ends_quietly(store: Store) -> None:
    async with store.uow() as uow:
        await uow.customers.upsert(Customer(number="+15551230007", tier="gold"), NOW)
        pid = _backend_pid(_link(uow))
        await uow.commit()
        # Something else is awaited before the block ends; meanwhile the server drops the connection.
        assert await _terminate_backend(store, pid)
        await asyncio.sleep(0.1)
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230007") is not None
        assert _backend_pid(_link(uow)) != pid
    assert _pool_is_all_idle(store)


@postgres_only
async def test_a_cancelled_statement_discards_its_connection(store: Store) -> None:
    pids = []
    started = asyncio.Event()

    async def sleeper() -> None:
        async with store.uow() as uow:
            link = _link(uow)
            await link.execute(INSERT_CUSTOMER, _customer_row("+15551239999"))
            pids.append(_backend_pid(link))
            started.set()
            await link.execute(_SLEEP, {"seconds": 3})

    task = asyncio.create_task(sleeper())
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert _backend_pid(_link(uow)) != pids[0]
    assert _pool_is_all_idle(store)
    # Its backend ends without committing: the write made before the cancelled statement never shows.
    await _backend_gone(store, pids[0])
    async with store.uow() as uow:
        assert await uow.customers.get("+15551239999") is None


@postgres_only
async def test_a_pooled_connection_the_server_closed_is_replaced_at_acquire(store: Store) -> None:
    async with store.uow() as uow:
        await uow.customers.get("+15551230001")
        pid = _backend_pid(_link(uow))
    assert await _terminate_backend(store, pid)
    await asyncio.sleep(0.1)
    # No pre-ping round trip: the closed socket is noticed at acquire and the pool connects afresh.
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert _backend_pid(_link(uow)) != pid


def _terminate_while_the_loop_is_blocked(store: Store, pid: int) -> None:
    """Kill backend `pid` from another thread while this thread's event loop is blocked, so the loop has
    not seen the pooled connection's socket end when the next unit of work acquires it."""

    async def terminate() -> None:
        assert await _terminate_backend(store, pid)

    killer = threading.Thread(target=asyncio.run, args=(terminate(),))
    killer.start()
    killer.join()
    time.sleep(0.1)  # the server has closed the socket by now


@postgres_only
async def test_a_unit_of_works_first_statement_on_a_dead_pooled_connection_runs_on_a_new_one(
    store: Store,
) -> None:
    async with store.uow() as uow:
        await uow.customers.get("+15551230001")
        pid = _backend_pid(_link(uow))
    _terminate_while_the_loop_is_blocked(store, pid)
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230001") is None
        assert _backend_pid(_link(uow)) != pid
        await uow.customers.upsert(Customer(number="+15551230005", tier="gold"), NOW)
        await uow.commit()
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230005") is not None
    # Only the first statement is retried: a connection dying later in a unit of work is `Unavailable`.
    with pytest.raises(Unavailable):
        async with store.uow() as uow:
            await uow.customers.get("+15551230001")
            pid = _backend_pid(_link(uow))
            _terminate_while_the_loop_is_blocked(store, pid)
            await uow.customers.get("+15551230001")
    async with store.uow() as uow:
        assert await uow.customers.get("+15551230005") is not None
    assert _pool_is_all_idle(store)


def test_compiled_statements_number_their_parameters_for_asyncpg() -> None:
    """The SQL asyncpg runs: `$n` placeholders (with casts) in the order of `names`, constants filled in."""
    compiled = CompiledStatement(_TAKE_SLOT, (), asyncpg_dialect.dialect())  # type: ignore[no-untyped-call]
    sql, values = compiled.bound(_slot_params("alice", NOW, critical=True, load_version=None))
    assert "?" not in sql and "$2::TIMESTAMP WITH TIME ZONE" in sql
    numbers = [int(n) for n in re.findall(r"\$(\d+)", sql)]
    assert list(dict.fromkeys(numbers)) == list(range(1, len(compiled.names) + 1))  # a repeat reuses its $n
    bound = dict(zip(compiled.names, values, strict=True))
    assert {k: bound[k] for k in ("active_assignments_1", "slot_at", "slot_agent", "status_1")} == {
        "active_assignments_1": 1,
        "slot_at": NOW,
        "slot_agent": "alice",
        "status_1": "available",
    }
    assert bound["slot_version"] is None and bound["slot_entry"] == f"{int(NOW.timestamp()):010d} "


@contextlib.contextmanager
def _round_trips_to_postgresql() -> Iterator[list[int]]:
    """Counts what the process sends to PostgreSQL (port 5432) on asyncio socket transports: asyncpg writes
    each round trip's messages (Parse/Bind/Execute/Sync, or a simple Query) in one `write`."""
    sent = [0]
    original = asyncio.selector_events._SelectorSocketTransport.write  # type: ignore[attr-defined]

    def write(transport: Any, data: Any) -> None:
        peer = transport.get_extra_info("peername")
        if peer is not None and peer[1] == 5432:
            sent[0] += 1
        original(transport, data)

    with mock.patch.object(asyncio.selector_events._SelectorSocketTransport, "write", write):  # type: ignore[attr-defined]
        yield sent


@postgres_only
async def test_a_reserving_decision_and_its_release_take_the_round_trips_docs_count(store: Store) -> None:
    """docs/architecture.md ("The store: one path per database") counts five round trips for a reserving
    decision and three for a release (its availability notice rides with the COMMIT); asyncpg's reset query on
    returning a connection to the pool is gone."""
    await add_agents(store, *(make_agent(f"agent-{i}", capacity=2) for i in range(3)))
    async with store.uow() as uow:
        await uow.customers.upsert(Customer(number="+15551230001", tier="premium", account_name="Acme"), NOW)
        await uow.commit()
    policy = techcorp_policy()

    async def decide(call_id: str) -> Decision:
        request = EscalationRequest(
            call_id=call_id,
            tool_call_id="t",
            caller_number="+15551230001",
            issue_category="technical",
            claimed_complexity=Complexity.ADVANCED,
        )
        return await resolve_escalation(request, uow=store.uow, policy=policy, now=datetime.now(UTC))

    # Warm: each statement's result types are learnt once per process, and each pooled connection prepares
    # it once (asyncpg's pool hands its connections out in turn: every one of them, once).
    for warm in range(PG_POOL_MAX + 1):
        assert (await decide(f"warm-{warm}")).kind is DecisionKind.TRANSFER_AGENT
        assert await release_assignment(f"warm-{warm}", "warm", uow=store.uow, now=datetime.now(UTC))
    with _round_trips_to_postgresql() as decision_trips:
        decision = await decide("call-1")
    assert decision.kind is DecisionKind.TRANSFER_AGENT
    with _round_trips_to_postgresql() as release_trips:
        assert await release_assignment("call-1", "ended", uow=store.uow, now=datetime.now(UTC))
    assert (decision_trips[0], release_trips[0]) == (5, 3)


@postgres_only
async def test_a_notice_is_delivered_with_the_commit_and_dropped_by_a_rollback(store: Store) -> None:
    listener = await _admin(store)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("escalade_test", lambda *args: heard.put_nowait(args[3]))
    payloads = ['{"a": "it\'s"}', "back\\slash \\' E'x'); SELECT 1; --", "ünïcödé ✓"]
    try:
        async with store.uow() as uow:
            await uow.customers.get("+15551230001")
            await _link(uow).notify("escalade_test", "rolled back")
            await uow.rollback()
            await uow.customers.get("+15551230001")
            for payload in payloads:
                await _link(uow).notify("escalade_test", payload)
            await asyncio.sleep(0.2)
            assert heard.empty(), "nothing is sent before the commit"
            await uow.commit()
        assert [await asyncio.wait_for(heard.get(), 5) for _ in payloads] == payloads
        async with store.uow() as uow:
            await uow.customers.get("+15551230001")
            await _link(uow).notify("escalade_test", "left open")
        await asyncio.sleep(0.2)
        assert heard.empty(), "a unit of work left without commit sends nothing"
        async with store.uow() as uow:
            await _link(uow).notify("escalade_test", "first of its transaction")
            await uow.commit()
        assert await asyncio.wait_for(heard.get(), 5) == "first of its transaction"
    finally:
        await listener.close()
