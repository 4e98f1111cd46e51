"""Recorded histories of both workflows replay against the current code (a determinism guard), and a
workflow that changed its steps fails to replay them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from history_recorder import HISTORIES, SCENARIOS, load_history, record_all
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from workflows.callback import QueueCallbackWorkflow
from workflows.inputs import CallbackStatus, QueueCallbackInput
from workflows.review import EscalationReviewWorkflow

pytestmark = pytest.mark.temporal


def histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def test_every_scenario_has_a_recorded_history_when_suite_runs() -> None:
    assert sorted(p.stem for p in histories()) == sorted(SCENARIOS)


@pytest.mark.parametrize("path", histories(), ids=lambda p: p.stem)
async def test_history_replays_when_workflow_code_is_current(path: Path) -> None:
    history = load_history(path)
    replayer = Replayer(workflows=[QueueCallbackWorkflow, EscalationReviewWorkflow])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@workflow.defn(name="QueueCallbackWorkflow", sandboxed=False)
class ReorderedCallbackWorkflow:
    """The callback workflow with a timer slipped in before its first claim: an incompatible change."""

    @workflow.run
    async def run(self, data: QueueCallbackInput) -> CallbackStatus:
        await workflow.sleep(timedelta(seconds=1))
        return CallbackStatus(call_id=data.call_id, state="", team_id="", masked_number="")


async def test_replay_fails_when_workflow_steps_change() -> None:
    path = HISTORIES / "callback_unreachable.json"
    history = load_history(path)
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[ReorderedCallbackWorkflow]).replay_workflow(history)


async def test_recorder_writes_replayable_histories_when_run(
    tmp_path: Path, time_env: WorkflowEnvironment
) -> None:
    written = await record_all(time_env, tmp_path)
    assert sorted(p.stem for p in written) == sorted(SCENARIOS)
    replayer = Replayer(workflows=[QueueCallbackWorkflow, EscalationReviewWorkflow])
    for path in written:
        await replayer.replay_workflow(load_history(path))
