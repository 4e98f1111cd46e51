"""A git ref of this repository as a plain tree to measure (`benchmarks.promise_costs`,
`benchmarks.decision_cpu`), and the label that says which commit a result measured."""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

__all__ = ["REPO", "export_ref", "ref_label"]

REPO = Path(__file__).resolve().parents[1]


def export_ref(ref: str, into: Path) -> Path:
    """`git archive` of `ref` unpacked in the new folder `into` (a plain tree: no worktree, nothing of this
    checkout touched)."""
    data = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref], check=True, capture_output=True
    ).stdout
    into.mkdir()
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def ref_label(ref: str) -> str:
    """`ref` with the commit it names (`main (564f362a234a)`), so a result says what was measured."""
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", ref], check=True, capture_output=True, text=True
    ).stdout.strip()
    return f"{ref} ({sha})"
