"""What callback promises cost routing (#18: each feature adds < 10 % to a decision's CPU): the routing
server's CPU per queueing decision and per claim, this checkout against a baseline git ref, interleaved.

    .venv/bin/python -m benchmarks.promise_costs                       # this checkout vs main, both DBs
    .venv/bin/python -m benchmarks.promise_costs --baseline-ref 3925a55^ --databases sqlite

Each source (the baseline ref, exported with `git archive` to a temporary directory, and this checkout)
gets, per database, its own fresh database, seeded alike (`benchmarks.routing.seed`: specialists, customers,
`--history` released calls over the last hour, and `--started` callbacks started over the last day with
their promises, what the estimate learns from), and its own routing server in a child process whose
`PYTHONPATH` is that source (so each serves its own code and policy). Every specialist is set busy, so each
ResolveEscalation queues a callback. Then `--rounds` rounds, the sources in turn (their order alternating
round by round, so neither always runs first), each round per source:

- `--decisions` ResolveEscalation calls, `--concurrency` in flight, each queueing a callback;
- `--claims` ClaimCallback calls for the head of the queue (nobody free: the claim weighs the queue order
  and the at-risk callbacks, looks for a specialist and finds none);
- `--claims` ClaimCallback calls for that round's callbacks, all behind the head (answered "not at head").

The figure is the server process's CPU time (user + system, from /proc) per call, the median over rounds.
The client runs here; its CPU is not counted. Result file: `benchmarks/results/promise_costs-<time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc

from benchmarks.floor import customer_number
from benchmarks.git_refs import export_ref, ref_label
from benchmarks.results import Column, Result, add_results_option, write
from benchmarks.routing import Database, process_cpu_seconds, seed, technical_request

REPO = Path(__file__).resolve().parents[1]

# Runs in the child with the source's directory first on PYTHONPATH: argv = database url, policy path.
_SERVER = """
import asyncio, os, sys
from pathlib import Path

