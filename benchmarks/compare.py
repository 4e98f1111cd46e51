"""Escalade against the durable floor (`benchmarks.floor`): medians, ratios, the targets, the table
and the result-file rows and checks (`benchmarks.results`), shared by `benchmarks.edge` and
`benchmarks.routing`.

The targets are the project's performance targets and are never lowered here: when Escalade misses one,
the table says MISS and the profile (`benchmarks.edge --profile`) says where the rest of the time goes.
"""

from __future__ import annotations

import resource
import statistics
from dataclasses import dataclass
from pathlib import Path

from benchmarks.results import Column, Result

__all__ = [
    "COLUMNS",
    "TARGETS",
    "Figures",
    "Targets",
    "add_comparison",
    "median_figures",
    "print_comparison",
    "ratios",
    "self_cpu_seconds",
    "verdicts",
]

PROFILES = Path(__file__).resolve().parent / "profiles"
LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Targets:
    """Escalade / floor, same run, medians of 3: throughput at least, p99 and c=1 p50 at most."""

    throughput: float
    p99: float
    p50_c1: float


TARGETS = {
    "sqlite": Targets(throughput=0.6, p99=1.5, p50_c1=2.0),
    "postgresql": Targets(throughput=0.7, p99=1.5, p50_c1=2.0),
}


@dataclass(frozen=True)
class Figures:
    """One system on one database: c=32 (or the run's high level) req/s and p99, c=1 p50, and the serving
    process's CPU time per decision (user + system, all threads) at the high level."""

    rps: float
    p99_ms: float
    p50_c1_ms: float
    cpu_ms: float
    edge_cpu_ms: float = float("nan")


def median_figures(runs: list[Figures]) -> Figures:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    return Figures(
        rps=med([r.rps for r in runs]),
        p99_ms=med([r.p99_ms for r in runs]),
        p50_c1_ms=med([r.p50_c1_ms for r in runs]),
        cpu_ms=med([r.cpu_ms for r in runs]),
        edge_cpu_ms=med([r.edge_cpu_ms for r in runs]),
    )


def ratios(floor: Figures, escalade: Figures) -> dict[str, float]:
    def div(a: float, b: float) -> float:
        return a / b if b else float("nan")

    return {
        "throughput": div(escalade.rps, floor.rps),
        "p99": div(escalade.p99_ms, floor.p99_ms),
        "p50_c1": div(escalade.p50_c1_ms, floor.p50_c1_ms),
        "cpu": div(escalade.cpu_ms, floor.cpu_ms),
    }


def verdicts(database: str, ratio: dict[str, float]) -> dict[str, bool]:
    """Target -> met, for the ratios of one database."""
    target = TARGETS[database]
    return {
        "throughput": ratio["throughput"] >= target.throughput,
        "p99": ratio["p99"] <= target.p99,
        "p50_c1": ratio["p50_c1"] <= target.p50_c1,
    }


def _num(value: float, digits: int) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def _times(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}x"


