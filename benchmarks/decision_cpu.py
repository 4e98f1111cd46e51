"""Escalade's own Python CPU per decision (#17), in process: a whole `resolve_escalation` on a SQLite file
store with the TechCorp policy (plus the servicer's `decision_to_pb` and `observe_decision`), and the pure
steps of the decision path one at a time, this checkout against a baseline git ref, side by side.

    .venv/bin/python -m benchmarks.decision_cpu                          # this checkout vs main
    .venv/bin/python -m benchmarks.decision_cpu --baseline-ref HEAD~3 --rounds 5
    .venv/bin/python -m benchmarks.decision_cpu --baseline-ref ''        # this checkout only

One SQLite file is seeded once (`benchmarks.routing.seed`: `--specialists` of capacity 1,000 in the
technical and enterprise teams, `--customers`, `--history` releases) and copied for every measurement. Each
source (the baseline ref exported with `git archive`, and this checkout) is measured in a child process
whose `sys.path` starts with that source, `--rounds` times; in each round the sources' children run at the
same time (one per core on a 2-core machine), so that both meet the machine as it is at that moment. A
child:

- `resolve`: `--decisions` decisions (after a warm-up), each `resolve_escalation` on its own call id, a
  caller drawn as the routing benchmark draws them (nine in ten customers out of `--customers`, the rest
  strangers), an advanced technical escalation; then `decision_to_pb` and `observe_decision`, as the
  servicer does. Logging as the benchmark servers configure it (JSON, level warning);
- the steps, each called `--calls` times on inputs captured from one real decision of that run:
  `normalize_caller` (on a fresh stream of callers drawn as above), `assess_call`, `rank_specialists`,
  `agent_from_row` (per row), `specialist_decision`, `decision_to_pb`, `_log_decision`,
  `observe_decision`.

The figure is the child's CPU time (`time.process_time`, user + system) per call in µs: the least of five
passes of a step (of five chunks of the decisions), then the median over the rounds; `resolve` includes
SQLite's own CPU (the statements run inline on the thread). The row "steps per decision" adds the steps up
as a decision spends them (`agent_from_row` once per candidate row). The checks are after / before per
row, as the median of the rounds' ratios (each round's two children ran together). Result file:
`benchmarks/results/decision_cpu-<time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
REPEATS = 5
"""Passes per step in a child and chunks of its timed decisions; the least counts (other work on the machine
only ever adds to a pass)."""

# Run in the child: argv = source root, this file, JSON of the options and the database file.
_CHILD = """
import importlib.util, json, sys
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("decision_cpu_child", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(module.measure(sys.argv[1], json.loads(sys.argv[3]))), flush=True)
"""

STEPS = (
    "resolve",
    "normalize_caller",
    "assess_call",
    "rank_specialists",
    "agent_from_row",
    "specialist_decision",
    "decision_to_pb",
    "_log_decision",
    "observe_decision",
)


STEPS_PER_DECISION = "steps per decision"
"""A row: the steps' CPU as one decision spends it (each step once, `agent_from_row` once per candidate
row the decision read)."""


def caller_stream(seed: int, count: int, customers: int) -> list[str]:
    """Callers as the routing benchmark draws them: nine in ten customers, the rest strangers."""
    import random

    rng = random.Random(seed)
    return [
        f"+1415{rng.randrange(customers):07d}"
        if rng.random() < 0.9
        else f"+1212555{rng.randrange(10_000):04d}"
        for _ in range(count)
    ]


CONTEXT = "Premium Support customer; custom SSO integration fails for all users since this morning."
"""The edge benchmark's escalation (tests/edge/fixtures/transfer-destination-request...json)."""


def _request(call_id: str, caller: str) -> Any:
    from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb

    return pb.ResolveEscalationRequest(
        call_id=call_id,
        tool_call_id="t",
        caller_number=caller,
        issue_category="technical",
        complexity=pb.COMPLEXITY_ADVANCED,
        customer_context=CONTEXT,
        escalation_reason="Custom integration needs a technical specialist.",
    )