async def main():
    from escalade_platform.heap import freeze_startup_heap
    from escalade_platform.logs import configure_logging
    from routing_service.grpc.server import RoutingServer
    from routing_service.settings import RoutingSettings
    import routing_service

    configure_logging(json=True, level="warning")
    routing = RoutingServer(
        RoutingSettings(database_url=sys.argv[1], policy=Path(sys.argv[2]), routing_address="127.0.0.1:0"),
        watch_policy=False,
        run_sweeps=False,
    )
    port = await routing.start()
    freeze_startup_heap()
    print(port, routing_service.__file__, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await routing.stop(1)

from routing_service.grpc.server import run_event_loop
run_event_loop(main(), os.environ.get("ESCALADE_EVENT_LOOP", "auto"))
"""


@dataclass
class Source:
    label: str
    root: Path
    cpu_us: dict[str, list[float]] = field(default_factory=dict)
    """Server CPU µs per call of each measured kind, one value per round."""


def steady_policy(policy: Path, workdir: Path) -> Path:
    """The source's TechCorp policy with promises at risk only at their deadline, so that no callback
    overtakes the head while the rounds run and every round's claims take the same path (the at-risk
    callbacks are still looked up; there are just none)."""
    text = policy.read_text()
    steady = text.replace("at_risk_fraction: 0.75", "at_risk_fraction: 1.0")
    if steady == text:
        raise RuntimeError(f"{policy}: no 'at_risk_fraction: 0.75' to change")
    out = workdir / f"policy-{uuid.uuid4().hex[:8]}.yaml"
    out.write_text(steady)
    return out


class Server:
    """One routing server in a child process serving `source`'s code on `url`."""

    def __init__(self, source: Source, url: str, workdir: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(source.root)}
        policy = steady_policy(source.root / "examples" / "techcorp.yaml", workdir)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, url, str(policy)],
            cwd=source.root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2:
            self.stop()
            raise RuntimeError(f"routing server for {source.label} did not start")
        self.address = f"127.0.0.1:{line[0]}"
        if not Path(line[1]).resolve().is_relative_to(source.root.resolve()):
            self.stop()
            raise RuntimeError(f"{source.label}: the server imported {line[1]}, not {source.root}")

    @property
    def cpu(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def seed_started_callbacks(url: str, started: int) -> None:
    """`started` technical callbacks started over the last day, each quoted 10 minutes and started after
    5-15: what the wait estimate learns its correction from."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from routing_service.store import tables

    now = datetime.now(UTC)
    rows = []
    for i in range(started):
        began = now - timedelta(seconds=86_000 * (i + 1) / (started + 1))
        rows.append(
            {
                "call_id": f"history-cb-{i}",
                "team_id": "technical",
                "state": "connected",
                "caller_number": customer_number(i),
                "tier": "standard",
                "issue_category": "technical",
                "effective_complexity": 3,
                "priority": 0,
                "service_key": 0.0,
                "enqueued_at": began,
                "decision_id": f"history-cb-{i}",
                "customer_context": "",
                "escalation_reason": "",
                "agent_id": "s00001",
                "reserved_until": None,
                "finished_at": began + timedelta(minutes=30),
                "note": "",
                "first_message": "",
                "promise_from": began,
                "promised_by": began + timedelta(minutes=10),
                "at_risk_at": began + timedelta(minutes=7, seconds=30),
                "started_at": began + timedelta(minutes=5 + i % 10),
                "breached_at": None,
            }
        )
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            if rows:
                await conn.execute(tables.callbacks.insert(), rows)
    finally:
        await engine.dispose()


async def timed(server: Server, calls: int, concurrency: int, one: Callable[[int], Awaitable[None]]) -> float:
    """Run `one(i)` for i < calls with `concurrency` in flight; the server's CPU µs per call."""
    counter = iter(range(calls))

    async def worker() -> None:
        for i in counter:
            await one(i)

    before = server.cpu
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return 1e6 * (server.cpu - before) / max(1, calls)


class Bench:
    """One source's server and stub on one database, with the calls it queued."""

    def __init__(self, args: argparse.Namespace, source: Source, server: Server, channel: Any) -> None:
        from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc

        self.args, self.source, self.server = args, source, server
        self.stub = routing_pb2_grpc.RoutingServiceStub(channel)
        self.rng = random.Random(11)
        self.queued: list[str] = []
        self.run = uuid.uuid4().hex[:8]

    async def set_all_busy(self) -> None:
        from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

        for i in range(self.args.specialists):
            request = pb.SetAgentStatusRequest(agent_id=f"s{i:05d}", status=pb.AGENT_STATUS_BUSY)
            await self.stub.SetAgentStatus(request, timeout=30)

    async def decide(self, i: int) -> None:
        from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

        call_id = f"q-{self.run}-{len(self.queued)}-{i}"
        request = technical_request(call_id, False, self.rng, self.args.customers)
        reply = await self.stub.ResolveEscalation(request, timeout=30)
        if reply.decision.kind != pb.DECISION_KIND_CALLBACK:
            raise RuntimeError(f"{self.source.label}: a decision did not queue a callback")
        self.queued.append(call_id)

    async def claim(self, call_id: str, expected: int) -> None:
        from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

        reply = await self.stub.ClaimCallback(pb.ClaimCallbackRequest(call_id=call_id), timeout=30)
        if reply.outcome != expected:
            raise RuntimeError(f"{self.source.label}: claim of {call_id} answered {reply.outcome}")

    async def head(self) -> str:
        from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

        reply = await self.stub.ListCallbacks(
            pb.ListCallbacksRequest(team_id="technical", state=pb.CALLBACK_STATE_WAITING, page_size=1),
            timeout=30,
        )
        return str(reply.callbacks[0].call_id)

    async def round(self) -> None:
        from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

        args, cpu = self.args, self.source.cpu_us
        cpu.setdefault("decision", []).append(
            await timed(self.server, args.decisions, args.concurrency, self.decide)
        )
        head = await self.head()
        # This round's callbacks: each queued behind the warm-up's (a head of the enterprise queue, where
        # the rules send enterprise callers, may be among the earlier ones)
        behind = [c for c in self.queued[-args.decisions :] if c != head]

        async def at_head(i: int) -> None:
            await self.claim(head, pb.CLAIM_OUTCOME_NO_SPECIALIST_FREE)

        async def not_at_head(i: int) -> None:
            await self.claim(behind[i % len(behind)], pb.CLAIM_OUTCOME_NOT_AT_HEAD)

        cpu.setdefault("claim_head", []).append(
            await timed(self.server, args.claims, args.concurrency, at_head)
        )
        cpu.setdefault("claim_behind", []).append(
            await timed(self.server, args.claims, args.concurrency, not_at_head)
        )


async def run_database(args: argparse.Namespace, kind: str, sources: list[Source], workdir: Path) -> None:
    """Both sources on `kind`, rounds interleaved; fills each source's `cpu_us`."""
    for source in sources:
        source.cpu_us = {}
    databases = [Database(kind, workdir) for _ in sources]
    urls = [await db.__aenter__() for db in databases]
    servers: list[Server] = []
    channels: list[Any] = []
    try:
        benches = []
        for source, url in zip(sources, urls, strict=True):
            await seed(url, specialists=args.specialists, customers=args.customers, history=args.history)
            await seed_started_callbacks(url, args.started)
            servers.append(Server(source, url, workdir))
            channels.append(grpc.aio.insecure_channel(servers[-1].address))
            bench = Bench(args, source, servers[-1], channels[-1])
            await bench.set_all_busy()
            for i in range(args.decisions):  # warm-up: the queue's head and a first queue
                await bench.decide(-1 - i)
            benches.append(bench)
        for r in range(args.rounds):
            order = benches if r % 2 == 0 else benches[::-1]
            for bench in order:
                await bench.round()
            print(f"  {kind} round {r + 1}/{args.rounds}", flush=True)
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            server.stop()
        for db in databases:
            await db.__aexit__(None, None, None)


KINDS = {
    "decision": "queueing decision",
    "claim_head": "claim at the head (nobody free)",
    "claim_behind": "claim behind the head",
}


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-ref", default="main", help="git ref compared with this checkout")
    parser.add_argument(
        "--after-ref",
        default="",
        help="measure this git ref instead of the working tree (so edits during the run do not matter)",
    )
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma list: sqlite,postgresql")
    parser.add_argument("--specialists", type=int, default=100)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=10_000, help="released calls over the last hour")
    parser.add_argument("--started", type=int, default=200, help="started callbacks over the last day")
    parser.add_argument("--decisions", type=int, default=300, help="queueing decisions per round")
    parser.add_argument("--claims", type=int, default=300, help="claims of each kind per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=4)
    add_results_option(parser)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="escalade-promise-costs-") as tmp:
        sources = []
        if args.baseline_ref:
            root = export_ref(args.baseline_ref, Path(tmp) / "baseline")
            sources.append(Source(f"before: {ref_label(args.baseline_ref)}", root))
        if args.after_ref:
            root = export_ref(args.after_ref, Path(tmp) / "after")
            sources.append(Source(f"after: {ref_label(args.after_ref)}", root))
        else:
            sources.append(Source("after: this checkout", REPO))
        found = Result(
            benchmark="promise_costs",
            parameters={k: v for k, v in vars(args).items() if k != "results_dir"},
            columns=[
                Column("database", "database"),
                Column("source", "source"),
                *(Column(key, f"server CPU µs per {what} (median)", ",.0f") for key, what in KINDS.items()),
                Column("rounds", "rounds"),
            ],
            packages=("grpcio", "protobuf", "sqlalchemy", "asyncpg"),
        )
        for kind in [k.strip() for k in args.databases.split(",") if k.strip()]:
            await run_database(args, kind, sources, Path(tmp))
            medians = []
            for source in sources:
                figures = {key: statistics.median(values) for key, values in source.cpu_us.items()}
                medians.append(figures)
                found.add_row(
                    f"{kind}: {source.label}",
                    database=kind,
                    source=source.label,
                    rounds=args.rounds,
                    **figures,
                )
                shown = ", ".join(f"{KINDS[k]} {v:,.0f} µs" for k, v in figures.items())
                print(f"{kind}: {source.label}: {shown}", flush=True)
            if len(medians) == 2:
                for key, what in KINDS.items():
                    ratio = medians[1][key] / medians[0][key] if medians[0][key] else 0.0
                    found.check(f"{kind}: {what}, after / before", round(ratio, 3), "x", headline=False)
                    print(f"{kind}: {what}: after / before = {ratio:.3f}x", flush=True)
        write(found, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
