"""benchmarks.instructions: its child (what callgrind counts) makes real decisions, with the handoff packet
in `all` and none with the feature benchmark's `no-packet` patch; and the per-decision figure is the
difference of the two counts over the decisions."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
from pathlib import Path

import pytest

from benchmarks import instructions
from benchmarks.git_refs import REPO
from benchmarks.routing import seed

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    database = tmp_path_factory.mktemp("instructions") / "seeded.db"
    asyncio.run(
        seed(
            f"sqlite+aiosqlite:///{database}",
            specialists=5,
            customers=20,
            capacity=1000,
            teams=("technical",),
        )
    )
    return database


@pytest.mark.parametrize(("variant", "packets"), [("all", 3), ("no-packet", 0)])
@pytest.mark.parametrize("workload", ["realistic", "benchmark"])
def test_the_child_decides_with_the_packet_only_when_everything_is_on(
    seeded: Path, variant: str, packets: int, workload: str
) -> None:
    args = argparse.Namespace(workload=workload, transcript_chars=5000, customers=20, decisions=4)
    done = subprocess.run(
        instructions.child_command(REPO, variant, 2, seeded, args),
        cwd=REPO,
        env=instructions.child_env(REPO),
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"decisions 3 with a packet {packets}" in done.stdout