def measure(source: str, options: dict[str, Any]) -> dict[str, Any]:
    """In the child: CPU µs per call of each row (see the module docstring)."""
    import routing_service

    if not Path(routing_service.__file__).resolve().is_relative_to(Path(source).resolve()):
        raise RuntimeError(f"imported {routing_service.__file__}, not from {source}")
    return asyncio.run(_measure(source, options))


async def _measure(source: str, options: dict[str, Any]) -> dict[str, Any]:
    import copy
    import functools
    import time
    from datetime import UTC, datetime

    import routing_service.app.resolve as resolve_mod
    import routing_service.domain.decision as decision_mod
    import routing_service.store.agents as agents_mod
    from escalade_platform.logs import configure_logging
    from routing_service.domain.phone import normalize_caller
    from routing_service.grpc import mapping
    from routing_service.metrics import RoutingMetrics
    from routing_service.policy.loader import load_policy
    from routing_service.store.database import open_database
    from routing_service.store.unit_of_work import SqlUnitOfWorkFactory

    configure_logging(json=True, level="warning")
    policy = load_policy(Path(source) / "examples" / "techcorp.yaml")
    database = await open_database(f"sqlite:///{options['database']}")
    uow = SqlUnitOfWorkFactory(database)
    metrics = RoutingMetrics()
    run = options["tag"]
    decisions, customers = options["decisions"], options["customers"]

    async def decide(i: int, caller: str) -> Any:
        request = mapping.escalation_from_pb(_request(f"{run}-{i}", caller))
        decision = await resolve_mod.resolve_escalation(
            request, uow=uow, policy=policy, now=datetime.now(UTC)
        )
        msg = mapping.decision_to_pb(decision, with_handoff=False)
        metrics.observe_decision(msg)
        return decision

    # Capture the steps' inputs from one real decision (the module globals the decision path calls).
    captured: dict[str, Any] = {}
    homes: dict[str, Any] = {
        "assess_call": resolve_mod,
        "rank_specialists": resolve_mod,
        "specialist_decision": decision_mod,
        "agent_from_row": agents_mod,
    }
    step: dict[str, Any] = {name: vars(module)[name] for name, module in homes.items()}

    def capture(name: str) -> Any:
        original = step[name]

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if name == "assess_call":  # the context as the step found it (the step adds to it)
                ctx = copy.copy(args[0])
                ctx.trace = list(ctx.trace)
                captured.setdefault(name, ((ctx,), {}))
            elif name == "agent_from_row":
                captured.setdefault(name, []).append(args[0])
            else:
                captured.setdefault(name, (args, kwargs))
            return original(*args, **kwargs)

        return wrapper

    for name, module in homes.items():
        setattr(module, name, capture(name))
    try:
        sample = await decide(-1, "+14150000007")
    finally:
        for name, module in homes.items():
            setattr(module, name, step[name])
    if sample.agent_id is None or len(captured) != len(homes):
        raise RuntimeError(f"the sample decision reserved nobody ({sample.kind}) or missed a step")

    cpu_us: dict[str, float] = {}
    callers = caller_stream(options["seed"], options["warmup"] + decisions, customers)
    for i in range(options["warmup"]):
        await decide(i, callers[i])
    chunk = max(1, decisions // REPEATS)
    per_chunk = []
    for first in range(options["warmup"], options["warmup"] + chunk * REPEATS, chunk):
        started = time.process_time()
        for i in range(first, first + chunk):
            await decide(i, callers[i])
        per_chunk.append(1e6 * (time.process_time() - started) / chunk)
    cpu_us["resolve"] = min(per_chunk)

    calls: int = options["calls"]

    def timed(inputs: Callable[[], list[tuple[Any, ...]]], fn: Any) -> float:
        """CPU µs per call of `fn(*args)` over `inputs()`: the least of REPEATS passes (what other work on
        the machine adds only ever lengthens a pass)."""
        best = float("inf")
        for _ in range(REPEATS):
            given = inputs()
            begun = time.process_time()
            for args in given:
                fn(*args)
            best = min(best, 1e6 * (time.process_time() - begun) / len(given))
        return best

    def contexts() -> list[tuple[Any, ...]]:
        made = []
        for _ in range(calls):
            ctx = copy.copy(ctx0)
            ctx.trace = list(ctx0.trace)
            made.append((ctx,))
        return made

    fresh = [(raw,) for raw in caller_stream(options["seed"] + 1, calls * REPEATS, customers)]
    passes = iter(range(REPEATS))

    def strangers() -> list[tuple[Any, ...]]:  # new callers on every pass, as in the benchmark's stream
        at = next(passes) * calls
        return fresh[at : at + calls]

    cpu_us["normalize_caller"] = timed(strangers, normalize_caller)
    (ctx0,), _ = captured["assess_call"]
    cpu_us["assess_call"] = timed(contexts, step["assess_call"])
    for name in ("rank_specialists", "specialist_decision"):
        args, kwargs = captured[name]
        cpu_us[name] = timed(lambda: [()] * calls, functools.partial(step[name], *args, **kwargs))
    rows = captured["agent_from_row"]
    cpu_us["agent_from_row"] = timed(
        lambda: [(row,) for row in rows] * max(1, calls // len(rows)), step["agent_from_row"]
    )
    cpu_us["decision_to_pb"] = timed(
        lambda: [()] * calls, functools.partial(mapping.decision_to_pb, sample, with_handoff=False)
    )
    cpu_us["_log_decision"] = timed(lambda: [(sample,)] * calls, vars(resolve_mod)["_log_decision"])
    msg = mapping.decision_to_pb(sample, with_handoff=False)
    cpu_us["observe_decision"] = timed(lambda: [(msg,)] * calls, metrics.observe_decision)
    await database.close()
    return {"cpu_us": cpu_us, "trace_steps": len(sample.trace), "rows": len(rows)}


def run_children(
    runs: list[tuple[Path, dict[str, Any]]], template: Path, workdir: Path
) -> list[dict[str, Any]]:
    """One child per (source, options), all at once (each on its own copy of the template), so that the
    sources measured in a round share the machine's state of that moment; their results, in order."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    started = []
    for n, (source, options) in enumerate(runs):
        database = workdir / f"decisions-{options['tag']}-{n}.db"
        shutil.copyfile(template, database)
        command = [sys.executable, "-c", _CHILD, str(source), __file__]
        command.append(json.dumps({**options, "database": str(database)}))
        child = subprocess.Popen(
            command, cwd=source, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        started.append((source, database, child))
    results = []
    try:
        for source, _, child in started:
            out, err = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"measurement of {source} failed:\n{err[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for _, database, child in started:
            if child.poll() is None:
                child.kill()
                child.wait()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database}{suffix}").unlink(missing_ok=True)
    return results


async def seed_template(path: Path, args: argparse.Namespace) -> None:
    from benchmarks.routing import seed

    await seed(
        f"sqlite+aiosqlite:///{path}",
        specialists=args.specialists,
        customers=args.customers,
        history=args.history,
        capacity=1000,
    )


def main(argv: list[str] | None = None) -> int:
    from benchmarks.git_refs import export_ref, ref_label
    from benchmarks.results import Column, Result, add_results_option, write

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline-ref", default="main", help="git ref compared with this checkout ('' for none)"
    )
    parser.add_argument("--after-ref", default="", help="measure this git ref instead of the working tree")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--decisions", type=int, default=1500, help="whole decisions timed per round")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--calls", type=int, default=5000, help="calls of each step per round")
    parser.add_argument("--specialists", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=10_000)
    add_results_option(parser)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="escalade-decision-cpu-") as tmp:
        workdir = Path(tmp)
        sources: list[tuple[str, Path]] = []
        if args.baseline_ref:
            sources.append(
                (
                    f"before: {ref_label(args.baseline_ref)}",
                    export_ref(args.baseline_ref, workdir / "baseline"),
                )
            )
        if args.after_ref:
            sources.append(
                (f"after: {ref_label(args.after_ref)}", export_ref(args.after_ref, workdir / "after"))
            )
        else:
            sources.append(("after: this checkout", REPO))
        template = workdir / "template.db"
        print(f"seeding {args.customers:,} customers, {args.specialists:,} specialists ...", flush=True)
        asyncio.run(seed_template(template, args))
        found: dict[str, dict[str, list[float]]] = {label: {} for label, _ in sources}
        for r in range(args.rounds):
            options = {
                "tag": f"r{r}",
                "seed": 100 + r,
                "decisions": args.decisions,
                "warmup": args.warmup,
                "calls": args.calls,
                "customers": args.customers,
            }
            results = run_children([(root, options) for _, root in sources], template, workdir)
            for (label, _), result in zip(sources, results, strict=True):
                cpu = result["cpu_us"]
                for step, value in cpu.items():
                    found[label].setdefault(step, []).append(value)
                per_decision = sum(cpu[step] for step in STEPS[1:]) + cpu["agent_from_row"] * (
                    result["rows"] - 1
                )
                found[label].setdefault(STEPS_PER_DECISION, []).append(per_decision)
            print(f"  round {r + 1}/{args.rounds}", flush=True)

    labels = [label for label, _ in sources]
    columns = []
    for i, label in enumerate(labels):
        columns += [
            Column(f"us_{i}", f"{label}: µs per call", ".1f"),
            Column(f"range_{i}", f"{label}: rounds' range"),
        ]
    if len(labels) == 2:
        columns.append(Column("ratio", "after / before", ".3f"))
    parameters = {k: v for k, v in vars(args).items() if k != "results_dir"}
    report = Result(
        benchmark="decision_cpu",
        parameters=parameters,
        columns=columns,
        packages=("grpcio", "protobuf", "phonenumbers", "structlog", "prometheus-client"),
    )
    width = max(len(label) for label in labels)
    print(f"\nCPU µs per call, median of {args.rounds} rounds (in-process, SQLite file store)")
    print(
        f"{'step':<22}"
        + "".join(f"{label:>{width + 2}}" for label in labels)
        + ("   after/before" if len(labels) == 2 else "")
    )
    for step in (*STEPS, STEPS_PER_DECISION):
        medians = [statistics.median(found[label][step]) for label in labels]
        values: dict[str, Any] = {}
        for i, label in enumerate(labels):
            values[f"us_{i}"] = round(medians[i], 2)
            values[f"range_{i}"] = f"{min(found[label][step]):.1f} to {max(found[label][step]):.1f}"
        line = f"{step:<22}" + "".join(f"{m:>{width + 2}.1f}" for m in medians)
        if len(labels) == 2:
            ratio = medians[1] / medians[0] if medians[0] else 0.0
            paired = statistics.median(
                a / b for a, b in zip(found[labels[1]][step], found[labels[0]][step], strict=True) if b
            )
            values["ratio"] = round(ratio, 3)
            line += f"   {ratio:.3f}x   (median of the rounds' ratios {paired:.3f}x)"
            report.check(
                f"{step}: after / before, median of the rounds' ratios", round(paired, 3), "x", headline=False
            )
        report.add_row(step, **values)
        print(line)
    for label in labels:
        print(f"\n{label}, every round:")
        for step in (*STEPS, STEPS_PER_DECISION):
            print(f"  {step:<20} " + " ".join(f"{v:8.1f}" for v in found[label][step]))
    write(report, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
