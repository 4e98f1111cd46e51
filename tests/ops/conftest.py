"""Fixtures of the operability tests: the real routing service (RoutingServer on 127.0.0.1:0 with a real
store, the TechCorp policy, demo agents and customers) with its metrics endpoint on 127.0.0.1:0, and the
real edge app in front of it behind an httpx ASGI client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.ops.ops_support import Stack, running_stack


@pytest.fixture
async def stack(database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url) as running:
        yield running


@pytest.fixture
async def sqlite_stack(sqlite_url: str) -> AsyncIterator[Stack]:
    async with running_stack(sqlite_url) as running:
        yield running