def print_comparison(
    figures: dict[str, dict[str, Figures]], *, high: int, repeat: int, what: str
) -> tuple[dict[str, dict[str, float]], bool]:
    """Print the comparison table for `figures` ({database: {"floor": ..., "escalade": ...}}) and the targets;
    returns the ratios per database and whether every target was met."""
    runs = "median of 3" if repeat == 3 else f"median of {repeat}" if repeat > 1 else "1 run, not a median"
    print(f"\n{what}: Escalade against the durable floor, same run ({runs}; req/s and p99 at c={high})\n")
    print("| | req/s | p99 ms | c=1 p50 ms | CPU ms/decision |")
    print("|---|---|---|---|---|")
    all_ratios: dict[str, dict[str, float]] = {}
    met = True
    for database, pair in figures.items():
        floor, escalade = pair["floor"], pair["escalade"]
        ratio = ratios(floor, escalade)
        all_ratios[database] = ratio
        name = LABEL[database]
        print(
            f"| durable floor, {name} | {_num(floor.rps, 0)} | {_num(floor.p99_ms, 1)} | "
            f"{_num(floor.p50_c1_ms, 2)} | {_num(floor.cpu_ms, 3)} |"
        )
        print(
            f"| Escalade, {name} | {_num(escalade.rps, 0)} ({_times(ratio['throughput'])}) | "
            f"{_num(escalade.p99_ms, 1)} ({_times(ratio['p99'])}) | "
            f"{_num(escalade.p50_c1_ms, 2)} ({_times(ratio['p50_c1'])}) | "
            f"{_num(escalade.cpu_ms, 3)} ({_times(ratio['cpu'])}) |"
        )
    print()
    for database, ratio in all_ratios.items():
        target, ok = TARGETS[database], verdicts(database, ratio)
        met &= all(ok.values())
        word = {True: "pass", False: "MISS"}
        throughput = _times(ratio["throughput"], 3)
        print(
            f"targets, {LABEL[database]}: "
            f"throughput {throughput} (>= {target.throughput}x) {word[ok['throughput']]}; "
            f"p99 {_times(ratio['p99'], 3)} (<= {target.p99}x) {word[ok['p99']]}; "
            f"c=1 p50 {_times(ratio['p50_c1'], 3)} (<= {target.p50_c1:g}x) {word[ok['p50_c1']]}"
        )
    edge_cpu = {
        db: pair for db, pair in figures.items() if pair["floor"].edge_cpu_ms == pair["floor"].edge_cpu_ms
    }
    for database, pair in edge_cpu.items():
        print(
            f"edge process CPU ms/decision, {LABEL[database]}: floor edge {pair['floor'].edge_cpu_ms:.3f}, "
            f"Escalade edge {pair['escalade'].edge_cpu_ms:.3f}"
        )
    return all_ratios, met


def self_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads (the routing servers run here)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


COLUMNS = [
    Column("per_second", "req/s", ",.0f"),
    Column("p99_ms", "p99 ms", ".1f"),
    Column("p50_c1_ms", "c=1 p50 ms", ".2f"),
    Column("server_cpu_ms", "routing CPU ms/decision", ".3f"),
    Column("edge_cpu_ms", "edge CPU ms/decision", ".3f"),
]
"""The comparison's columns; `benchmarks.routing` adds `p50_c1_ms` to its own and uses the others it has."""


def _rounded(value: float, digits: int) -> float | None:
    return None if value != value else round(value, digits)


def add_comparison(
    found: Result,
    database: str,
    medians: dict[str, Figures],
    ratio: dict[str, float],
    *,
    high: int,
    repeat: int,
    runs: dict[str, list[Figures]] | None = None,
) -> None:
    """The two systems' rows (medians, then each run when `runs` has more than one) and the ratios with
    their targets as checks, into a result file (`benchmarks.results`); only `found`'s columns are filled."""
    keys = {column.key for column in found.columns}
    label = LABEL[database]
    median = f"median of {repeat}" if repeat > 1 else "1 run"

    def add(name: str, figures: Figures) -> None:
        values = {
            "per_second": _rounded(figures.rps, 1),
            "p99_ms": _rounded(figures.p99_ms, 3),
            "p50_c1_ms": _rounded(figures.p50_c1_ms, 3),
            "server_cpu_ms": _rounded(figures.cpu_ms, 4),
            "edge_cpu_ms": _rounded(figures.edge_cpu_ms, 4),
        }
        found.add_row(name, **{k: v for k, v in values.items() if k in keys})

    systems = (("floor", "durable floor"), ("escalade", "Escalade"))
    for key, name in systems:
        add(f"{name}, {label} ({median}; c={high}, p50 at c=1)", medians[key])
    for key, name in systems:
        every = (runs or {}).get(key, [])
        for i, figures in enumerate(every if len(every) > 1 else []):
            add(f"{name}, {label}, run {i + 1}", figures)
    target, met = TARGETS[database], verdicts(database, ratio)
    checks = (
        ("throughput", "throughput", f">= {target.throughput}x"),
        ("p99", "p99", f"<= {target.p99}x"),
        ("p50_c1", "c=1 p50", f"<= {target.p50_c1:g}x"),
    )
    for key, what, goal in checks:
        value = ratio[key]
        found.check(f"{label}: Escalade {what} / durable floor", round(value, 3), "x", goal, met[key])
    found.check(
        f"{label}: Escalade CPU per decision / durable floor", round(ratio["cpu"], 3), "x", headline=False
    )
