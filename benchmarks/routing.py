"""Routing benchmark: ResolveEscalation decisions/s and latency over gRPC, on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.routing                      # defaults below, about 1-2 minutes
    .venv/bin/python -m benchmarks.routing --databases sqlite --requests 1000 --skip-scaling

What runs (every row in this one process run, so the ratios compare like with like):
- baseline: a trivial grpc.aio servicer answering one unary call (bytes in, bytes out);
- per database: a real `RoutingServer` (store, TechCorp policy) seeded with `--specialists` specialists and
  `--customers` customers; callers are drawn from the customers (10% unknown numbers). Rows:
  * "resolve, reserving": ResolveEscalation calls that each reserve a specialist, timed alone, in windows
    of RESERVE_WINDOW decisions; after each window its reservations are released;
  * "release": those ReleaseAssignment calls, timed alone;
  * "resolve + release pairs": each caller releases its reservation right away, both calls timed (what a
    live system sustains when every call ends; one pair = two RPCs, so compare with half the baseline);
  * "resolve dry run": decide and explain, nothing reserved or stored;
  * "resolve, all busy": every specialist set busy first, so each decision queues a callback (position,
    estimated wait from the team's recent handle times: `--history` releases over the last hour are seeded);
- scaling: cost per pair with 100 and with 10,000 specialists, as wall time (1 / throughput) and as the
  routing process's CPU per pair (target ratio <= 1.2 for each);
- the durable floor (`benchmarks.floor`), per database: the floor and Escalade side by side on
  fresh databases seeded alike, reserving decisions at concurrency 1 and `--concurrency`, interleaved,
  `--repeat` times (the recorded results use 3: medians); printed as the comparison table with Escalade's
  ratios to the floor and the targets with pass/miss (SQLite: throughput >= 0.6x, p99 <= 1.5x, c=1 p50
  <= 2x; PostgreSQL: >= 0.7x, <= 1.5x, <= 2x), also in the result file; `--skip-floor` leaves it out.

Every row also gives the server process's CPU time per call (from /proc), which does not depend on how
the two processes share the machine's cores.

The servers run in a child process (their own core); the client runs here with `--concurrency` calls in
flight. PostgreSQL: a database is created on 127.0.0.1:5432 for each row and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypedDict

import grpc

from benchmarks.compare import Figures, add_comparison, median_figures, print_comparison
from benchmarks.floor import customer_number, specialist_number
from benchmarks.results import Column, Result, add_results_option, write

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "examples" / "techcorp.yaml"


class _PgServer(TypedDict):
    host: str
    port: int
    user: str
    admin_db: str


PG: _PgServer = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "admin_db": "test"}
TIERS = ("standard", "standard", "premium", "enterprise")
ECHO_METHOD = "/bench.Echo/Ping"


@dataclass(frozen=True)
class Row:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    agent_decisions: int
    errors: int
    server_cpu_s: float = 0.0

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# ---------------------------------------------------------------------------------------------------------
# Server side (child process)
# ---------------------------------------------------------------------------------------------------------
def _serve_child(kind: str, url: str, conn: Connection) -> None:
    from routing_service.grpc.server import run_event_loop

    run_event_loop(_serve(kind, url, conn), os.environ.get("ESCALADE_EVENT_LOOP", "auto"))


async def _serve(kind: str, url: str, conn: Connection) -> None:
    from escalade_platform.logs import configure_logging

    configure_logging(json=True, level="warning")
    loop = asyncio.get_running_loop()
    if kind == "baseline":
        server = grpc.aio.server()

        async def ping(request: bytes, context: Any) -> bytes:
            return request

        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Ping": grpc.unary_unary_rpc_method_handler(ping)}
        )
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        conn.send(port)
        await loop.run_in_executor(None, conn.recv)
        await server.stop(1)
        return
    from escalade_platform.heap import freeze_startup_heap

    if kind == "floor":
        from benchmarks.floor import start_floor

        floor = await start_floor(url)
        freeze_startup_heap()
        conn.send(floor.port)
        await loop.run_in_executor(None, conn.recv)
        await floor.stop(1)
        return
    from routing_service.grpc.server import RoutingServer
    from routing_service.settings import RoutingSettings

    routing = RoutingServer(
        RoutingSettings(database_url=url, policy=POLICY, routing_address="127.0.0.1:0"),
        watch_policy=False,
        run_sweeps=False,
    )
    port = await routing.start()
    freeze_startup_heap()  # as `escalade routing serve` does once started
    conn.send(port)
    await loop.run_in_executor(None, conn.recv)
    await routing.stop(1)


class ChildServer:
    """A server in a spawned child process: `target(*args, conn)` sends its port on `conn` once it listens
    and stops when it receives anything. As a context manager: the address while it runs."""

    def __init__(self, target: Callable[..., None], *args: object, stop_timeout: float = 30) -> None:
        ctx = mp.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(*args, child), daemon=True)
        self.stop_timeout = stop_timeout

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    def __enter__(self) -> str:
        self.proc.start()
        if not self.parent.poll(120):
            raise RuntimeError("benchmark server did not start")
        return f"127.0.0.1:{self.parent.recv()}"

    def __exit__(self, *exc: object) -> None:
        self.parent.send("stop")
        self.proc.join(self.stop_timeout)
        if self.proc.is_alive():
            self.proc.kill()


class ServerProcess(ChildServer):
    """The baseline, a routing server or the floor (`kind`), on `url`."""

    def __init__(self, kind: str, url: str = "") -> None:
        super().__init__(_serve_child, kind, url)


# ---------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------
async def seed(
    url: str,
    *,
    specialists: int,
    customers: int,
    history: int = 0,
    capacity: int = 2,
    teams: tuple[str, ...] = ("technical", "enterprise"),
    tiers: tuple[str, ...] = TIERS,
) -> None:
    """Migrate, then bulk-insert customers (tiers in turn from `tiers`), specialists of `capacity` (members of
    `teams`) and `history` released live calls spread over the last hour (what a busy centre's wait
    estimates read). `benchmarks.floor.seed_floor` makes the same rows for the durable floor."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from routing_service.store import tables
    from routing_service.store.migrate import upgrade

    await upgrade(url)
    engine = create_async_engine(url)  # bulk loading is administration: SQLAlchemy's engine does it
    now = datetime.now(UTC)
    rng = random.Random(7)
    try:
        async with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for i in range(customers):
                batch.append(
                    {
                        "number": customer_number(i),
                        "tier": tiers[i % len(tiers)],
                        "account_name": f"Account {i}",
                        "previous_escalations": i % 3,
                        "last_agent_id": None,
                        "updated_at": now,
                    }
                )
                if len(batch) == 10_000:
                    await conn.execute(tables.customers.insert(), batch)
                    batch = []
            if batch:
                await conn.execute(tables.customers.insert(), batch)
            agents, members = [], []
            has_team_ids = "team_ids" in tables.agents.c
            for i in range(specialists):
                agent_id = f"s{i:05d}"
                agents.append(
                    {
                        "agent_id": agent_id,
                        "display_name": f"Specialist {i}",
                        "dest_number": specialist_number(i),
                        "dest_sip_uri": None,
                        "dest_extension": None,
                        "skills": ["api"],
                        "max_complexity": 2 if i % 3 == 0 else 4,
                        "capacity": capacity,
                        "status": "available" if i % 10 else "offline",
                        "active_assignments": 0,
                        "idle_since": now - timedelta(seconds=rng.randrange(1, 86_400)),
                        "updated_at": now,
                        **({"team_ids": list(teams)} if has_team_ids else {}),
                    }
                )
                members += [
                    {"agent_id": agent_id, "team_id": team, "position": position}
                    for position, team in enumerate(teams)
                ]
            for start in range(0, len(agents), 5_000):
                await conn.execute(tables.agents.insert(), agents[start : start + 5_000])
            for start in range(0, len(members), 10_000):
                await conn.execute(tables.agent_teams.insert(), members[start : start + 10_000])
            released: list[dict[str, Any]] = []
            for i in range(history if specialists else 0):
                ended = now - timedelta(seconds=3600 * i / history)
                released.append(
                    {
                        "call_id": f"history-{i}",
                        "purpose": "live",
                        "agent_id": f"s{i % specialists:05d}",
                        "state": "released",
                        "reserved_at": ended - timedelta(seconds=120 + rng.randrange(600)),
                        "expires_at": ended + timedelta(hours=2),
                        "released_at": ended,
                        "release_reason": "ended",
                    }
                )
                if len(released) == 10_000:
                    await conn.execute(tables.assignments.insert(), released)
                    released = []
            if released:
                await conn.execute(tables.assignments.insert(), released)
        if url.startswith("postgresql"):
            # A live database has planner statistics; a freshly bulk-loaded one gets them here.
            async with engine.connect() as conn:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


