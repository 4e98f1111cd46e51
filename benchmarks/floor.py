"""The durable floor: the least code that does a routing decision's durable work, to divide Escalade by.

A benchmark that compares Escalade with a servicer that does nothing says little; the fair floor is what an
engineer would write in an afternoon if correctness under races were all they needed. Per ResolveEscalation
request it

1. reads the caller's tier (`floor_customers`, 100,000 rows in the benchmarks),
2. reads the team's specialists (`floor_specialists`, 1,000 in the benchmarks): the least busy available
   ones qualified for the call's complexity, through an index in that order,
3. reserves one with ONE conditional `UPDATE ... RETURNING` whose WHERE clause checks the capacity (so
   however requests interleave, no specialist ever holds more calls than its capacity),
4. inserts the decision row (`floor_decisions`),
5. commits.

ReleaseAssignment marks the call's decision released and gives the slot back (the benchmarks end every call
one second after its answer, for the floor as for Escalade).

Two stores, one per database, each the obvious code for it:

* SQLite: stdlib `sqlite3` in WAL mode with `synchronous=NORMAL`, executed inline on the event loop (one
  connection; a decision is one `BEGIN IMMEDIATE ... COMMIT` that nothing can interleave with).
* PostgreSQL: an asyncpg pool of 8 connections; the whole decision is one statement (a CTE: tier, candidate
  `FOR UPDATE SKIP LOCKED`, conditional update, decision row), committed as it runs.

It answers on the routing contract (`RoutingService`, the same messages), so the benchmarks' drivers and the
floor edge reach it exactly as they reach Escalade. What it does NOT do is everything Escalade adds: policy
(rules, complexity assessment, tier floors, business hours, callbacks), the decision trace, idempotency on
(call_id, tool_call_id), the outbox, metrics and logging. Tables carry a `floor_` prefix so they never collide
with Escalade's own in a shared database.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc

__all__ = [
    "FloorServicer",
    "FloorStore",
    "PgFloor",
    "SqliteFloor",
    "customer_number",
    "open_floor",
    "seed_floor",
    "specialist_number",
    "sqlite_url",
    "start_floor",
]

DEFAULT_TIER = "standard"
PG_POOL_SIZE = 8
TEAM_LINE = "+15550100200"
"""Where a call goes when nobody in the team is free (the floor has no callback queue)."""


def customer_number(i: int) -> str:
    """The benchmark customers' numbers (the same in the floor and in Escalade's store)."""
    return f"+1415{i:07d}"


def specialist_number(i: int) -> str:
    """The benchmark specialists' lines: a prefix no team line or fallback of the TechCorp policy uses, so a
    driver can tell a reserved specialist from any other answer."""
    return f"+1555020{i % 10000:04d}"


SPECIALIST_NUMBER_PREFIX = "+1555020"


# ---------------------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------------------
_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_customers (
    number TEXT PRIMARY KEY,
    tier TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS floor_specialists (
    agent_id TEXT PRIMARY KEY,
    team_id TEXT NOT NULL,
    display_name TEXT NOT NULL,
    dest_number TEXT NOT NULL,
    status TEXT NOT NULL,
    max_complexity INTEGER NOT NULL,
    capacity INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 0 CHECK (active >= 0),
    idle_since TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS floor_specialists_least_busy
    ON floor_specialists (team_id, active, idle_since, agent_id);
CREATE TABLE IF NOT EXISTS floor_decisions (
    decision_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    tool_call_id TEXT NOT NULL,
    team_id TEXT NOT NULL,
    agent_id TEXT,
    tier TEXT NOT NULL,
    complexity INTEGER NOT NULL,
    decided_at TEXT NOT NULL,
    released_at TEXT
);
CREATE INDEX IF NOT EXISTS floor_decisions_call_id ON floor_decisions (call_id);
"""

_PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_customers (
    number text PRIMARY KEY,
    tier text NOT NULL
);
CREATE TABLE IF NOT EXISTS floor_specialists (
    agent_id text PRIMARY KEY,
    team_id text NOT NULL,
    display_name text NOT NULL,
    dest_number text NOT NULL,
    status text NOT NULL,
    max_complexity smallint NOT NULL,
    capacity integer NOT NULL,
    active integer NOT NULL DEFAULT 0 CHECK (active >= 0),
    idle_since timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS floor_specialists_least_busy
    ON floor_specialists (team_id, active, idle_since, agent_id);
CREATE TABLE IF NOT EXISTS floor_decisions (
    decision_id text PRIMARY KEY,
    call_id text NOT NULL,
    tool_call_id text NOT NULL,
    team_id text NOT NULL,
    agent_id text,
    tier text NOT NULL,
    complexity smallint NOT NULL,
    decided_at timestamptz NOT NULL,
    released_at timestamptz
);
CREATE INDEX IF NOT EXISTS floor_decisions_call_id ON floor_decisions (call_id);
"""


def _rows(
    *, specialists: int, customers: int, capacity: int, teams: tuple[str, ...], tiers: tuple[str, ...]
) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    """Customers (number, tier) and specialists (agent_id, team, name, number, status, max_complexity,
    capacity, idle_since) as `benchmarks.routing.seed` makes them for Escalade: every tenth specialist
    offline, every third qualified up to intermediate only, idle for a random part of the last day."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    customer_rows = [(customer_number(i), tiers[i % len(tiers)]) for i in range(customers)]
    specialist_rows = []
    for i in range(specialists):
        idle_since = now - timedelta(seconds=rng.randrange(1, 86_400))
        for team in teams[:1]:  # the floor's specialists belong to one team (the first)
            specialist_rows.append(
                (
                    f"s{i:05d}",
                    team,
                    f"Specialist {i}",
                    specialist_number(i),
                    "available" if i % 10 else "offline",
                    2 if i % 3 == 0 else 4,
                    capacity,
                    idle_since,
                )
            )
    return customer_rows, specialist_rows


async def seed_floor(
    url: str,
    *,
    specialists: int,
    customers: int,
    capacity: int,
    teams: tuple[str, ...] = ("technical",),
    tiers: tuple[str, ...] = ("standard", "standard", "premium", "enterprise"),
    schema: str = "",
) -> None:
    """Create the floor's tables at `url` (`sqlite:///path` or `postgresql://...`) and fill them."""
    customer_rows, specialist_rows = _rows(
        specialists=specialists, customers=customers, capacity=capacity, teams=teams, tiers=tiers
    )
    if url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_path(url))
        try:
            conn.executescript(_SQLITE_SCHEMA)
            conn.executemany("INSERT INTO floor_customers VALUES (?, ?)", customer_rows)
            conn.executemany(
                "INSERT INTO floor_specialists (agent_id, team_id, display_name, dest_number, status,"
                " max_complexity, capacity, idle_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row[:-1], _sqlite_time(row[-1])) for row in specialist_rows],
            )
            conn.commit()
            conn.execute("ANALYZE")
        finally:
            conn.close()
        return
    import asyncpg

    pg = await asyncpg.connect(_pg_dsn(url), server_settings=_pg_settings(schema))
    try:
        await pg.execute(_PG_SCHEMA)
        await pg.copy_records_to_table("floor_customers", records=customer_rows)
        await pg.copy_records_to_table(
            "floor_specialists",
            records=specialist_rows,
            columns=[
                "agent_id",
                "team_id",
                "display_name",
                "dest_number",
                "status",
                "max_complexity",
                "capacity",
                "idle_since",
            ],
        )
        await pg.execute("ANALYZE floor_customers; ANALYZE floor_specialists")
    finally:
        await pg.close()


def _sqlite_path(url: str) -> str:
    return url.split(":///", 1)[1]


def _sqlite_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")


def _pg_dsn(url: str) -> str:
    """A libpq DSN from a SQLAlchemy-style URL (`postgresql+asyncpg://` is accepted too)."""
    return "postgresql://" + url.split("://", 1)[1]


def _pg_settings(schema: str) -> dict[str, str]:
    return {"search_path": schema} if schema else {}


# ---------------------------------------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------------------------------------
class FloorStore(Protocol):
    async def decide(
        self, *, call_id: str, tool_call_id: str, caller: str, team_id: str, complexity: int
    ) -> tuple[str, str | None, str | None, str | None]:
        """Store one decision; (tier, agent_id, display_name, dest_number), the agent fields None when
        nobody qualified was free."""
        ...

    async def release(self, call_id: str) -> str | None:
        """Release the call's reservation; the specialist freed, if any."""
        ...

    async def close(self) -> None: ...


