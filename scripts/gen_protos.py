"""Generate the Python gRPC stubs (with mypy-protobuf `.pyi`) from `proto/`.

    python scripts/gen_protos.py            # writes routing_service/generated/
    python scripts/gen_protos.py --out DIR  # writes elsewhere (the freshness test compares the two)

protoc writes absolute imports such as `from escalade.routing.v1 import routing_pb2`. Escalade keeps the
stubs inside the `routing_service.generated` package instead of putting a top-level `escalade` package on
`sys.path`, so this script rewrites those imports to `routing_service.generated.escalade...`. This is the
one place where that path is settled.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "routing_service" / "generated"
PACKAGE_PREFIX = "routing_service.generated."
_IMPORT = re.compile(r"^(\s*)(from|import) (escalade\.)", re.MULTILINE)
_QUALIFIED = re.compile(r"(?<![\w.])escalade\.routing\.")


def _protoc(out: Path) -> None:
    from grpc_tools import protoc  # imported here: a test-only dependency

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    scripts = Path(sysconfig.get_path("scripts"))
    args = [
        "grpc_tools.protoc",
        f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def _rewrite(path: Path) -> None:
    text = path.read_text()
    text = _IMPORT.sub(lambda m: f"{m.group(1)}{m.group(2)} {PACKAGE_PREFIX}{m.group(3)}", text)
    if path.suffix == ".pyi":
        text = _QUALIFIED.sub(f"{PACKAGE_PREFIX}escalade.routing.", text)
    path.write_text(text)


def generate(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _protoc(out)
    for path in out.rglob("*.py*"):
        _rewrite(path)
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
