"""The checked-in gRPC stubs must be exactly what the codegen script makes from `proto/` today."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "escalade_platform" / "generated"


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_generated_stubs_match_protos_when_regenerated(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert _files(out) == _files(GENERATED), "stub file set differs: run scripts/gen_protos.py"
    stale = [f for f in sorted(_files(out)) if not filecmp.cmp(out / f, GENERATED / f, shallow=False)]
    assert not stale, f"stale generated stubs {stale}: run scripts/gen_protos.py"


def test_generated_stubs_carry_typed_interfaces() -> None:
    assert (GENERATED / "escalade" / "routing" / "v1" / "routing_pb2.pyi").exists()
    assert (GENERATED / "escalade" / "routing" / "v1" / "routing_pb2_grpc.pyi").exists()