class SqliteFloor:
    """One stdlib `sqlite3` connection used inline on the event loop (WAL, synchronous=NORMAL)."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")

    async def decide(
        self, *, call_id: str, tool_call_id: str, caller: str, team_id: str, complexity: int
    ) -> tuple[str, str | None, str | None, str | None]:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT tier FROM floor_customers WHERE number = ?", (caller,)).fetchone()
            tier: str = row[0] if row else DEFAULT_TIER
            candidates = conn.execute(
                "SELECT agent_id FROM floor_specialists"
                " WHERE team_id = ? AND status = 'available' AND max_complexity >= ? AND active < capacity"
                " ORDER BY active, idle_since, agent_id LIMIT 4",
                (team_id, complexity),
            ).fetchall()
            reserved = None
            for (agent_id,) in candidates:
                reserved = conn.execute(
                    "UPDATE floor_specialists SET active = active + 1"
                    " WHERE agent_id = ? AND status = 'available' AND active < capacity"
                    " RETURNING agent_id, display_name, dest_number",
                    (agent_id,),
                ).fetchone()
                if reserved is not None:
                    break
            agent_id, name, number = reserved if reserved is not None else (None, None, None)
            conn.execute(
                "INSERT INTO floor_decisions (decision_id, call_id, tool_call_id, team_id, agent_id, tier,"
                " complexity, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    uuid.uuid4().hex,
                    call_id,
                    tool_call_id,
                    team_id,
                    agent_id,
                    tier,
                    complexity,
                    _sqlite_time(datetime.now(UTC)),
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return tier, agent_id, name, number

    async def release(self, call_id: str) -> str | None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            freed = conn.execute(
                "UPDATE floor_decisions SET released_at = ?"
                " WHERE call_id = ? AND agent_id IS NOT NULL AND released_at IS NULL RETURNING agent_id",
                (_sqlite_time(datetime.now(UTC)), call_id),
            ).fetchall()
            for (agent_id,) in freed:
                conn.execute(
                    "UPDATE floor_specialists SET active = active - 1 WHERE agent_id = ?", (agent_id,)
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return str(freed[0][0]) if freed else None

    async def close(self) -> None:
        self.conn.close()


# The whole decision in one statement. Data-modifying CTEs run exactly once, whether or not the outer
# SELECT reads them; `pick` locks its row (SKIP LOCKED: concurrent decisions take the next least busy one
# instead of queueing behind it) and the UPDATE re-checks the capacity itself.
_PG_DECIDE = """
WITH caller AS (
    SELECT tier FROM floor_customers WHERE number = $1
), pick AS (
    SELECT agent_id FROM floor_specialists
    WHERE team_id = $2 AND status = 'available' AND max_complexity >= $3 AND active < capacity
    ORDER BY active, idle_since, agent_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), reserved AS (
    UPDATE floor_specialists AS s SET active = s.active + 1
    FROM pick
    WHERE s.agent_id = pick.agent_id AND s.active < s.capacity
    RETURNING s.agent_id, s.display_name, s.dest_number
), decision AS (
    INSERT INTO floor_decisions (decision_id, call_id, tool_call_id, team_id, agent_id, tier, complexity,
                                 decided_at)
    SELECT $4, $5, $6, $2, (SELECT agent_id FROM reserved),
           COALESCE((SELECT tier FROM caller), $7), $3, now()
    RETURNING tier
)
SELECT decision.tier, reserved.agent_id, reserved.display_name, reserved.dest_number
FROM decision LEFT JOIN reserved ON true
"""

_PG_RELEASE = """
WITH done AS (
    UPDATE floor_decisions SET released_at = now()
    WHERE call_id = $1 AND agent_id IS NOT NULL AND released_at IS NULL
    RETURNING agent_id
)
UPDATE floor_specialists AS s SET active = s.active - 1
FROM done WHERE s.agent_id = done.agent_id
RETURNING s.agent_id
"""


class PgFloor:
    """An asyncpg pool of `PG_POOL_SIZE`; one statement per decision and per release."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    @classmethod
    async def open(cls, url: str, schema: str = "") -> PgFloor:
        import asyncpg

        pool = await asyncpg.create_pool(
            _pg_dsn(url), min_size=PG_POOL_SIZE, max_size=PG_POOL_SIZE, server_settings=_pg_settings(schema)
        )
        return cls(pool)

    async def decide(
        self, *, call_id: str, tool_call_id: str, caller: str, team_id: str, complexity: int
    ) -> tuple[str, str | None, str | None, str | None]:
        row = await self.pool.fetchrow(
            _PG_DECIDE, caller, team_id, complexity, uuid.uuid4().hex, call_id, tool_call_id, DEFAULT_TIER
        )
        return row[0], row[1], row[2], row[3]

    async def release(self, call_id: str) -> str | None:
        agent_id: str | None = await self.pool.fetchval(_PG_RELEASE, call_id)
        return agent_id

    async def close(self) -> None:
        await self.pool.close()


