"""Instructions per decision: what the handoff packet costs, counted by valgrind's callgrind instead of timed.

    .venv/bin/python -m benchmarks.instructions                           # this checkout, ~5-10 min
    .venv/bin/python -m benchmarks.instructions --other-code ../base      # and another checkout, same run

On this shared 2-core machine a CPU-time figure moves with whatever else runs (`benchmarks.features` pairs
its servers in lockstep to cancel that, and still sees 2-4 % of noise). An instruction count does not: the
same code on the same inputs executes the same instructions, however busy the machine is. So this script
counts them, for the question `benchmarks.features` answers by timing: how much does the handoff packet add to
a decision?

One SQLite file is seeded once (`--specialists` specialists of capacity 1,000 in the technical team,
`--customers` customers, `--history` releases in the last hour). Then, for each source (this checkout, and
`--other-code`) and each variant (`all`: the TechCorp policy as shipped; `no-packet`: the decision step
that builds the packet skipped, by `benchmarks.features`'s own `no-packet` patch), a child process opens a
copy of that file and makes decisions in process (`resolve_escalation` on the store, no gRPC, logging at
warning) under `valgrind --tool=callgrind`: once with no decision and once with `--decisions` decisions,
each after the same warm-up decision. The difference of the two counts, divided by `--decisions`, is the
user-space instructions of one decision; everything the two runs share (start-up, imports, the warm-up,
building the requests) cancels out. Each decision is a new call with the realistic request of
`benchmarks.features` (a Vapi `tool-calls` message with every optional argument of the escalation tool and
a `--transcript-chars` transcript, read by the edge's code) or, with `--workload benchmark`, the routing
benchmark's technical request.

What the count leaves out: the kernel's work (SQLite's writes, sockets), so its shares are of user-space
work only and run higher than the CPU-time shares of `benchmarks.features`, whose server also spends CPU on
gRPC. Read both: this one for the direction and size of a change, that one for what a server spends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.git_refs import REPO

VARIANTS = ("all", "no-packet")

# Run in the child (cwd and sys.path: the source's root): argv = root, variant, decisions, database file,
# workload, transcript chars, customers, and how many requests to build (the same in both runs of a pair, so
# that building them cancels out).
_CHILD = """
import asyncio, logging, random, shutil, sys, tempfile
from datetime import UTC, datetime
root, variant, count, seeded, workload = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
chars, customers, built = int(sys.argv[6]), int(sys.argv[7]), int(sys.argv[8])
sys.path.insert(0, root)
import structlog
from routing_service.app import resolve
from routing_service.grpc.mapping import escalation_from_pb
from routing_service.policy.loader import load_policy
from routing_service.store import Store

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
if variant == "no-packet":
    from benchmarks.features import PATCHES
    PATCHES["no-packet"]()
if workload == "realistic":
    from benchmarks.features import realistic_request_factory
    make = realistic_request_factory(chars, customers)
else:
    from benchmarks.routing import technical_request
    make = lambda call_id, rng: technical_request(call_id, False, rng, customers)


async def main() -> None:
    folder = tempfile.mkdtemp()
    shutil.copy(seeded, folder + "/escalade.db")
    store = await Store.open(f"sqlite+aiosqlite:///{folder}/escalade.db")
    policy = load_policy(root + "/examples/techcorp.yaml")
    rng = random.Random(1)
    requests = [escalation_from_pb(make(f"call-{i}", rng)) for i in range(built + 1)]
    now = datetime(2026, 12, 8, 12, tzinfo=UTC)
    packets = 0
    for request in requests[: count + 1]:  # the first is the warm-up both runs make
        decision = await resolve.resolve_escalation(request, uow=store.uow, policy=policy, now=now)
        packets += decision.handoff is not None
    await store.close()
    shutil.rmtree(folder)
    print(f"decisions {count + 1} with a packet {packets}")


asyncio.run(main())
"""

_COLLECTED = re.compile(r"Collected : (\d+)")


def child_command(
    root: Path, variant: str, decisions: int, database: Path, args: argparse.Namespace
) -> list[str]:
    """The child's command line (without valgrind): `decisions` decisions after the warm-up."""
    return [
        sys.executable,
        "-c",
        _CHILD,
        str(root),
        variant,
        str(decisions),
        str(database),
        args.workload,
        str(args.transcript_chars),
        str(args.customers),
        str(args.decisions),
    ]


