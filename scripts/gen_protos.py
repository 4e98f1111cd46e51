"""Generate the Python gRPC stubs (with mypy-protobuf `.pyi`) from `proto/`.

    python scripts/gen_protos.py            # writes escalade_platform/generated/
    python scripts/gen_protos.py --out DIR  # writes that package's files into DIR instead (the freshness
                                            # test compares the two)

The stubs live in the `escalade_platform.generated` package. protoc derives a generated module's imports from
the proto file's path, so the protos are included under that package's path (`-Iescalade_platform/generated=
proto`): `proto/escalade/routing/v1/routing.proto` is compiled as
`escalade_platform/generated/escalade/routing/v1/routing.proto`, and the stubs import each other as
`escalade_platform.generated.escalade.routing.v1` with nothing rewritten afterwards. The proto package
(`escalade.routing.v1`, what clients see on the wire) is unchanged.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_PATH = "escalade_platform/generated"
DEFAULT_OUT = ROOT / PACKAGE_PATH


def _protoc(root: Path) -> None:
    """Compile every proto under `proto/` into `root/escalade_platform/generated/...`."""
    from grpc_tools import protoc  # imported here: a test-only dependency

    protos = sorted(f"{PACKAGE_PATH}/{p.relative_to(PROTO_ROOT)}" for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    scripts = Path(sysconfig.get_path("scripts"))
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
        f"-I{PACKAGE_PATH}={PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={root}",
        f"--grpc_python_out={root}",
        f"--mypy_out={root}",
        f"--mypy_grpc_out={root}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def generate(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        _protoc(Path(scratch))
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(Path(scratch) / PACKAGE_PATH, out)
    for package in [out, *(p for p in out.rglob("*") if p.is_dir())]:
        (package / "__init__.py").touch()
    (out / "py.typed").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    generate(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