class Database:
    """A fresh database per row: a SQLite file or a PostgreSQL database created and dropped here."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.name = f"escalade_bench_{uuid.uuid4().hex[:10]}"
        self.workdir = workdir

    async def __aenter__(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite+aiosqlite:///{self.workdir / (self.name + '.db')}"
        import asyncpg

        conn = await asyncpg.connect(
            host=PG["host"], port=PG["port"], user=PG["user"], database=PG["admin_db"]
        )
        try:
            await conn.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await conn.close()
        return f"postgresql+asyncpg://{PG['user']}@{PG['host']}:{PG['port']}/{self.name}"

    async def __aexit__(self, *exc: object) -> None:
        if self.kind != "postgresql":
            return
        import asyncpg

        conn = await asyncpg.connect(
            host=PG["host"], port=PG["port"], user=PG["user"], database=PG["admin_db"]
        )
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


# ---------------------------------------------------------------------------------------------------------
# Client side
# ---------------------------------------------------------------------------------------------------------
def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of process `pid` so far (0 when unknown or not on Linux)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    name: str,
    requests: int,
    concurrency: int,
    one: Callable[[int], Awaitable[bool]],
    warmup: int,
    max_seconds: float,
    server_pid: int | None = None,
) -> Row:
    """Run `one(i)` up to `requests` times (or until `max_seconds`) with `concurrency` in flight; latency per
    call, wall time overall."""
    for i in range(warmup):
        await one(-1 - i)
    latencies: list[float] = []
    counter = iter(range(requests))
    agent_decisions = 0
    errors = 0

    deadline = time.perf_counter() + max_seconds
    done = 0

    async def worker() -> None:
        nonlocal agent_decisions, errors, done
        for i in counter:
            if time.perf_counter() > deadline:
                return
            done += 1
            start = time.perf_counter()
            try:
                took_agent = await one(i)
            except grpc.RpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - start)
            agent_decisions += int(took_agent)

    start, cpu = time.perf_counter(), process_cpu_seconds(server_pid)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, process_cpu_seconds(server_pid) - cpu
    return Row(name, done, elapsed, latencies, agent_decisions, errors, cpu)


async def run_baseline(args: argparse.Namespace) -> Row:
    server = ServerProcess("baseline")
    with server as address:
        async with grpc.aio.insecure_channel(address) as channel:
            ping: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(ECHO_METHOD)
            payload = b"x" * 200

            async def one(i: int) -> bool:
                await ping(payload, timeout=10)
                return False

            return await drive(
                "baseline: bare grpc.aio unary",
                args.requests,
                args.concurrency,
                one,
                50,
                args.seconds,
                server.pid,
            )


RESERVE_WINDOW = 800
"""Reserving decisions per timed window in the `resolve` row: below the qualified free slots of the seeded
specialists (a third of them only handle up to intermediate complexity), so every decision in a window
reserves and none queues a callback; the window's reservations are released, timed as the `release` row,
before the next window."""


async def run_routing(
    args: argparse.Namespace, kind: str, *, specialists: int, customers: int, modes: list[str], label: str
) -> list[Row]:
    """Seed one database, start one routing server, and run one row per mode:

    * `resolve` - ResolveEscalation that reserves, timed alone in windows of `RESERVE_WINDOW`; between
      windows the reservations are released with ReleaseAssignment (untimed here) and, when `release` is
      also asked for, the releases form their own row;
    * `pair` - each decision that reserved is released right away by the same caller, both timed (the
      steady state of a live system: every reservation is released once its call ends);
    * `dry` - dry runs (decide and explain; nothing reserved or stored).
    """
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc

    rows = []
    with tempfile.TemporaryDirectory(prefix="escalade-bench-") as tmp:
        async with Database(kind, Path(tmp)) as url:
            await seed(url, specialists=specialists, customers=customers, history=args.history)
            server = ServerProcess("routing", url)
            with server as address:
                async with grpc.aio.insecure_channel(address) as channel:
                    stub = routing_pb2_grpc.RoutingServiceStub(channel)
                    rng = random.Random(11)

                    def request(call_id: str, dry_run: bool) -> Any:
                        return technical_request(call_id, dry_run, rng, customers)

                    async def release(call_id: str) -> None:
                        await stub.ReleaseAssignment(
                            pb.ReleaseAssignmentRequest(call_id=call_id, reason="bench"), timeout=30
                        )

                    for mode in modes:
                        run = uuid.uuid4().hex[:8]
                        if mode == "resolve":
                            rows += await _reserving_rows(
                                args, kind, label, stub, request, release, run, server.pid
                            )
                        elif mode == "busy":
                            rows.append(
                                await _all_busy_row(args, kind, label, stub, request, run, server.pid)
                            )
                        else:
                            dry_run = mode == "dry"

                            async def one(i: int, dry_run: bool = dry_run, run: str = run) -> bool:
                                call_id = f"bench-{run}-{i}"
                                reply = await stub.ResolveEscalation(request(call_id, dry_run), timeout=30)
                                took = reply.decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
                                if took and not dry_run:
                                    await release(call_id)
                                return took

                            what = "resolve dry run" if dry_run else "resolve + release pairs"
                            rows.append(
                                await drive(
                                    f"{kind}: {what} ({label})",
                                    args.requests,
                                    args.concurrency,
                                    one,
                                    20,
                                    args.seconds,
                                    server.pid,
                                )
                            )
                        print(f"  done: {rows[-1].name}", flush=True)
    return rows


async def _reserving_rows(
    args: argparse.Namespace,
    kind: str,
    label: str,
    stub: Any,
    request: Callable[[str, bool], Any],
    release: Callable[[str], Awaitable[None]],
    run: str,
    server_pid: int | None,
) -> list[Row]:
    """The `resolve` row (reserving decisions, timed in windows) and the `release` row (their releases)."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    decided: list[Row] = []
    released: list[Row] = []
    budget = time.perf_counter() + args.seconds
    done = 0
    while done < args.requests and time.perf_counter() < budget:
        window = min(RESERVE_WINDOW, args.requests - done)
        reserved: list[str] = []

        async def one(i: int, base: int = done, reserved: list[str] = reserved) -> bool:
            call_id = f"bench-{run}-{base + i}" if i >= 0 else f"bench-{run}-warm{i}"
            reply = await stub.ResolveEscalation(request(call_id, False), timeout=30)
            took: bool = reply.decision.kind == pb.DECISION_KIND_TRANSFER_AGENT
            if took:
                reserved.append(call_id)
            return took

        warmup = 0 if decided else 20
        decided.append(await drive("", window, args.concurrency, one, warmup, args.seconds, server_pid))
        done += decided[-1].requests
        pending = list(reserved)

        async def free(i: int, pending: list[str] = pending) -> bool:
            await release(pending[i])
            return False

        released.append(
            await drive("", len(pending), args.concurrency, free, 0, args.seconds * 4, server_pid)
        )
    return [
        _merged(f"{kind}: resolve, reserving ({label})", decided),
        _merged(f"{kind}: release ({label})", released),
    ]


