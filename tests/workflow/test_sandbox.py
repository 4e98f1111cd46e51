"""The workflow tests run under Temporal's strict sandbox, as the worker's `workflow_sandbox` setting says
(the default `passthrough` is only safe because the strict one has checked the same code): the suite's
workers import a workflow's module afresh for every run, and its replayer replays under the same sandbox."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from tests.workflow.sandbox_probe import CountRunsWorkflow
from tests.workflow.workflow_fakes import new_replayer, new_worker
from workflows.settings import WorkerSettings
from workflows.worker import workflow_runner

pytestmark = pytest.mark.temporal


async def counts_of_two_runs(client: Client, worker: Worker) -> list[int]:
    return [
        await client.execute_workflow(
            CountRunsWorkflow.run, id=f"probe-{uuid.uuid4()}", task_queue=worker.task_queue
        )
        for _ in range(2)
    ]


async def test_the_suites_workers_import_the_workflow_module_afresh_for_every_run(client: Client) -> None:
    async with new_worker(client, workflows=[CountRunsWorkflow]) as worker:
        assert await counts_of_two_runs(client, worker) == [1, 1]


async def test_the_default_passthrough_worker_shares_the_module_between_runs(client: Client) -> None:
    """The probe tells the two apart: under the production default the count goes on."""
    runner = workflow_runner(WorkerSettings())
    async with Worker(
        client, task_queue=f"tq-{uuid.uuid4()}", workflows=[CountRunsWorkflow], workflow_runner=runner
    ) as worker:
        first, second = await counts_of_two_runs(client, worker)
    assert second == first + 1


def test_the_suites_replayer_replays_in_the_strict_sandbox() -> None:
    runner = new_replayer().config()["workflow_runner"]
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert not runner.restrictions.passthrough_all_modules
