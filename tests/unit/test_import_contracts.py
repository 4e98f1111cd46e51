"""The import rules (`[tool.importlinter]` in pyproject.toml, run by scripts/test.sh) hold on the code, and
each one catches what it forbids: a copy of the packages with one import added breaks that contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("escalade_platform", "routing_service", "workflows", "webhook_edge", "escalade_cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

PACKAGE_LAYERS = "Packages depend downwards: cli > edge > workflows > routing > platform"
ROUTING_LAYERS = "Inside routing_service: grpc > store, metrics, settings > app > policy > domain"
STORE_PORTS = "The routing store sees the use cases only through routing_service.app.ports"
PORTS = "routing_service.app.ports imports no use case"
DOMAIN = "The routing domain imports no framework"
POLICY = "The policy loader imports no server framework (pydantic and yaml only)"
ROUTING_INTERNALS = "Edge and workflows use routing_service only through its domain and policy file"
WORKFLOWS_API = "The edge uses workflows only through workflows.client and workflows.inputs"
CONTRACTS = [
    PACKAGE_LAYERS,
    ROUTING_LAYERS,
    STORE_PORTS,
    PORTS,
    DOMAIN,
    POLICY,
    ROUTING_INTERNALS,
    WORKFLOWS_API,
]

# (file, import appended to it, the contract it breaks). Appending at the end is enough: the rules read
# every import statement, wherever it stands.
VIOLATIONS = [
    ("routing_service/domain/models.py", "import sqlalchemy", DOMAIN),
    ("routing_service/domain/phone.py", "import structlog", DOMAIN),
    ("routing_service/domain/queueing.py", "from google.protobuf import timestamp_pb2", DOMAIN),
    ("routing_service/domain/decision.py", "from escalade_platform import tracing", DOMAIN),
    ("routing_service/domain/errors.py", "from routing_service.app import ports", ROUTING_LAYERS),
    ("routing_service/policy/loader.py", "import temporalio.workflow", POLICY),
    ("routing_service/app/resolve.py", "from routing_service.store import store", ROUTING_LAYERS),
    ("routing_service/store/agents.py", "from routing_service.app import resolve", STORE_PORTS),
    ("routing_service/app/ports.py", "from routing_service.app import lifecycle", PORTS),
    ("webhook_edge/translate.py", "from routing_service.store import store", ROUTING_INTERNALS),
    ("workflows/activities.py", "from routing_service.grpc import mapping", ROUTING_INTERNALS),
    ("webhook_edge/relay.py", "from workflows import activities", WORKFLOWS_API),
    ("workflows/client.py", "from webhook_edge import auth", PACKAGE_LAYERS),
    ("escalade_platform/masking.py", "from routing_service.domain import models", PACKAGE_LAYERS),
    ("webhook_edge/auth.py", "from escalade_cli import console", PACKAGE_LAYERS),
]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The application packages and pyproject.toml, copied: what the rules read."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(root: Path) -> tuple[int, dict[str, str]]:
    """Exit code and each contract's verdict ("KEPT" or "BROKEN"), by contract name."""
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},  # the copy, not the installed packages
        capture_output=True,
        text=True,
        timeout=60,
    )
    verdicts: dict[str, str] = {}
    for line in result.stdout.splitlines():
        for contract in CONTRACTS:
            if line.startswith(contract + " "):
                verdicts[contract] = line[len(contract) + 1 :].split()[0]
    return result.returncode, verdicts


def test_every_contract_is_kept_by_the_code_as_it_is(checkout: Path) -> None:
    code, verdicts = lint_imports(checkout)

    assert verdicts == dict.fromkeys(CONTRACTS, "KEPT")
    assert code == 0


@pytest.mark.parametrize(("path", "statement", "contract"), VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(
    checkout: Path, path: str, statement: str, contract: str
) -> None:
    with (checkout / path).open("a") as file:
        file.write(f"\n{statement}\n")

    code, verdicts = lint_imports(checkout)

    assert verdicts[contract] == "BROKEN"
    assert code == 1


def test_a_new_module_of_routing_service_must_be_placed_in_its_layers(checkout: Path) -> None:
    (checkout / "routing_service" / "unplaced.py").write_text('"""Not in any layer yet."""\n')

    code, verdicts = lint_imports(checkout)

    assert verdicts[ROUTING_LAYERS] == "BROKEN"
    assert code == 1