async def _all_busy_row(
    args: argparse.Namespace,
    kind: str,
    label: str,
    stub: Any,
    request: Callable[[str, bool], Any],
    run: str,
    server_pid: int | None,
) -> Row:
    """Every specialist busy (SetAgentStatus), then decisions that each queue a callback; the specialists
    are set available again afterwards."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    async def set_all(status: Any) -> None:
        ids = [f"s{i:05d}" for i in range(args.specialists)]
        for start in range(0, len(ids), 64):
            await asyncio.gather(
                *(
                    stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id=a, status=status), timeout=30)
                    for a in ids[start : start + 64]
                )
            )

    await set_all(pb.AGENT_STATUS_BUSY)
    queued = 0

    async def one(i: int) -> bool:
        nonlocal queued
        call_id = f"busy-{run}-{i}"
        reply = await stub.ResolveEscalation(request(call_id, False), timeout=30)
        queued += reply.decision.kind == pb.DECISION_KIND_CALLBACK and i >= 0
        return False

    history = f"{args.history:,} releases in the last hour"
    row = await drive(
        f"{kind}: resolve, all busy: callback queued ({label}, {history})",
        args.requests,
        args.concurrency,
        one,
        20,
        args.seconds,
        server_pid,
    )
    await set_all(pb.AGENT_STATUS_AVAILABLE)
    if queued != row.requests:
        raise RuntimeError(f"all-busy row: {row.requests - queued} decisions did not queue a callback")
    return row


def _merged(name: str, parts: list[Row]) -> Row:
    return Row(
        name,
        sum(p.requests for p in parts),
        sum(p.seconds for p in parts),
        [latency for p in parts for latency in p.latencies],
        sum(p.agent_decisions for p in parts),
        sum(p.errors for p in parts),
        sum(p.server_cpu_s for p in parts),
    )


SCALING_TARGET = 1.2
"""Cost per pair with 10,000 specialists over its cost with 100: at most this."""


def _cpu_per_call(row: Row) -> float:
    """The routing process's CPU per call of `row`, in ms."""
    return 1000 * row.server_cpu_s / max(1, row.requests)


