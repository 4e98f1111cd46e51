"""`scripts/test.sh --gates-only` fails when any one gate fails.

Each case runs the real script, with the real ruff, mypy, import-linter and buf from this virtualenv, over a
small project laid out like this one (a package, a `pyproject.toml` with the same kinds of settings, the
real `proto/`) in which exactly one gate has something to find. The clean project passes, so a failure is
the gate's doing and not the set-up's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PYPROJECT = """\
[tool.ruff]
line-length = 110
target-version = "py311"

[tool.ruff.lint]
select = ["E", "F", "I", "UP", "B"]

[tool.mypy]
python_version = "3.11"
strict = true
packages = ["tinyapp"]

[tool.importlinter]
root_packages = ["tinyapp"]

[[tool.importlinter.contracts]]
name = "The core imports no adapter"
type = "forbidden"
source_modules = ["tinyapp.core"]
forbidden_modules = ["tinyapp.web"]
"""

CORE = '''\
"""The pure part."""


def double(value: int) -> int:
    return value * 2
'''

WEB = '''\
"""The adapter."""

from tinyapp.core import double


def answer(value: int) -> str:
    return str(double(value))
'''

# What each gate finds, added to one file of the clean project: (gate name as the script prints it, file,
# text appended). Each is caught by that gate alone.
FLAWS = {
    "ruff check": ("tinyapp/core.py", "\n\ndef unused() -> None:\n    import json\n"),
    "ruff format": ("tinyapp/core.py", "\n\nVALUES = [1,2,3]\n"),
    "mypy": ("tinyapp/core.py", '\n\ndef untyped(value):\n    return value + "1"\n'),
    "import rules": (
        "tinyapp/core.py",
        "\n\ndef late() -> str:\n    from tinyapp.web import answer\n\n    return answer(1)\n",
    ),
    "buf lint": ("proto/escalade/routing/v1/routing.proto", "\nmessage lower_case_name {}\n"),
}


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for every case: the standard library is analysed once, not once per case."""
    return tmp_path_factory.mktemp("mypy-cache")


def tiny_project(root: Path) -> Path:
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "test.sh", root / "scripts" / "test.sh")
    shutil.copytree(ROOT / "proto", root / "proto")
    (root / "pyproject.toml").write_text(PYPROJECT)
    package = root / "tinyapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "py.typed").write_text("")
    (package / "core.py").write_text(CORE)
    (package / "web.py").write_text(WEB)
    # The script runs its tools from ./.venv: this virtualenv's.
    (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return root


def run_gates(root: Path, mypy_cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPY_CACHE_DIR": str(mypy_cache), "PYTHONPATH": str(root)}
    return subprocess.run(
        ["bash", str(root / "scripts" / "test.sh"), "--gates-only"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_gates_pass_on_a_clean_project_when_every_gate_finds_nothing(
    tmp_path: Path, mypy_cache: Path
) -> None:
    result = run_gates(tiny_project(tmp_path), mypy_cache)

    assert result.returncode == 0, result.stdout + result.stderr
    for gate in FLAWS:
        assert f"== {gate}\n" in result.stdout
    assert "gate failed" not in result.stderr


@pytest.mark.parametrize("gate", list(FLAWS))
def test_gates_fail_when_one_gate_fails_and_the_others_still_run(
    gate: str, tmp_path: Path, mypy_cache: Path
) -> None:
    root = tiny_project(tmp_path)
    path, flaw = FLAWS[gate]
    with (root / path).open("a") as file:
        file.write(flaw)

    result = run_gates(root, mypy_cache)

    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.splitlines()[-1] == f"gate failed: {gate}", result.stdout + result.stderr
    for other in FLAWS:  # a failing gate does not stop the ones after it
        assert f"== {other}\n" in result.stdout
