"""Make the results tables from the result files (benchmarks/results/*.json, see benchmarks.results).

    .venv/bin/python -m benchmarks.report           # rewrite the tables (benchmarks/README.md, README.md)
    .venv/bin/python -m benchmarks.report --check   # exit 1 when a table differs from what the files give

For each benchmark (and variant) the latest result file gives one section: when and where it ran, its
parameters, the rows it printed and its ratios and targets. The sections go between `<!-- results:start -->`
and `<!-- results:end -->` in benchmarks/README.md. The headline targets alone, one line each with the
latest value and a link to benchmarks/README.md, go between `<!-- benchmark-targets:start -->` and
`<!-- benchmark-targets:end -->` in the top README when it has those markers. Nothing else in those files
is touched, so the tables are always made from the files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.results import RESULTS_DIR, load_results

__all__ = ["latest", "main", "results_section", "splice", "targets_section"]

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS_README = REPO / "benchmarks" / "README.md"
TOP_README = REPO / "README.md"
RESULTS_MARKERS = ("<!-- results:start -->", "<!-- results:end -->")
TARGETS_MARKERS = ("<!-- benchmark-targets:start -->", "<!-- benchmark-targets:end -->")
ORDER = ("routing", "features", "edge", "callbacks")
"""Benchmarks in this order first, any other after them by name."""


def latest(docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest result of each (benchmark, variant), in ORDER, then by variant."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:  # oldest first: later ones replace earlier ones
        newest[(doc["benchmark"], doc.get("variant", ""))] = doc

    def key(item: tuple[tuple[str, str], dict[str, Any]]) -> tuple[int, str, str]:
        (name, variant), _ = item
        return (ORDER.index(name) if name in ORDER else len(ORDER), name, variant)

    return [doc for _, doc in sorted(newest.items(), key=key)]


def _value(value: Any, spec: str = "") -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float) or not spec:
        return str(value)
    return format(value, spec)


def _number(value: float, unit: str) -> str:
    spec = ",.0f" if abs(value) >= 100 else ".2f"
    text = format(value, spec)
    if unit in ("x", "/s"):
        return f"{text}{unit}"
    return f"{text} {unit}".rstrip()


def _met(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**not met**")


def _title(doc: dict[str, Any]) -> str:
    return str(doc["benchmark"]) + (f" ({doc['variant']})" if doc.get("variant") else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _section(doc: dict[str, Any], link_dir: str) -> list[str]:
    machine, versions = doc["machine"], doc["versions"]
    load = ", ".join(f"{x:g}" for x in machine.get("load_average", []))
    packages = ", ".join(
        f"{k} {v}" for k, v in versions.items() if k not in ("python", "escalade_commit") and v
    )
    parameters = ", ".join(f"`{k}={v}`" for k, v in doc["parameters"].items())
    lines = [
        f"### {_title(doc)}",
        "",
        f"Run {doc['date'].replace('T', ' ').replace('+00:00', ' UTC')} "
        f"([{doc['file']}]({link_dir}{doc['file']})), commit {versions.get('escalade_commit') or '?'}: "
        f"{machine['cpu_model']}, {machine['cores']} cores, {machine['ram_mib'] / 1024:.1f} GiB RAM, "
        f"load average {load} at the start; Python {versions['python']}"
        + (f", {packages}" if packages else "")
        + ".",
        "",
        f"Parameters: {parameters or 'defaults'}.",
        "",
    ]
    columns = doc["columns"]
    if doc["rows"]:
        lines.append("| row | " + " | ".join(_cell(c["title"]) for c in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        for row in doc["rows"]:
            cells = [_cell(_value(row.get(c["key"]), c.get("format", ""))) for c in columns]
            lines.append(f"| {_cell(row['row'])} | " + " | ".join(cells) + " |")
        lines.append("")
    if doc["checks"]:
        lines.append("| ratio or target | value | target | |")
        lines.append("|---|---|---|---|")
        for check in doc["checks"]:
            value = _number(check["value"], check.get("unit", ""))
            target = check.get("target") or "—"
            lines.append(f"| {_cell(check['name'])} | {value} | {_cell(target)} | {_met(check.get('met'))} |")
        lines.append("")
    return lines


def results_section(docs: Sequence[dict[str, Any]], link_dir: str = "results/") -> str:
    """The text between the results markers of benchmarks/README.md."""
    chosen = latest(docs)
    if not chosen:
        return "\nNo result files yet: run a benchmark (see above).\n"
    lines = [
        "",
        "<!-- made by `python -m benchmarks.report` from the result files; edit those, not this -->",
        "",
    ]
    for doc in chosen:
        lines += _section(doc, link_dir)
    return "\n".join(lines)


def targets_section(docs: Sequence[dict[str, Any]], link: str = "benchmarks/README.md") -> str:
    """One line per target of the latest results, with the value and a link to the full tables."""
    lines = [""]
    for doc in latest(docs):
        for check in doc["checks"]:
            if not check.get("target") or not check.get("headline", True):
                continue
            value = _number(check["value"], check.get("unit", ""))
            lines.append(
                f"- {_title(doc)}: {check['name']} {value} (target {check['target']}, "
                f"{_met(check.get('met'))}; [{doc['date'][:10]}]({link}#{_anchor(_title(doc))}))"
            )
    if len(lines) == 1:
        lines.append("- no result files yet")
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    kept = "".join(ch for ch in title.lower() if ch.isalnum() or ch in " -_")
    return kept.replace(" ", "-")


def splice(text: str, markers: tuple[str, str], body: str) -> str:
    """`text` with what lies between the two markers replaced by `body`; ValueError without the markers."""
    start, end = markers
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"expected one {start} ... {end} pair")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip(chr(10))}\n{end}{tail}"


def rendered(docs: Sequence[dict[str, Any]]) -> dict[Path, str]:
    """What benchmarks/README.md and the top README (when it has the targets markers) should read."""
    files = {BENCHMARKS_README: splice(BENCHMARKS_README.read_text(), RESULTS_MARKERS, results_section(docs))}
    top = TOP_README.read_text()
    if TARGETS_MARKERS[0] in top:
        files[TOP_README] = splice(top, TARGETS_MARKERS, targets_section(docs))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results-dir", default=str(RESULTS_DIR), help="where the result files are")
    parser.add_argument("--check", action="store_true", help="only say whether the tables are up to date")
    args = parser.parse_args(argv)
    files = rendered(load_results(args.results_dir))
    stale = [path for path, text in files.items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(REPO)} differs from the result files: run python -m benchmarks.report")
        return 1 if stale else 0
    for path in stale:
        path.write_text(files[path])
        print(f"rewrote the tables in {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