def result(
    args: argparse.Namespace,
    rows: list[Row],
    baseline: Row,
    scaling: list[tuple[str, Row, Row, tuple[int, int]]],
) -> Result:
    """What `print_table` prints, as a result file (benchmarks.results); `main` adds the durable floor
    comparison's rows and checks."""
    columns = [
        Column("calls", "calls", ","),
        Column("per_second", "calls/s", ",.0f"),
        Column("p50_ms", "p50 ms", ".2f"),
        Column("p99_ms", "p99 ms", ".2f"),
        Column("p50_c1_ms", "c=1 p50 ms", ".2f"),  # the durable floor comparison's rows only
        Column("agent_pct", "specialist reserved %", ".0f"),
        Column("errors", "errors", ","),
        Column("server_cpu_ms", "server CPU ms per call", ".2f"),
        Column("x_bare", "cost x bare call", ".1f"),
    ]
    parameters = {k: v for k, v in vars(args).items() if k != "results_dir"}
    found = Result("routing", parameters, columns, packages=("grpcio", "protobuf", "sqlalchemy", "asyncpg"))
    for row in [baseline, *rows]:
        found.add_row(
            row.name,
            calls=row.requests,
            per_second=round(row.per_second, 1),
            p50_ms=round(row.pct(0.5), 3),
            p99_ms=round(row.pct(0.99), 3),
            agent_pct=round(100 * row.agent_decisions / max(1, row.requests), 1),
            errors=row.errors,
            server_cpu_ms=round(1000 * row.server_cpu_s / max(1, row.requests), 3),
            x_bare=round(baseline.per_second / row.per_second, 2) if row.per_second else None,
        )
    for kind, small, large, sizes in scaling:
        ratio = small.per_second / large.per_second if large.per_second else float("inf")
        found.check(
            f"{kind}: cost per pair, {sizes[0]:,} -> {sizes[1]:,} specialists",
            round(ratio, 3),
            "x",
            f"<= {SCALING_TARGET}x",
            ratio <= SCALING_TARGET,
        )
        cpu_ratio = _cpu_per_call(large) / _cpu_per_call(small) if _cpu_per_call(small) else float("inf")
        found.check(
            f"{kind}: server CPU per pair, {sizes[0]:,} -> {sizes[1]:,} specialists",
            round(cpu_ratio, 3),
            "x",
            f"<= {SCALING_TARGET}x",
            cpu_ratio <= SCALING_TARGET,
        )
    for kind in dict.fromkeys(r.name.split(":", 1)[0] for r in rows):
        for label, marker in (("reserving decisions", "resolve, reserving"), ("pairs", "pairs")):
            best = max(
                (r.per_second for r in rows if r.name.startswith(kind) and marker in r.name), default=0.0
            )
            if best:
                found.check(
                    f"{kind}: {label}, best row",
                    round(best, 1),
                    "/s",
                    ">= 1,000/s",
                    best >= 1000,
                    headline=label == "reserving decisions",
                )
    return found


