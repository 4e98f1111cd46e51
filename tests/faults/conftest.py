"""Fixtures of the fault suite: the edge and service test helpers are reused from their folders (their
directories go on `sys.path` here, as pytest does for the folders themselves)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("edge", "service"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))

from fault_support import Stack, running_stack  # noqa: E402  (needs the paths above)


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    """Routing + edge on one database (SQLite file, and PostgreSQL when marked), TechCorp demo data."""
    async with running_stack(database_url) as running:
        yield running