async def open_floor(url: str, schema: str = "") -> FloorStore:
    """The floor's store for `url`: `sqlite:///path` or `postgresql://...` (a `+driver` suffix is ignored)."""
    if url.startswith("sqlite"):
        return SqliteFloor(_sqlite_path(url))
    return await PgFloor.open(url, schema)


# ---------------------------------------------------------------------------------------------------------
# Servicer
# ---------------------------------------------------------------------------------------------------------
class FloorServicer(pb_grpc.RoutingServiceServicer):
    """ResolveEscalation and ReleaseAssignment on the floor's store; every other RPC is UNIMPLEMENTED."""

    def __init__(self, store: FloorStore) -> None:
        self.store = store

    async def ResolveEscalation(
        self, request: pb.ResolveEscalationRequest, context: Any
    ) -> pb.ResolveEscalationResponse:
        team_id = request.issue_category or "general"
        complexity = request.complexity or pb.COMPLEXITY_BASIC
        tier, agent_id, name, number = await self.store.decide(
            call_id=request.call_id,
            tool_call_id=request.tool_call_id,
            caller=request.caller_number,
            team_id=team_id,
            complexity=complexity,
        )
        if agent_id is not None:
            decision = pb.Decision(
                call_id=request.call_id,
                kind=pb.DECISION_KIND_TRANSFER_AGENT,
                team_id=team_id,
                agent_id=agent_id,
                agent_display_name=name or "",
                destination=pb.Destination(number=number or ""),
                caller_message=f"Connecting you to {name}.",
                transfer_mode=pb.TRANSFER_MODE_WARM_TRANSFER_SAY_SUMMARY,
                tier=tier,
                effective_complexity=complexity,
            )
        else:
            decision = pb.Decision(
                call_id=request.call_id,
                kind=pb.DECISION_KIND_TRANSFER_TEAM,
                team_id=team_id,
                destination=pb.Destination(number=TEAM_LINE),
                caller_message="Transferring you to our specialists.",
                transfer_mode=pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE,
                tier=tier,
                effective_complexity=complexity,
            )
        return pb.ResolveEscalationResponse(decision=decision)

    async def ReleaseAssignment(
        self, request: pb.ReleaseAssignmentRequest, context: Any
    ) -> pb.ReleaseAssignmentResponse:
        agent_id = await self.store.release(request.call_id)
        return pb.ReleaseAssignmentResponse(released=agent_id is not None, agent_id=agent_id or "")


class FloorServer:
    """A grpc.aio server with the floor servicer on 127.0.0.1 (port chosen by the OS)."""

    def __init__(self, server: grpc.aio.Server, store: FloorStore, port: int) -> None:
        self.server, self.store, self.port = server, store, port

    async def stop(self, grace: float | None = None) -> None:
        await self.server.stop(grace)
        await self.store.close()


async def start_floor(url: str, schema: str = "") -> FloorServer:
    store = await open_floor(url, schema)
    server = grpc.aio.server()
    pb_grpc.add_RoutingServiceServicer_to_server(FloorServicer(store), server)  # type: ignore[abstract]  # the two RPCs above; the rest answer UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return FloorServer(server, store, port)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


async def _self_check() -> None:  # pragma: no cover - `python -m benchmarks.floor`: a one-off smoke run
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = sqlite_url(Path(tmp) / "floor.db")
        await seed_floor(url, specialists=10, customers=100, capacity=2)
        server = await start_floor(url)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.RoutingServiceStub(channel)
            reply = await stub.ResolveEscalation(
                pb.ResolveEscalationRequest(
                    call_id="c1",
                    caller_number=customer_number(1),
                    issue_category="technical",
                    complexity=pb.COMPLEXITY_ADVANCED,
                )
            )
            print(reply)
        await server.stop()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_self_check())