async def run_floor_comparison(args: argparse.Namespace, kind: str) -> dict[str, list[Figures]]:
    """Escalade and the durable floor (`benchmarks.floor`) side by side on fresh databases of `kind` seeded
    alike: reserving ResolveEscalation decisions (the `resolve` row's windows and releases) at concurrency 1
    and `--concurrency`, the two systems interleaved, `--repeat` times. Per run: decisions/s and p99 at
    `--concurrency`, p50 at 1, and the server process's CPU per decision."""
    from benchmarks.floor import seed_floor
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc

    size = {"specialists": args.specialists, "customers": args.customers}
    runs: dict[str, list[Figures]] = {"floor": [], "escalade": []}
    with tempfile.TemporaryDirectory(prefix="escalade-bench-") as tmp:
        async with Database(kind, Path(tmp)) as floor_url, Database(kind, Path(tmp)) as escalade_url:
            await seed_floor(floor_url, **size, capacity=2, teams=("technical",), tiers=TIERS)
            await seed(escalade_url, **size, history=args.history)
            floor_server, escalade_server = (
                ServerProcess("floor", floor_url),
                ServerProcess("routing", escalade_url),
            )
            with floor_server as floor_address, escalade_server as escalade_address:
                servers = {
                    "floor": (floor_server, floor_address),
                    "escalade": (escalade_server, escalade_address),
                }
                async with (
                    grpc.aio.insecure_channel(floor_address) as floor_channel,
                    grpc.aio.insecure_channel(escalade_address) as escalade_channel,
                ):
                    channels = {"floor": floor_channel, "escalade": escalade_channel}
                    for rep in range(args.repeat):
                        by_level: dict[tuple[str, int], Row] = {}
                        for c in sorted({1, args.concurrency}):
                            for name, (server, _) in servers.items():
                                stub = routing_pb2_grpc.RoutingServiceStub(channels[name])
                                rng = random.Random(f"{name}-{rep}-{c}")

                                def request(call_id: str, dry_run: bool, rng: random.Random = rng) -> Any:
                                    return technical_request(call_id, dry_run, rng, args.customers)

                                async def release(call_id: str, stub: Any = stub) -> None:
                                    await stub.ReleaseAssignment(
                                        pb.ReleaseAssignmentRequest(call_id=call_id, reason="bench"),
                                        timeout=30,
                                    )

                                level_args = argparse.Namespace(**{**vars(args), "concurrency": c})
                                decided, _ = await _reserving_rows(
                                    level_args,
                                    kind,
                                    name,
                                    stub,
                                    request,
                                    release,
                                    f"{name}-r{rep}-c{c}",
                                    server.pid,
                                )
                                by_level[(name, c)] = decided
                                print(
                                    f"  done: {kind} {name} c={c} run {rep + 1}: {decided.per_second:.0f}/s",
                                    flush=True,
                                )
                        high = args.concurrency
                        for name in runs:
                            row, c1 = by_level[(name, high)], by_level[(name, 1)]
                            runs[name].append(
                                Figures(
                                    rps=row.per_second,
                                    p99_ms=row.pct(0.99),
                                    p50_c1_ms=c1.pct(0.5),
                                    cpu_ms=1000 * row.server_cpu_s / max(1, row.requests),
                                )
                            )
    return runs


