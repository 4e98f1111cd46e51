"""The README's first walk-through, run as written: the fenced bash block between the walkthrough markers,
one command a line, each followed by `# expect: ...`. The text in backquotes must appear in the command's
output (exit code 0); `<call id>` in it matches an id the first time and stands for that id afterwards;
"within N s" retries the command until then. The prose after the block is checked too: freeing tech-1
lets the worker keep the promise, and the callback ends `connected`.

The README runs the block "with `bash scripts/dev.sh` running": installing into the checkout's .venv and
then `escalade dev`. The test checks that the script ends in that exec and starts `escalade dev` itself on
free ports, with its state in `<tmp>/.escalade`, the directory the commands find from their working
directory `<tmp>`, as they would from the repository root. `source .venv/bin/activate` puts this
environment's scripts first on PATH; the stack's addresses reach the commands through their environment
variables (ESCALADE_ROUTING_ADDRESS, ESCALADE_TEMPORAL_ADDRESS, ESCALADE_EDGE_URL, and TEMPORAL_ADDRESS for
the `temporal` CLI), the only difference from a stack on the default ports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.devstack import DevRun, clean_env, escalade_dev

pytestmark = [pytest.mark.e2e, pytest.mark.temporal]

REPO = Path(__file__).resolve().parents[2]
START, END = "<!-- walkthrough:start -->", "<!-- walkthrough:end -->"
PLACEHOLDER = "<call id>"
ID_PATTERN = r"(?P<id>[A-Za-z0-9_.:-]+)"


@dataclass(frozen=True)
class Step:
    command: str
    expect: str
    fragments: tuple[str, ...]
    within: float | None


def walkthrough(readme: str) -> list[Step]:
    """The steps of the README's walk-through block."""
    assert readme.count(START) == 1 and readme.count(END) == 1, "one walk-through block between the markers"
    section = readme.split(START, 1)[1].split(END, 1)[0]
    fenced = re.fullmatch(r"\s*```bash\n(.*?)```\s*", section, re.DOTALL)
    assert fenced is not None, "the walk-through is one fenced bash block"
    steps = []
    for line in fenced.group(1).splitlines():
        if not line.strip():
            continue
        command, marker, expect = line.partition("# expect:")
        assert marker, f"no `# expect:` after {line!r}"
        fragments = tuple(re.findall(r"`([^`]+)`", expect))
        assert fragments, f"nothing in backquotes to check in {line!r}"
        within = re.search(r"within (\d+) s", expect)
        steps.append(Step(command.strip(), expect.strip(), fragments, float(within[1]) if within else None))
    return steps


class Ids:
    """`<call id>`: unbound, a fragment holding it matches any id and binds it; bound, it is that id."""

    def __init__(self) -> None:
        self.call_id: str | None = None

    def fill(self, text: str) -> str:
        return text if self.call_id is None else text.replace(PLACEHOLDER, self.call_id)

    def found(self, fragment: str, output: str) -> bool:
        fragment = self.fill(fragment)
        if PLACEHOLDER not in fragment:
            return fragment in output
        pattern = re.escape(fragment).replace(re.escape(PLACEHOLDER), ID_PATTERN, 1)
        match = re.search(pattern, output)
        if match is None:
            return False
        self.call_id = match["id"]
        return True


def _run(step: Step, ids: Ids, env: dict[str, str], cwd: Path) -> str:
    """Run the step's command (again, until `within` passes) until its expectations hold; its output."""
    deadline = time.monotonic() + (step.within or 0)
    while True:
        command = ids.fill(step.command)
        assert PLACEHOLDER not in command, f"{step.command!r} uses {PLACEHOLDER} before any output showed one"
        result = subprocess.run(
            ["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
        )
        output = result.stdout + result.stderr
        if result.returncode == 0 and all(ids.found(f, output) for f in step.fragments):
            return output
        if time.monotonic() >= deadline:
            pytest.fail(f"{command!r} (exit {result.returncode}) did not show {step.expect!r}:\n{output}")
        time.sleep(2)


def _stack_env(run: DevRun, scripts: Path) -> dict[str, str]:
    ports = run.ports
    return {
        **clean_env(),
        "PATH": f"{scripts}{os.pathsep}{os.environ.get('PATH', '')}",
        "ESCALADE_ROUTING_ADDRESS": f"127.0.0.1:{ports['routing']}",
        "ESCALADE_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "ESCALADE_EDGE_URL": f"http://127.0.0.1:{ports['edge']}",
    }


def test_readme_walkthrough_runs_beside_the_dev_stack_and_checks_every_command() -> None:
    readme = (REPO / "README.md").read_text()
    before = readme.split(START, 1)[0].rsplit("\n\n", 2)[-2]
    assert "With `bash scripts/dev.sh` running" in before, before
    assert (REPO / "scripts" / "dev.sh").read_text().rstrip().endswith('exec .venv/bin/escalade dev "$@"')
    steps = walkthrough(readme)
    assert steps[0].command == "source .venv/bin/activate"
    assert 4 <= len(steps) <= 6


def test_ids_bind_on_first_match_and_stand_for_that_id_afterwards() -> None:
    ids = Ids()
    assert not ids.found("callback-<call id>", "no callbacks")
    assert ids.found("callback-<call id>", "│ callback-call_9f3a │ RUNNING │")
    assert ids.call_id == "call_9f3a"
    assert (
        ids.fill("escalade callbacks show callback-<call id>") == "escalade callbacks show callback-call_9f3a"
    )
    assert not ids.found("callback-<call id>", "│ callback-call_other │")


@pytest.mark.timeout(600)
def test_readme_walkthrough_shows_what_it_says_when_run_against_the_dev_stack(tmp_path: Path) -> None:
    steps = walkthrough((REPO / "README.md").read_text())
    scripts = Path(sysconfig.get_path("scripts"))
    ids = Ids()
    with escalade_dev(tmp_path / ".escalade") as run:
        env = _stack_env(run, scripts)
        activate, *rest = steps
        for program in activate.fragments:
            assert shutil.which(program, path=env["PATH"]) == str(scripts / program), program
        outputs = [(step.command, _run(step, ids, env, tmp_path)) for step in rest]
        assert ids.call_id is not None, outputs
        # the prose after the block: a freed specialist gets the callback, which ends connected
        for command, expect, within in (
            ("escalade agents status tech-1 available", "`tech-1: available`", None),
            ("escalade callbacks show callback-<call id>", "`connected`", 120.0),
        ):
            _run(Step(command, expect, (expect.strip("`"),), within), ids, env, tmp_path)
        assert "Traceback" not in (tmp_path / ".escalade" / "logs" / "worker.log").read_text()
