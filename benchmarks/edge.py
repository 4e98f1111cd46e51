"""Edge benchmark: signed `transfer-destination-request` webhooks end to end, against a bare floor.

    .venv/bin/python -m benchmarks.edge                 # 10 s per row (about 1 minute)
    .venv/bin/python -m benchmarks.edge --duration 2    # quick run
    .venv/bin/python -m benchmarks.edge --database postgresql   # store and outbox on 127.0.0.1:5432

Rows (all in this one run, so the ratios compare like with like):
- floor: a minimal FastAPI endpoint (uvicorn, same server options) doing the same HMAC check over the raw
  body and ONE grpc.aio unary call to a trivial servicer that returns a constant decision;
- edge: `escalade edge serve` (the real app: auth, tolerant parsing, translation, outbox, logging at info)
  -> gRPC -> a real `RoutingServer` (SQLite store, TechCorp policy, demo agents and customers) that
  reserves a specialist for every call -> Vapi JSON. Every request is a new call id from the enterprise
  customer, so each one is the "specialist reserved" path. Each call ends one second after its answer
  (`CALL_SECONDS`) with ReleaseAssignment straight to routing, sent by a releaser process of the driver's
  (not timed, but routing does that work during the row, as it would for Vapi's `status-update` when a
  real call ends), and the two
  enterprise specialists get capacity 1000 as headroom.

Each row runs at concurrency 1 and 32. The load generator is a separate process (this file with
`--role driver`: asyncio over raw keep-alive HTTP/1.1 connections, `KeepAlive`; it signs each body with
`webhook_edge.auth.sign_hmac`); the servers run in their own processes (routing and the trivial servicer
in this one). Printed: req/s, p50, p99 and the ratios
against the targets (>= 50 % of the floor's throughput, p99 <= 2x the floor's, p50 <= 5 ms at concurrency 1).
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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request  # module level: FastAPI resolves the floor endpoint's annotations here

from benchmarks.results import Column, Result, add_results_option, write

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
    url: str, concurrency: int, duration: float, marker: str, tag: str, release_to: str
) -> dict[str, Any]:
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
    target = urlsplit(url)
    connections = [
        KeepAlive(target.hostname or "127.0.0.1", target.port or 80, target.path) for _ in range(concurrency)
    ]
    latencies: list[float] = []
    errors = 0
    wrong = 0

    try:

        async def one(call_id: str, record: bool, connection: KeepAlive) -> None:
            nonlocal errors, wrong
            body = template.replace(CALL_PLACEHOLDER.encode(), call_id.encode())
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

        def send(call_id: str) -> None:
            request = pb.ReleaseAssignmentRequest(call_id=call_id, reason="benchmark")
            task = asyncio.ensure_future(stub.ReleaseAssignment(request, timeout=30))
            pending.add(task)
            task.add_done_callback(pending.discard)

        last = loop.time()
        while line := await reader.readline():
            last = loop.time()
            loop.call_at(last + CALL_SECONDS, send, line.decode().strip())
        await asyncio.sleep(max(0.0, last + CALL_SECONDS - loop.time()) + 0.1)
        await asyncio.gather(*pending, return_exceptions=True)


# ------------------------------------------------------------------------------------------------------
# role: floor-app (minimal FastAPI endpoint, separate process)
# ------------------------------------------------------------------------------------------------------
def floor_app(target: str) -> Any:
    import hashlib
    import hmac
    from contextlib import asynccontextmanager

    import grpc
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc

    state: dict[str, Any] = {}

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
        call_id = json.loads(raw)["message"]["call"]["id"]
        reply = await state["stub"].ResolveEscalation(
            pb.ResolveEscalationRequest(call_id=call_id), timeout=1.5
        )
        return JSONResponse({"destination": {"type": "number", "number": reply.decision.destination.number}})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve_floor(port: int, target: str) -> None:
    import uvicorn

    uvicorn.run(floor_app(target), host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ------------------------------------------------------------------------------------------------------
# orchestration (this process: routing + trivial servicer, child processes for apps and driver)
# ------------------------------------------------------------------------------------------------------
async def start_trivial_servicer() -> tuple[Any, int]:
    import grpc

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc

    decision = pb.Decision(
        decision_id="d-1",
        kind=pb.DECISION_KIND_TRANSFER_AGENT,
        team_id="enterprise",
        team_display_name="Enterprise Support",
        destination=pb.Destination(number="+15550100101"),
        caller_message="Connecting you to our enterprise support specialist.",
        transfer_mode=pb.TRANSFER_MODE_WARM_TRANSFER_SAY_SUMMARY,
        summary_messages=[
            pb.SummaryMessage(
                role="system", content="Provide a summary for the enterprise support specialist."
            ),
            pb.SummaryMessage(role="user", content="Here is the transcript:\n\n{{transcript}}\n\n"),
        ],
        effective_complexity=pb.COMPLEXITY_ADVANCED,
        tier="enterprise",
        issue_category="technical",
        reason="rule enterprise-tier: team enterprise, specialist ent-1 reserved",
    )
    reply = pb.ResolveEscalationResponse(decision=decision)

    class Trivial(pb_grpc.RoutingServiceServicer):
        async def ResolveEscalation(self, request: Any, context: Any) -> Any:
            return reply

    server = grpc.aio.server()
    pb_grpc.add_RoutingServiceServicer_to_server(Trivial(), server)  # type: ignore[abstract]  # only the RPCs used; the rest answer UNIMPLEMENTED
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def start_routing(database_url: str) -> tuple[Any, int]:
    import grpc

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
    from escalade_platform.heap import freeze_startup_heap
    from routing_service.grpc import mapping
    from routing_service.grpc.server import RoutingServer
    from routing_service.policy.loader import load_agents, load_customers
    from routing_service.settings import RoutingSettings

    settings = RoutingSettings(
        database_url=database_url,
        policy=REPO / "examples" / "techcorp.yaml",
        routing_address="127.0.0.1:0",
        log_level="warning",
    )
    server = RoutingServer(settings, watch_policy=False, run_sweeps=False)
    port = await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.RoutingServiceStub(channel)
        for agent in load_agents(REPO / "examples" / "techcorp-agents.yaml"):
            message = mapping.agent_to_pb(agent.to_domain())
            if "enterprise" in message.team_ids:
                message.capacity = 1000  # the service's maximum; releases keep slots free
            await stub.UpsertAgent(pb.UpsertAgentRequest(agent=message))
        for customer in load_customers(REPO / "examples" / "techcorp-customers.csv"):
            await stub.UpsertCustomer(
                pb.UpsertCustomerRequest(customer=mapping.customer_to_pb(customer.to_domain()))
            )
    freeze_startup_heap()  # as `escalade routing serve` does once started
    return server, port


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
    url: str, concurrency: int, duration: float, marker: str, tag: str, release_to: str = ""
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


MARKER = '"number":"+155501001'


async def orchestrate(
    duration: float, levels: list[int], database: str = "sqlite", results_dir: str | None = None
) -> int:
    from benchmarks.routing import Database
    from escalade_platform.logs import configure_logging

    configure_logging(json=False, level="warning")  # routing runs in this process: no per-decision lines
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="escalade-bench-") as tmp:
        env_base = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
        env_base["PYTHONPATH"] = str(REPO)
        store = Database(database, Path(tmp))
        database_url = await store.__aenter__()
        try:
            await _rows(results, duration, levels, database_url, tmp, env_base)
        finally:
            await store.__aexit__()
    code = _report(results, duration, levels, "PostgreSQL" if database == "postgresql" else "SQLite")
    parameters = {"duration": duration, "concurrency": levels, "database": database}
    write(result(results, parameters, levels, database), results_dir)
    return code


async def _rows(
    results: dict[tuple[str, int], dict[str, Any]],
    duration: float,
    levels: list[int],
    database_url: str,
    tmp: str,
    env_base: dict[str, str],
) -> None:
    # --- floor, and the edge against the same trivial servicer (the edge's own cost) ---------------
    trivial, trivial_port = await start_trivial_servicer()
    floor_port = free_port()
    floor = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.edge",
        "--role",
        "floor-app",
        "--port",
        str(floor_port),
        "--target",
        f"127.0.0.1:{trivial_port}",
        cwd=REPO,
        env=env_base,
    )
    try:
        await wait_healthy(f"http://127.0.0.1:{floor_port}/healthz", floor)
        for c in levels:
            url = f"http://127.0.0.1:{floor_port}/webhook"
            results[("floor", c)] = await run_driver(url, c, duration, MARKER, f"floor{c}")
    finally:
        await stop(floor)
    try:
        edge, edge_port = await start_edge(f"127.0.0.1:{trivial_port}", database_url, tmp, env_base)
        try:
            for c in levels:
                url = f"http://127.0.0.1:{edge_port}/webhook/vapi"
                results[("edge-triv", c)] = await run_driver(url, c, duration, MARKER, f"triv{c}")
        finally:
            await stop(edge)
    finally:
        await trivial.stop(None)

    # --- edge + real routing (store, reservation) ---------------------------------------------------
    routing, routing_port = await start_routing(database_url)
    try:
        edge, edge_port = await start_edge(f"127.0.0.1:{routing_port}", database_url, tmp, env_base)
        try:
            for c in levels:
                results[("edge", c)] = await run_driver(
                    f"http://127.0.0.1:{edge_port}/webhook/vapi",
                    c,
                    duration,
                    MARKER,
                    f"edge{c}",
                    release_to=f"127.0.0.1:{routing_port}",
                )
        finally:
            await stop(edge)
    finally:
        await routing.stop(1.0)


def result(
    results: dict[tuple[str, int], dict[str, Any]],
    parameters: dict[str, Any],
    levels: list[int],
    database: str,
) -> Result:
    """What `_report` prints, as a result file (benchmarks.results); the store is the variant."""
    columns = [
        Column("concurrency", "concurrency"),
        Column("requests", "requests", ","),
        Column("errors", "errors", ","),
        Column("per_second", "req/s", ",.0f"),
        Column("p50_ms", "p50 ms", ".2f"),
        Column("p99_ms", "p99 ms", ".2f"),
    ]
    found = Result(
        "edge",
        parameters,
        columns,
        variant=database,
        packages=("fastapi", "starlette", "uvicorn", "grpcio", "protobuf", "sqlalchemy"),
    )
    order = {"floor": 0, "edge-triv": 1, "edge": 2}
    for (name, c), r in sorted(results.items(), key=lambda kv: (kv[0][1], order[kv[0][0]])):
        found.add_row(
            name,
            concurrency=c,
            requests=r["requests"],
            errors=r["errors"] + r["wrong"],
            per_second=round(r["rps"], 1),
            p50_ms=round(r["p50_ms"], 3),
            p99_ms=round(r["p99_ms"], 3),
        )
    for row in ("edge", "edge-triv"):
        for c in levels:
            f, e = results[("floor", c)], results[(row, c)]
            throughput, tail = e["rps"] / f["rps"], e["p99_ms"] / f["p99_ms"]
            headline = row == "edge"  # edge-triv is the edge's own cost: a diagnosis, not the target
            found.check(
                f"{row} c={c} throughput / floor",
                round(throughput, 3),
                "x",
                ">= 0.50x",
                throughput >= 0.5,
                headline=headline,
            )
            found.check(
                f"{row} c={c} p99 / floor", round(tail, 3), "x", "<= 2.00x", tail <= 2.0, headline=headline
            )
        if 1 in levels:
            p50 = results[(row, 1)]["p50_ms"]
            found.check(f"{row} c=1 p50", round(p50, 3), "ms", "<= 5 ms", p50 <= 5.0, headline=row == "edge")
    return found


def _report(
    results: dict[tuple[str, int], dict[str, Any]], duration: float, levels: list[int], store: str
) -> int:
    print(f"\nEdge benchmark: {duration:g} s per row, load generator in a separate process")
    print("  floor      minimal FastAPI: HMAC check + 1 grpc.aio call to a trivial servicer")
    print("  edge-triv  the real edge against the same trivial servicer (the edge's own cost)")
    print(f"  edge       the real edge -> real routing ({store} store, specialist reserved)\n")
    print(f"{'row':<11}{'conc':>5}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}")
    order = {"floor": 0, "edge-triv": 1, "edge": 2}
    for (name, c), r in sorted(results.items(), key=lambda kv: (kv[0][1], order[kv[0][0]])):
        print(
            f"{name:<11}{c:>5}{r['requests']:>10}{r['errors'] + r['wrong']:>8}{r['rps']:>10.1f}"
            f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
        )
    ok = True
    for row in ("edge", "edge-triv"):
        print(f"\nRatios vs targets: {row} / floor")
        for c in levels:
            f, e = results[("floor", c)], results[(row, c)]
            throughput, tail = e["rps"] / f["rps"], e["p99_ms"] / f["p99_ms"]
            t_ok, p_ok = throughput >= 0.5, tail <= 2.0
            if row == "edge":
                ok &= t_ok and p_ok
            print(f"  c={c:<3} throughput = {throughput:6.2f}   (target >= 0.50)  {'OK' if t_ok else 'MISS'}")
            print(f"  c={c:<3} p99 ratio  = {tail:6.2f}   (target <= 2.00)  {'OK' if p_ok else 'MISS'}")
        if 1 in levels:
            p50 = results[(row, 1)]["p50_ms"]
            if row == "edge":
                ok &= p50 <= 5.0
            print(f"  c=1   p50        = {p50:6.2f} ms (target <= 5 ms)  {'OK' if p50 <= 5.0 else 'MISS'}")
    failures = sum(r["errors"] + r["wrong"] for r in results.values())
    if failures:
        print(f"\n{failures} requests failed or were not answered with a reserved specialist")
    return 0 if ok and not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per row (default 10)")
    parser.add_argument("--concurrency", type=int, nargs="*", default=None, help="levels (default 1 32)")
    parser.add_argument(
        "--role", choices=["orchestrate", "driver", "releaser", "floor-app"], default="orchestrate"
    )
    parser.add_argument("--url", default="")
    parser.add_argument("--marker", default="")
    parser.add_argument("--tag", default="run")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--target", default="")
    parser.add_argument("--release-to", default="", help="routing address the driver releases calls on")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    add_results_option(parser)
    args = parser.parse_args(argv)
    if args.role == "driver":
        level = (args.concurrency or [1])[0]
        print(
            json.dumps(
                asyncio.run(drive(args.url, level, args.duration, args.marker, args.tag, args.release_to))
            )
        )
        return 0
    if args.role == "releaser":
        asyncio.run(release_calls(args.release_to))
        return 0
    if args.role == "floor-app":
        serve_floor(args.port, args.target)
        return 0
    from routing_service.grpc.server import run_event_loop

    # The routing server runs in this process: on uvloop when installed, as `escalade routing serve` does.
    return run_event_loop(
        orchestrate(args.duration, args.concurrency or [1, 32], args.database, args.results_dir)
    )


if __name__ == "__main__":
    sys.exit(main())