def print_table(rows: list[Row], baseline: Row, scaling: list[tuple[str, Row, Row, tuple[int, int]]]) -> None:
    header = (
        f"{'row':<70} {'calls':>6} {'per s':>7} {'p50 ms':>8} {'p99 ms':>8} {'agent%':>7} {'err':>4} "
        f"{'srv cpu ms':>10} {'x base':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in [baseline, *rows]:
        cost_ratio = baseline.per_second / row.per_second if row.per_second else float("inf")
        agent = 100 * row.agent_decisions / max(1, row.requests)
        cpu = 1000 * row.server_cpu_s / max(1, row.requests)
        print(
            f"{row.name:<70} {row.requests:>6} {row.per_second:>7.0f} {row.pct(0.5):>8.2f} "
            f"{row.pct(0.99):>8.2f} {agent:>6.0f}% {row.errors:>4} {cpu:>10.2f} {cost_ratio:>6.1f}x"
        )
    for kind, small, large, sizes in scaling:
        ratio = small.per_second / large.per_second if large.per_second else float("inf")
        verdict = "OK" if ratio <= SCALING_TARGET else "ABOVE TARGET"
        print(
            f"scaling {kind}: cost per pair {sizes[0]:,} -> {sizes[1]:,} specialists: "
            f"{1000 / small.per_second:.3f} ms -> {1000 / large.per_second:.3f} ms "
            f"= {ratio:.2f}x (target <= {SCALING_TARGET}x: {verdict})"
        )
        small_cpu, large_cpu = _cpu_per_call(small), _cpu_per_call(large)
        cpu_ratio = large_cpu / small_cpu if small_cpu else float("inf")
        verdict = "OK" if cpu_ratio <= SCALING_TARGET else "ABOVE TARGET"
        print(
            f"scaling {kind}: server CPU per pair {sizes[0]:,} -> {sizes[1]:,} specialists: "
            f"{small_cpu:.3f} ms -> {large_cpu:.3f} ms = {cpu_ratio:.2f}x "
            f"(target <= {SCALING_TARGET}x: {verdict})"
        )
    print(
        f"gRPC ceiling on this machine: {baseline.per_second:.0f} bare calls/s, so at most "
        f"{baseline.per_second / 2:.0f} two-call pairs/s with no work at all"
    )
    for label, marker in (("reserving decisions", "resolve, reserving"), ("pairs", "pairs")):
        best = max((r.per_second for r in rows if marker in r.name), default=0.0)
        print(
            f"target >= 1,000 decisions/s, {label}: best {best:.0f}/s -> {'OK' if best >= 1000 else 'BELOW'}"
        )


def technical_request(call_id: str, dry_run: bool, rng: random.Random, customers: int) -> Any:
    """An advanced technical escalation: nine callers in ten are known customers, the rest strangers."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    caller = (
        customer_number(rng.randrange(customers))
        if rng.random() < 0.9
        else f"+1212555{rng.randrange(10_000):04d}"
    )
    return pb.ResolveEscalationRequest(
        call_id=call_id,
        tool_call_id="t",
        caller_number=caller,
        issue_category="technical",
        complexity=pb.COMPLEXITY_ADVANCED,
        customer_context="Webhook integration fails after the migration",
        escalation_reason="needs a specialist",
        dry_run=dry_run,
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma list: sqlite,postgresql")
    parser.add_argument("--specialists", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000, help="requests per row (at most)")
    parser.add_argument("--seconds", type=float, default=12.0, help="time cap per row")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--scaling-sizes", default="100,10000")
    parser.add_argument("--scaling-databases", default="sqlite,postgresql")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-dry-run", action="store_true")
    parser.add_argument("--skip-busy", action="store_true", help="skip the all-busy (callback) row")
    parser.add_argument(
        "--history",
        type=int,
        default=100_000,
        help="released calls seeded over the last hour (what wait estimates read)",
    )
    parser.add_argument(
        "--skip-floor",
        action="store_true",
        help="skip the comparison with the durable floor (benchmarks.floor)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of the floor comparison; medians (use 3)")
    add_results_option(parser)
    args = parser.parse_args(argv)
    args.repeat = max(1, args.repeat)

    print(
        f"escalade routing benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"grpcio {grpc.__version__}, concurrency {args.concurrency}, {args.requests} requests/row",
        flush=True,
    )
    baseline = await run_baseline(args)
    rows: list[Row] = []
    modes = (
        ["resolve", "pair"] + ([] if args.skip_dry_run else ["dry"]) + ([] if args.skip_busy else ["busy"])
    )
    for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
        size = f"{args.specialists:,} specialists, {args.customers:,} customers"
        rows += await run_routing(
            args, kind, specialists=args.specialists, customers=args.customers, modes=modes, label=size
        )
    scaling: list[tuple[str, Row, Row, tuple[int, int]]] = []
    if not args.skip_scaling:
        small_n, large_n = (int(x) for x in args.scaling_sizes.split(","))
        for kind in [k.strip() for k in args.scaling_databases.split(",") if k.strip()]:
            pair = []
            for n in (small_n, large_n):
                (row,) = await run_routing(
                    args, kind, specialists=n, customers=10_000, modes=["pair"], label=f"{n:,} specialists"
                )
                rows.append(row)
                pair.append(row)
            scaling.append((kind, pair[0], pair[1], (small_n, large_n)))
    floor_runs: dict[str, dict[str, list[Figures]]] = {}
    if not args.skip_floor:
        for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
            floor_runs[kind] = await run_floor_comparison(args, kind)
    print()
    print_table(rows, baseline, scaling)
    found = result(args, rows, baseline, scaling)
    met = True
    if floor_runs:
        figures = {
            db: {name: median_figures(rs) for name, rs in pair.items()} for db, pair in floor_runs.items()
        }
        ratios, met = print_comparison(
            figures,
            high=args.concurrency,
            repeat=args.repeat,
            what="Routing benchmark (gRPC straight to routing)",
        )
        for database, medians in figures.items():
            add_comparison(
                found, database, medians, ratios[database], high=args.concurrency, repeat=args.repeat
            )
    write(found, args.results_dir)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
