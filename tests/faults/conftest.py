"""Fixtures of the fault suite: the edge and service test helpers are reused from their packages."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.faults.fault_support import Stack, running_stack
from tests.workflow.conftest import dev_env

__all__ = ["dev_env"]  # the worker-crash test drives a real `escalade worker` against the dev server


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    """Routing + edge on one database (SQLite file, and PostgreSQL when marked), TechCorp demo data."""
    async with running_stack(database_url) as running:
        yield running
