"""Edge benchmark: signed `transfer-destination-request` webhooks end to end, Escalade against the durable
floor (`benchmarks.floor`), both measured in this one run.

    .venv/bin/python -m benchmarks.edge --duration 2 --results-dir ''      # quick run, SQLite
    .venv/bin/python -m benchmarks.edge --database both --repeat 3         # the recorded figures
    .venv/bin/python -m benchmarks.edge --database postgresql --profile    # + where routing's time goes

Two systems on the same data (1,000 specialists of capacity 1,000 in the technical team, 100,000 customers,
fresh databases of the kind chosen; PostgreSQL on 127.0.0.1:5432):
- durable floor: a minimal FastAPI endpoint (uvicorn) doing the same HMAC check over the raw body and ONE
  grpc.aio call to `benchmarks.floor`'s servicer, which reads the caller's tier, picks the least busy
  qualified specialist, reserves it with one conditional UPDATE ... RETURNING, stores the decision row
  and commits (sqlite3 inline in WAL mode; asyncpg pool of 8 with the decision as one CTE);
- Escalade: `escalade edge serve` (auth, tolerant parsing, translation, outbox, logging at info) -> gRPC ->
  a real `RoutingServer` (TechCorp policy) that reserves a specialist for every call -> Vapi JSON.

Every request is a new call id from a caller drawn from the customers (standard and premium tiers, which
the policy sends to the technical team), so each one is the "specialist reserved" path. Each call ends
`CALL_SECONDS` after its answer with ReleaseAssignment straight to the system's routing server, sent by a
releaser process of the driver's (not timed, but the server does that work during the row, as it would
when real calls end). The routing servers (floor and Escalade) run in this process, each edge in its own;
the load generator is a separate process (this file with `--role driver`: asyncio over raw keep-alive
HTTP/1.1 connections, `KeepAlive`, signing each body with `webhook_edge.auth.sign_hmac`).

Rows run at concurrency 1 and 32, floor and Escalade interleaved, `--repeat` times (the recorded results
use 3: medians). Printed: every run, then the comparison table (req/s and p99 at c=32, c=1 p50, and the CPU
time of the routing process, this one, per decision at c=32, the releases of those calls included; the
edge processes' CPU per decision is printed below it) with Escalade's ratios to the floor and the targets
with pass/miss (SQLite: throughput >= 0.6x the floor's, p99 <= 1.5x, c=1 p50 <= 2x; PostgreSQL: >= 0.7x,
<= 1.5x, <= 2x). Each database's result goes to its own file in benchmarks/results (`benchmarks.results`;
`--results-dir ''` for none); `--profile [SECONDS]` adds one row per system (10 s) under pyinstrument
and writes benchmarks/profiles/edge-<system>-<database>.txt (regenerate them alone with
`--duration 1 --concurrency 32 --results-dir '' --profile`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request  # module level: FastAPI resolves the floor endpoint's annotations here

from benchmarks.results import Result, add_results_option, write

REPO = Path(__file__).resolve().parents[1]
FIXTURE = (
    REPO / "tests" / "edge" / "fixtures" / "transfer-destination-request.enterprise-technical-advanced.json"
)
SECRET = "benchmark-secret"
CALL_SECONDS = 1.0
"""How long each benchmark call lasts: its reservation is released this long after the answer, so the
releases cost routing the same work as in a live system without each one landing just ahead of the next
timed request (which a fire-and-forget release right after the answer did at concurrency 1)."""
CALL_PLACEHOLDER = "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"
CALLER_PLACEHOLDER = b"+1234567890"  # the fixture's caller (message.customer and call.customer)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# ------------------------------------------------------------------------------------------------------
# role: driver (load generator, separate process)
# ------------------------------------------------------------------------------------------------------
class KeepAlive:
    """One keep-alive HTTP/1.1 connection that POSTs and reads a Content-Length response with as little
    client work as possible (a few µs, where httpx spends about a millisecond), so the latency measured is
    the server's, as with `wrk`; every row of a run uses it."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"host: {self.host}:{self.port}",
            f"content-length: {len(body)}",
        ]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            status_line, *fields = head[:-4].split(b"\r\n")
            length, close = 0, False
            for field in fields:
                name, _, value = field.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    raise ValueError("the driver reads Content-Length responses only")
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            content = await reader.readexactly(length)
        except BaseException:
            self.close()
            raise
        if close:
            self.close()
        return int(status_line.split()[1]), content

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def drive(
    url: str, concurrency: int, duration: float, marker: str, tag: str, release_to: str, callers: int = 0
) -> dict[str, Any]:
    """POST signed webhooks for `duration` seconds with `concurrency` in flight, each a new call id and,
    with `callers`, a caller drawn from the first `callers` benchmark customers."""
    import random

    from benchmarks.floor import customer_number
    from webhook_edge.auth import sign_hmac

    # Releases go through a releaser process of their own: their gRPC client work in this process would sit
    # between a response's arrival and its timestamp (measured at concurrency 1: ~0.2 ms on the p50).
    releaser = (
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.edge",
            "--role",
            "releaser",
            "--release-to",
            release_to,
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
        )
        if release_to
        else None
    )

    def release(call_id: str) -> None:
        """Hand the call to the releaser, which ends it CALL_SECONDS later."""
        if releaser is not None and releaser.stdin is not None:
            releaser.stdin.write(call_id.encode() + b"\n")

    template = FIXTURE.read_bytes()
    rng = random.Random(tag)
    target = urlsplit(url)
    connections = [
        KeepAlive(target.hostname or "127.0.0.1", target.port or 80, target.path) for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors = 0
    wrong = 0
    sent = 0

    try:

        async def one(call_id: str, record: bool, connection: KeepAlive) -> None:
            nonlocal errors, wrong, sent
            body = template.replace(CALL_PLACEHOLDER.encode(), call_id.encode())
            if callers:
                body = body.replace(CALLER_PLACEHOLDER, customer_number(rng.randrange(callers)).encode())
            sent += 1
            headers = {"content-type": "application/json", **sign_hmac(SECRET, body, int(time.time() * 1000))}
            started = time.perf_counter()
            try:
                status, content = await connection.post(body, headers)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                errors += 1
                return
            elapsed = time.perf_counter() - started
            if status != 200:
                errors += 1
                if errors == 1:
                    print(f"first error: {status} {content[:200]!r}", file=sys.stderr)
            elif marker.encode() not in content:
                wrong += 1
            release(call_id)
            if record:
                latencies.append(elapsed)

        for i in range(20):  # warm-up: caches
            await one(f"{tag}-warm-{i}", False, connections[0])
        for w, connection in enumerate(connections):  # every connection open before the clock starts
            await one(f"{tag}-warm-c{w}", False, connection)
        stop = time.perf_counter() + duration

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() < stop:
                await one(f"{tag}-{w}-{n}", True, connections[w])
                n += 1

        begun = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        elapsed = time.perf_counter() - begun
    finally:
        for connection in connections:
            connection.close()
        if releaser is not None and releaser.stdin is not None:
            releaser.stdin.close()  # the releaser ends the last calls, then exits
            await releaser.wait()
    return {
        "requests": len(latencies),
        "sent": sent,
        "errors": errors,
        "wrong": wrong,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


async def release_calls(release_to: str) -> None:
    """Role `releaser`: read call ids from stdin, one a line, and end each call CALL_SECONDS after it was
    read (ReleaseAssignment straight to routing); at end of input, finish the pending ones and return."""
    import grpc

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pending: set[asyncio.Future[Any]] = set()
    async with grpc.aio.insecure_channel(release_to) as channel:
        stub = pb_grpc.RoutingServiceStub(channel)

        failed: list[str] = []

        def done(task: asyncio.Future[Any]) -> None:
            pending.discard(task)
            if not task.cancelled() and task.exception() is not None:
                failed.append(repr(task.exception()))  # retrieved: counted, not logged at exit

        def send(call_id: str) -> None:
            request = pb.ReleaseAssignmentRequest(call_id=call_id, reason="benchmark")
            task = asyncio.ensure_future(stub.ReleaseAssignment(request, timeout=30))
            pending.add(task)
            task.add_done_callback(done)

        last = loop.time()
        while line := await reader.readline():
            last = loop.time()
            loop.call_at(last + CALL_SECONDS, send, line.decode().strip())
        await asyncio.sleep(max(0.0, last + CALL_SECONDS - loop.time()) + 0.1)
        await asyncio.gather(*pending, return_exceptions=True)
    if failed:
        print(f"releaser: {len(failed)} releases failed, first: {failed[0]}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------------
# role: floor-app (minimal FastAPI endpoint in front of the durable floor, separate process)
# ------------------------------------------------------------------------------------------------------
def floor_app(target: str) -> Any:
    """The floor's edge: the same HMAC check over the raw body, the few fields the floor needs read straight
    from Vapi's JSON, and ONE grpc.aio call to the durable floor's ResolveEscalation."""
    import hashlib
    import hmac
    from contextlib import asynccontextmanager

    import grpc
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc

    state: dict[str, Any] = {}
    complexities = {
        "basic": pb.COMPLEXITY_BASIC,
        "intermediate": pb.COMPLEXITY_INTERMEDIATE,
        "advanced": pb.COMPLEXITY_ADVANCED,
        "critical": pb.COMPLEXITY_CRITICAL,
    }

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        channel = grpc.aio.insecure_channel(target)
        state["stub"] = pb_grpc.RoutingServiceStub(channel)
        yield
        await channel.close()

    app = FastAPI(lifespan=lifespan)
    key = SECRET.encode()

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        raw = await request.body()
        stamp = request.headers.get("x-timestamp", "")
        expected = hmac.new(key, stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("x-signature", "")):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        message = json.loads(raw)["message"]
        tool_call = next(
            call
            for entry in reversed(message["artifact"]["messages"])
            if entry.get("role") == "tool_calls"
            for call in entry["toolCalls"]
        )
        arguments = json.loads(tool_call["function"]["arguments"])
        reply = await state["stub"].ResolveEscalation(
            pb.ResolveEscalationRequest(
                call_id=message["call"]["id"],
                tool_call_id=tool_call["id"],
                caller_number=message["customer"]["number"],
                issue_category=arguments["issue_category"],
                complexity=complexities[arguments["complexity_level"]],
            ),
            timeout=1.5,
        )
        decision = reply.decision
        return JSONResponse(
            {
                "destination": {
                    "type": "number",
                    "number": decision.destination.number,
                    "message": decision.caller_message,
                }
            }
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_floor(port: int, target: str) -> None:
    import uvicorn

    uvicorn.run(floor_app(target), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------------------------
# orchestration (this process: routing + the floor servicer; child processes for apps and driver)
# ------------------------------------------------------------------------------------------------------
SPECIALISTS = 1000
SPECIALIST_CAPACITY = 1000
CUSTOMERS = 100_000
CUSTOMER_TIERS = ("standard", "premium")
"""Tiers the TechCorp policy sends to the technical team for a technical, advanced call (its enterprise
rule would send enterprise callers to the enterprise team)."""
TEAM = "technical"


async def start_routing(database_url: str) -> tuple[Any, int]:
    """A real `RoutingServer` in this process (TechCorp policy) over a store seeded as the floor is."""
    from benchmarks.routing import seed
    from escalade_platform.heap import freeze_startup_heap
    from routing_service.grpc.server import RoutingServer
    from routing_service.settings import RoutingSettings

    await seed(
        database_url,
        specialists=SPECIALISTS,
        customers=CUSTOMERS,
        capacity=SPECIALIST_CAPACITY,
        teams=(TEAM,),
        tiers=CUSTOMER_TIERS,
    )
    settings = RoutingSettings(
        database_url=database_url,
        policy=REPO / "examples" / "techcorp.yaml",
        routing_address="127.0.0.1:0",
        log_level="warning",
    )
    server = RoutingServer(settings, watch_policy=False, run_sweeps=False)
    port = await server.start()
    freeze_startup_heap()  # as `escalade routing serve` does once started
    return server, port


async def start_durable_floor(database_url: str) -> Any:
    from benchmarks.floor import seed_floor, start_floor

    await seed_floor(
        database_url,
        specialists=SPECIALISTS,
        customers=CUSTOMERS,
        capacity=SPECIALIST_CAPACITY,
        teams=(TEAM,),
        tiers=CUSTOMER_TIERS,
    )
    return await start_floor(database_url)


async def wait_healthy(url: str, process: asyncio.subprocess.Process) -> None:
    import httpx

    async with httpx.AsyncClient() as client:
        for _ in range(600):
            if process.returncode is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                if (await client.get(url, timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} never became healthy")


async def run_driver(
    url: str, concurrency: int, duration: float, marker: str, tag: str, release_to: str = "", callers: int = 0
) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.edge",
        "--role",
        "driver",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--marker",
        marker,
        "--tag",
        tag,
        "--release-to",
        release_to,
        "--callers",
        str(callers),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"driver failed ({process.returncode})")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=15)
        except TimeoutError:
            process.kill()
            await process.wait()


async def start_edge(
    routing_address: str, database_url: str, cwd: str, env_base: dict[str, str]
) -> tuple[Any, int]:
    """`escalade edge serve` in a child process (logging at its default info level, to /dev/null)."""
    port = free_port()
    env = env_base | {
        "ESCALADE_VAPI_SECRET": SECRET,
        "ESCALADE_ROUTING_ADDRESS": routing_address,
        "ESCALADE_DATABASE_URL": database_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "escalade_cli.main",
        "edge",
        "serve",
        "--port",
        str(port),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
    return process, port


async def start_floor_edge(floor_port: int, env_base: dict[str, str]) -> tuple[Any, int]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.edge",
        "--role",
        "floor-app",
        "--port",
        str(port),
        "--target",
        f"127.0.0.1:{floor_port}",
        cwd=REPO,
        env=env_base,
    )
    await wait_healthy(f"http://127.0.0.1:{port}/healthz", process)
    return process, port


MARKER = '"number":"+1555020'
"""Every answer must carry a reserved specialist's line (`benchmarks.floor.specialist_number`)."""


@dataclass
class System:
    """One system under test on one database: its edge process, its webhook URL and where calls end."""

    name: str
    url: str
    release_to: str
    edge: asyncio.subprocess.Process


async def measure(system: System, c: int, duration: float, tag: str) -> dict[str, Any]:
    """One driver run against `system` at concurrency `c`, with the CPU this process (where the routing
    servers run) and the edge process spent on it, per decision sent (warm-ups included: they ran too)."""
    from benchmarks.compare import self_cpu_seconds
    from benchmarks.routing import process_cpu_seconds

    cpu, edge_cpu = self_cpu_seconds(), process_cpu_seconds(system.edge.pid)
    result = await run_driver(system.url, c, duration, MARKER, tag, system.release_to, CUSTOMERS)
    cpu, edge_cpu = self_cpu_seconds() - cpu, process_cpu_seconds(system.edge.pid) - edge_cpu
    sent = max(1, result["sent"])
    result["cpu_ms"] = 1000 * cpu / sent
    result["edge_cpu_ms"] = 1000 * edge_cpu / sent
    return result


async def orchestrate(
    duration: float,
    levels: list[int],
    databases: list[str],
    repeat: int,
    profile: float,
    results_dir: str,
) -> int:
    from benchmarks.compare import COLUMNS, Figures, add_comparison, median_figures, print_comparison
    from escalade_platform.logs import configure_logging

    configure_logging(json=False, level="warning")  # routing runs in this process: no per-decision lines
    high = max(levels)
    runs: dict[str, dict[str, list[Figures]]] = {}
    loads: dict[str, tuple[float, float, float]] = {}
    ended: dict[str, datetime] = {}
    raw: list[dict[str, Any]] = []
    failures = 0
    for database in databases:
        loads[database] = os.getloadavg()
        per_run = await _database_rows(database, duration, levels, repeat, profile)
        ended[database] = datetime.now(UTC)
        runs[database] = {"floor": [], "escalade": []}
        for rep in range(repeat):
            for name in ("floor", "escalade"):
                by_level = {c: per_run[(name, c, rep)] for c in levels}
                raw += [{"database": database, "system": name, "repeat": rep, **by_level[c]} for c in levels]
                failures += sum(r["errors"] + r["wrong"] for r in by_level.values())
                runs[database][name].append(
                    Figures(
                        rps=by_level[high]["rps"],
                        p99_ms=by_level[high]["p99_ms"],
                        p50_c1_ms=by_level[1]["p50_ms"] if 1 in by_level else float("nan"),
                        cpu_ms=by_level[high]["cpu_ms"],
                        edge_cpu_ms=by_level[high]["edge_cpu_ms"],
                    )
                )
    _print_runs(raw)
    figures = {db: {name: median_figures(rs) for name, rs in pair.items()} for db, pair in runs.items()}
    ratios, met = print_comparison(figures, high=high, repeat=repeat, what="Edge benchmark")
    if failures:
        print(f"\n{failures} requests failed or were not answered with a reserved specialist")
    parameters = {
        "duration": duration,
        "concurrency": levels,
        "repeat": repeat,
        "specialists": SPECIALISTS,
        "capacity": SPECIALIST_CAPACITY,
        "customers": CUSTOMERS,
        "team": TEAM,
    }
    for database, medians in figures.items():
        found = Result(
            "edge",
            {**parameters, "database": database},
            COLUMNS,
            variant=database,
            packages=(
                "fastapi",
                "starlette",
                "uvicorn",
                "grpcio",
                "protobuf",
                "sqlalchemy",
                "asyncpg",
                "uvloop",
            ),
            started_load=loads[database],
        )
        add_comparison(
            found, database, medians, ratios[database], high=high, repeat=repeat, runs=runs[database]
        )
        write(found, results_dir, now=ended[database])  # one file per database, named by when it ended
    return 0 if met and not failures else 1


async def _database_rows(
    database: str, duration: float, levels: list[int], repeat: int, profile: float
) -> dict[tuple[str, int, int], dict[str, Any]]:
    """Both systems up side by side on fresh databases of one kind; the rows interleave (floor, Escalade
    at each level, `repeat` times) so a change in the machine's load lands on both."""
    from benchmarks.routing import Database

    results: dict[tuple[str, int, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="escalade-bench-") as tmp:
        env_base = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
        env_base["PYTHONPATH"] = str(REPO)
        async with AsyncExitStack() as stack:
            floor_url = await stack.enter_async_context(Database(database, Path(tmp)))
            escalade_url = await stack.enter_async_context(Database(database, Path(tmp)))
            print(f"{database}: seeding {SPECIALISTS:,} specialists and {CUSTOMERS:,} customers", flush=True)
            floor = await start_durable_floor(floor_url)
            stack.push_async_callback(floor.stop, 1.0)
            routing, routing_port = await start_routing(escalade_url)
            stack.push_async_callback(routing.stop, 1.0)
            floor_edge, floor_edge_port = await start_floor_edge(floor.port, env_base)
            stack.push_async_callback(stop, floor_edge)
            edge, edge_port = await start_edge(f"127.0.0.1:{routing_port}", escalade_url, tmp, env_base)
            stack.push_async_callback(stop, edge)
            systems = [
                System(
                    "floor",
                    f"http://127.0.0.1:{floor_edge_port}/webhook",
                    f"127.0.0.1:{floor.port}",
                    floor_edge,
                ),
                System(
                    "escalade",
                    f"http://127.0.0.1:{edge_port}/webhook/vapi",
                    f"127.0.0.1:{routing_port}",
                    edge,
                ),
            ]
            for rep in range(repeat):
                for c in levels:
                    for system in systems:
                        tag = f"{system.name}-{database}-c{c}-r{rep}"
                        results[(system.name, c, rep)] = await measure(system, c, duration, tag)
                        print(f"  done: {tag}", flush=True)
            if profile:
                for system in systems:
                    await _profile(system, database, max(levels), profile)
    return results


async def _profile(system: System, database: str, c: int, seconds: float) -> None:
    """One more row at concurrency `c` with this process (the routing server) under pyinstrument; the text
    profile goes to benchmarks/profiles/edge-<system>-<database>.txt, the call tree and then the functions
    by their own time (its figures are not reported: the profiler slows the server down)."""
    from pyinstrument import Profiler

    from benchmarks.compare import PROFILES

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    result = await run_driver(
        system.url, c, seconds, MARKER, f"profile-{system.name}-{database}", system.release_to, CUSTOMERS
    )
    profiler.stop()
    PROFILES.mkdir(parents=True, exist_ok=True)
    path = PROFILES / f"edge-{system.name}-{database}.txt"
    header = (
        f"# pyinstrument profile of the routing process ({system.name}, {database}) while the edge\n"
        f"# benchmark's driver sent {result['sent']} requests at concurrency {c} for {seconds:g} s.\n"
        f"# Wall-clock samples of the event loop's thread: time in uvloop and grpc's Cython code, and\n"
        f"# idle waits, count as [self] of Runner.run; 'CPU time' is the process's. Figures under the\n"
        f"# profiler are not the benchmark's. By `python -m benchmarks.edge --profile`.\n\n"
    )
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    flat = profiler.output_text(unicode=False, color=False, flat=True, flat_time="self").splitlines()
    path.write_text(
        header + tree + "\n# Functions by own (self) time, top 40\n\n" + "\n".join(flat[:48]) + "\n"
    )
    print(f"  profile written to {path.relative_to(REPO)}", flush=True)


def _print_runs(raw: list[dict[str, Any]]) -> None:
    print(
        f"\n{'database':<11}{'system':<10}{'rep':>4}{'conc':>5}{'requests':>10}{'errors':>8}{'req/s':>10}"
        f"{'p50 ms':>9}{'p99 ms':>9}{'cpu ms':>8}{'edge cpu':>9}"
    )
    for r in raw:
        print(
            f"{r['database']:<11}{r['system']:<10}{r['repeat']:>4}{r.get('concurrency', 0):>5}"
            f"{r['requests']:>10}{r['errors'] + r['wrong']:>8}{r['rps']:>10.1f}{r['p50_ms']:>9.2f}"
            f"{r['p99_ms']:>9.2f}{r['cpu_ms']:>8.3f}{r['edge_cpu_ms']:>9.3f}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row (default 10)")
    parser.add_argument("--concurrency", type=int, nargs="*", default=None, help="levels (default 1 32)")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql", "both"],
        default="sqlite",
        help="store of both systems (postgresql: 127.0.0.1:5432; both: one after the other)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of every row; medians reported (use 3)")
    parser.add_argument(
        "--profile",
        nargs="?",
        type=float,
        const=10.0,
        default=0.0,
        metavar="SECONDS",
        help="one more row per system (default 10 s) under pyinstrument, written to benchmarks/profiles",
    )
    add_results_option(parser)
    parser.add_argument(
        "--role", choices=["orchestrate", "driver", "releaser", "floor-app"], default="orchestrate"
    )
    parser.add_argument("--url", default="")
    parser.add_argument("--marker", default="")
    parser.add_argument("--tag", default="run")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--target", default="")
    parser.add_argument("--release-to", default="", help="routing address the driver releases calls on")
    parser.add_argument(
        "--callers", type=int, default=0, help="driver: callers drawn from this many customers"
    )
    args = parser.parse_args(argv)
    if args.role == "driver":
        level = (args.concurrency or [1])[0]
        result = asyncio.run(
            drive(args.url, level, args.duration, args.marker, args.tag, args.release_to, args.callers)
        )
        print(json.dumps({"concurrency": level, **result}))
        return 0
    if args.role == "releaser":
        asyncio.run(release_calls(args.release_to))
        return 0
    if args.role == "floor-app":
        serve_floor(args.port, args.target)
        return 0
    from routing_service.grpc.server import run_event_loop

    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    # The routing servers run in this process: on uvloop when installed, as `escalade routing serve` does.
    return run_event_loop(
        orchestrate(
            args.duration,
            args.concurrency or [1, 32],
            databases,
            max(1, args.repeat),
            args.profile,
            args.results_dir,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
