"""Result files: every benchmark run writes what it measured to
`benchmarks/results/<name>-<YYYYMMDD-HHMMSS>.json` (UTC), and `python -m benchmarks.report` makes the
tables of benchmarks/README.md from those files.

A result file holds:

    benchmark   the script's name ("routing", "edge", "callbacks", ...)
    variant     what sets it apart from other runs of the same script that the table keeps apart
                (e.g. the edge's "sqlite" or "postgresql" store); "" when there is one kind of run
    date        when the run ended, ISO-8601 UTC
    machine     cpu model, cores, RAM (MiB) and the 1/5/15-minute load average when the run started
    versions    Python, the escalade checkout's commit (with "+dirty" when it had changes) and the
                packages named by the script
    parameters  the command-line options of the run
    columns     the table's columns: key, title and a format spec for the values (",.0f", ".2f", "")
    rows        one dict per printed row: "row" (its name) and the values by column key
    checks      the ratios and targets the script printed: name, value, unit, target ("" when there
                is none), met (true/false, null without a target), headline (listed in the top README)

Only this module knows the layout; a benchmark builds a `Result` and calls `write`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "Check",
    "Column",
    "Result",
    "add_results_option",
    "load_results",
    "machine",
    "versions",
    "write",
]

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _load_average() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


STARTED_LOAD = _load_average()
"""Read when a benchmark imports this module, i.e. as it starts, before its own load is on the machine."""


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    format: str = ""
    """A format spec for the values (",.0f"); "" prints them as they are."""


@dataclass(frozen=True)
class Check:
    """A ratio or a target the run printed, e.g. edge c=32 throughput / floor = 0.78 (target >= 0.50)."""

    name: str
    value: float
    unit: str = ""
    """How the value reads: "x" (a ratio), "ms", "MiB", "/s"."""
    target: str = ""
    met: bool | None = None
    headline: bool = True
    """Whether the top README lists it among the targets (False: shown in benchmarks/README.md only)."""


@dataclass
class Result:
    benchmark: str
    parameters: dict[str, Any]
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    variant: str = ""
    packages: tuple[str, ...] = ()
    """Distributions whose versions the run depends on (besides Python), e.g. ("grpcio", "sqlalchemy")."""
    started_load: tuple[float, float, float] = field(default_factory=lambda: STARTED_LOAD)
    """The load average when the benchmark started (this module is imported as it starts)."""

    def add_row(self, row: str, **values: Any) -> None:
        unknown = set(values) - {c.key for c in self.columns}
        if unknown:
            raise ValueError(f"row {row!r}: no column {sorted(unknown)}")
        self.rows.append({"row": row, **values})

    def check(
        self,
        name: str,
        value: float,
        unit: str = "",
        target: str = "",
        met: bool | None = None,
        *,
        headline: bool = True,
    ) -> None:
        self.checks.append(Check(name, value, unit, target, met, headline))


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """`--results-dir` (default benchmarks/results; "" writes no file, for trial runs)."""
    parser.add_argument(
        "--results-dir",
        default=str(RESULTS_DIR),
        help="where the run's result file goes (default benchmarks/results; '' for none)",
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_mib() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def machine(load: tuple[float, float, float] | None = None) -> dict[str, Any]:
    """The machine a run measured: cpu model, cores, RAM and the load average (1, 5, 15 min)."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count() or 0,
        "ram_mib": _ram_mib(),
        "system": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in (load or _load_average())],
    }


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def versions(packages: tuple[str, ...] = ()) -> dict[str, str]:
    """Python, the checkout's commit and the named packages' versions ("" for one not installed)."""
    found = {"python": platform.python_version(), "escalade_commit": _commit()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = ""
    return found


def write(
    result: Result, directory: str | Path | None = RESULTS_DIR, *, now: datetime | None = None
) -> Path | None:
    """Write the result file (None, and nothing written, when `directory` is None or ""); says where."""
    if not directory:
        return None
    ended = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    doc = {
        "benchmark": result.benchmark,
        "variant": result.variant,
        "date": ended.isoformat(),
        "machine": machine(result.started_load),
        "versions": versions(result.packages),
        "parameters": result.parameters,
        "columns": [asdict(c) for c in result.columns],
        "rows": result.rows,
        "checks": [asdict(c) for c in result.checks],
    }
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.benchmark}-{ended:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    print(f"\nresult file: {path}", file=sys.stderr)
    return path


def load_results(directory: str | Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every result file in `directory`, oldest first (by the date inside, then the name)."""
    docs = []
    for path in sorted(Path(directory).glob("*.json")):
        doc = json.loads(path.read_text())
        doc["file"] = path.name
        docs.append(doc)
    return sorted(docs, key=lambda d: (d["date"], d["file"]))
