"""The domain and policy packages stay pure: importing them pulls in no framework or I/O adapter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = (
    "grpc",
    "google.protobuf",
    "sqlalchemy",
    "fastapi",
    "temporalio",
    "httpx",
    "asyncpg",
    "aiosqlite",
)
MODULES = [
    "routing_service.domain",
    "routing_service.domain.models",
    "routing_service.domain.errors",
    "routing_service.domain.phone",
    "routing_service.domain.complexity",
    "routing_service.domain.matching",
    "routing_service.domain.selection",
    "routing_service.domain.queueing",
    "routing_service.domain.decision",
    "routing_service.domain.lifecycle",
    "routing_service.domain.replay",
    "routing_service.policy",
    "routing_service.policy.loader",
    "routing_service.policy.schema",
    "routing_service.policy.errors",
]

PROBE = f"""
import importlib, json, sys
for name in {MODULES!r}:
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_domain_and_policy_import_no_adapter_library_when_loaded_in_a_clean_interpreter() -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout)
    offending = sorted(
        name for name in loaded if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    )
    assert offending == []
    assert "routing_service.domain.decision" in loaded


def test_domain_sources_do_not_mention_adapter_imports_when_read() -> None:
    for package in ("domain", "policy"):
        for path in (ROOT / "routing_service" / package).glob("*.py"):
            text = path.read_text()
            for bad in FORBIDDEN:
                assert f"import {bad}" not in text and f"from {bad}" not in text, (path.name, bad)
