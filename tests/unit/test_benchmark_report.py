"""Benchmark result files and the tables made from them: the committed tables are what `python -m
benchmarks.report` makes from the committed files, a result file holds what the run printed, and the
newest run of each benchmark (and variant) is the one shown."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.results import RESULTS_DIR, Column, Result, load_results, write


def test_committed_tables_are_the_ones_report_makes_from_the_committed_result_files() -> None:
    docs = load_results()
    assert docs, "no result files in benchmarks/results"
    for path, text in report.rendered(docs).items():
        assert path.read_text() == text, f"{path.name} is stale: run python -m benchmarks.report"
    assert {d["benchmark"] for d in docs} >= {"routing", "edge", "callbacks"}


def test_every_committed_result_file_is_named_for_its_benchmark_and_date() -> None:
    for path in RESULTS_DIR.glob("*.json"):
        doc = json.loads(path.read_text())
        ended = datetime.fromisoformat(doc["date"])
        assert path.name == f"{doc['benchmark']}-{ended:%Y%m%d-%H%M%S}.json"
        assert doc["machine"]["cores"] > 0 and doc["versions"]["python"]


def _result(benchmark: str, per_second: float, variant: str = "") -> Result:
    found = Result(
        benchmark,
        {"duration": 2.0},
        [Column("per_second", "req/s", ",.0f"), Column("p99_ms", "p99 ms", ".2f")],
        variant=variant,
        packages=("pytest", "no-such-distribution"),
    )
    found.add_row("floor", per_second=2 * per_second, p99_ms=1.5)
    found.add_row("edge", per_second=per_second, p99_ms=2.25)
    found.check("edge throughput / floor", 0.5, "x", ">= 0.50x", True)
    found.check("edge-triv throughput / floor", 0.81, "x", ">= 0.50x", True, headline=False)
    return found


def test_result_file_holds_machine_versions_parameters_rows_and_checks_when_written(tmp_path: Path) -> None:
    path = write(_result("edge", 1234.5), tmp_path, now=datetime(2026, 12, 7, 9, 5, 3, tzinfo=UTC))
    assert path is not None and path.name == "edge-20261207-090503.json"
    doc = json.loads(path.read_text())
    assert doc["date"] == "2026-12-07T09:05:03+00:00"
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["ram_mib"] > 0 and doc["machine"]["cpu_model"]
    assert len(doc["machine"]["load_average"]) == 3
    assert doc["versions"]["python"] and doc["versions"]["pytest"] == pytest.__version__
    assert doc["versions"]["no-such-distribution"] == ""
    assert doc["parameters"] == {"duration": 2.0}
    assert doc["rows"][1] == {"row": "edge", "per_second": 1234.5, "p99_ms": 2.25}
    assert doc["checks"][0]["value"] == 0.5 and doc["checks"][0]["met"] is True


def test_no_file_is_written_when_the_results_dir_is_empty(tmp_path: Path) -> None:
    assert write(_result("edge", 1.0), "") is None


def test_a_row_naming_an_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match="no column"):
        _result("edge", 1.0).add_row("x", rps=1.0)


def test_report_shows_the_newest_run_of_each_benchmark_and_variant(tmp_path: Path) -> None:
    write(_result("edge", 100.0), tmp_path, now=datetime(2026, 12, 1, tzinfo=UTC))
    write(_result("edge", 300.0), tmp_path, now=datetime(2026, 12, 2, tzinfo=UTC))
    write(_result("edge", 700.0, "postgresql"), tmp_path, now=datetime(2026, 11, 30, tzinfo=UTC))
    write(_result("routing", 900.0), tmp_path, now=datetime(2026, 11, 1, tzinfo=UTC))
    docs = load_results(tmp_path)
    text = report.results_section(docs)
    assert [m for m in re.findall(r"^### (.+)$", text, re.MULTILINE)] == [
        "routing",
        "edge",
        "edge (postgresql)",
    ]
    assert "| edge | 300 | 2.25 |" in text and "| edge | 100 |" not in text
    assert "| edge | 700 | 2.25 |" in text
    assert "| edge throughput / floor | 0.50x | >= 0.50x | met |" in text
    targets = report.targets_section(docs)
    assert "edge-triv" not in targets, "a check that is not a headline stays out of the top README"
    assert targets.count("edge throughput / floor 0.50x (target >= 0.50x, met") == 3


def test_splice_replaces_only_what_lies_between_the_markers() -> None:
    text = "intro\n<!-- results:start -->\nold\n<!-- results:end -->\nrest\n"
    assert report.splice(text, report.RESULTS_MARKERS, "new") == (
        "intro\n<!-- results:start -->\nnew\n<!-- results:end -->\nrest\n"
    )
    with pytest.raises(ValueError):
        report.splice("no markers", report.RESULTS_MARKERS, "new")