def child_env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(root)}


def count_instructions(
    root: Path, variant: str, decisions: int, database: Path, args: argparse.Namespace
) -> int:
    """Instructions callgrind counted for a child making `decisions` decisions (after the warm-up)."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={folder}/callgrind.out",
            *child_command(root, variant, decisions, database, args),
        ]
        env = child_env(root)
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{root} {variant} {decisions}: the child failed:\n{done.stderr[-3000:]}")
    return int(found.group(1))


def per_decision(
    root: Path, variant: str, database: Path, args: argparse.Namespace, pool: ThreadPoolExecutor
) -> Any:
    """A future of the instructions of one decision: (count with decisions - count without) / decisions."""
    without = pool.submit(count_instructions, root, variant, 0, database, args)
    with_decisions = pool.submit(count_instructions, root, variant, args.decisions, database, args)
    return without, with_decisions


def main(argv: list[str] | None = None) -> int:
    from benchmarks.results import Column, Result, add_results_option, write
    from benchmarks.routing import seed

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=100, help="decisions counted per child")
    parser.add_argument(
        "--workload", choices=("realistic", "benchmark"), default="realistic", help="which request"
    )
    parser.add_argument(
        "--transcript-chars", type=int, default=5000, help="the realistic transcript's length"
    )
    parser.add_argument("--specialists", type=int, default=300)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="children under valgrind at once")
    parser.add_argument(
        "--other-code",
        metavar="DIR",
        help="another checkout, counted in the same run (e.g. a git archive of main)",
    )
    add_results_option(parser)
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.decisions < 1:
        parser.error("--decisions must be at least 1")
    sources = [("this checkout", REPO)]
    if args.other_code:
        other = Path(args.other_code).resolve()
        if not (other / "routing_service").is_dir():
            parser.error(f"--other-code {other}: no routing_service there")
        sources.append((f"other: {other.name}", other))

    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "seeded.db"
        asyncio.run(
            seed(
                f"sqlite+aiosqlite:///{database}",
                specialists=args.specialists,
                customers=args.customers,
                history=args.history,
                capacity=1000,
                teams=("technical",),
            )
        )
        print(f"seeded {database.name}; counting {len(sources) * len(VARIANTS) * 2} children under callgrind")
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            futures = {
                (label, variant): per_decision(root, variant, database, args, pool)
                for label, root in sources
                for variant in VARIANTS
            }
            counts = {
                key: (with_decisions.result() - without.result()) / args.decisions
                for key, (without, with_decisions) in futures.items()
            }

    parameters = {k: v for k, v in vars(args).items() if k != "results_dir"}
    report = Result(
        benchmark="instructions",
        variant=args.workload,
        parameters=parameters,
        columns=[
            Column("all_k", "everything on: k instructions per decision", ",.1f"),
            Column("without_k", "no packet: k instructions per decision", ",.1f"),
            Column("packet_k", "the packet: k instructions", ",.1f"),
            Column("packet_pct", "the packet, % of a decision without it", ".1f"),
        ],
        packages=("sqlalchemy", "orjson"),
    )
    print(f"\nuser-space instructions per decision ({args.workload} request, SQLite, in process)")
    print(f"{'source':<28}{'all':>12}{'no packet':>12}{'packet':>12}{'share':>9}")
    for label, _root in sources:
        everything, without = counts[(label, "all")], counts[(label, "no-packet")]
        packet = everything - without
        share = 100 * packet / without
        report.add_row(
            label,
            all_k=round(everything / 1000, 1),
            without_k=round(without / 1000, 1),
            packet_k=round(packet / 1000, 1),
            packet_pct=round(share, 1),
        )
        figures = (everything / 1000, without / 1000, packet / 1000)
        print(f"{label:<28}" + "".join(f"{k:>11,.1f}k" for k in figures) + f"{share:>8.1f}%")
        report.check(
            f"{label}: the packet's instructions, % of a decision without it ({args.workload} request)",
            round(share, 1),
            "%",
            headline=False,
        )
    if len(sources) == 2:
        ratio = counts[(sources[0][0], "all")] / counts[(sources[1][0], "all")]
        print(f"\nthis checkout / other, whole decisions: {ratio:.3f}x")
        report.check(
            "whole decision, this checkout / other (instructions)", round(ratio, 3), "x", headline=False
        )
    write(report, args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
