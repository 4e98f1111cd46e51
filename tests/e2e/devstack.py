"""`escalade dev` as a subprocess for end-to-end tests: free ports, a temporary state directory, its output
collected, and every child killed if a test leaves it running."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

START_WITHIN = 60.0


def escalade_script() -> str:
    path = Path(sysconfig.get_path("scripts")) / "escalade"
    found = str(path) if path.exists() else shutil.which("escalade")
    if found is None:
        pytest.fail("the escalade console script is not installed; run the README's test command")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_children(pid: int) -> set[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class DevRun:
    process: subprocess.Popen[str]
    ports: dict[str, int]
    state_dir: Path
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def clean_env() -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
    return {**base, "COLUMNS": "250", "NO_COLOR": "1"}


@contextmanager
def escalade_dev(state_dir: Path, **extra_env: str) -> Iterator[DevRun]:
    """Start `escalade dev`, wait for "Escalade is running"; kill it (and its children) if left running."""
    ports = {name: free_port() for name in ("edge", "routing", "temporal", "ui", "vapi")}
    argv = [escalade_script(), "dev", "--state-dir", str(state_dir), "--edge-port", str(ports["edge"])]
    argv += ["--routing-address", f"127.0.0.1:{ports['routing']}", "--temporal-port", str(ports["temporal"])]
    argv += ["--ui-port", str(ports["ui"]), "--vapi-standin-port", str(ports["vapi"])]
    process = subprocess.Popen(
        argv,
        env={**clean_env(), **extra_env},
        cwd=state_dir.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = DevRun(process, ports, state_dir)
    running = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            run.lines.append(line.rstrip("\n"))
            if "Escalade is running" in line:
                running.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + START_WITHIN
        while not running.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"escalade dev did not start (code {process.poll()}):\n{run.output}")
        yield run
    finally:
        if process.poll() is None:
            leftovers = process_children(process.pid)
            process.kill()
            process.wait()
            for pid in leftovers:
                kill_quietly(pid)
        reader.join(5)


def kill_quietly(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
