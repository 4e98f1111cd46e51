"""Recorded histories of both workflows replay against the current code (a determinism guard), and a
workflow that changed its steps fails to replay them.

`histories/*.json` are recorded by the current code; `histories/before_<patch>/` keep what older code
recorded, so workflows that were running when a `workflow.patched` change shipped still replay."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.workflow.history_recorder import HISTORIES, SCENARIOS, load_history, record_all
from tests.workflow.workflow_fakes import new_replayer
from workflows.callback import NUMBER_CHECK, WIDENING, WIDENING_FROM_START
from workflows.inputs import CallbackPhase, CallbackStatus, QueueCallbackInput
from workflows.review import RULES_V2

pytestmark = pytest.mark.temporal


def histories() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def all_histories() -> list[Path]:
    """Current and older recordings."""
    return sorted(HISTORIES.rglob("*.json"))


def test_every_scenario_has_a_recorded_history_when_suite_runs() -> None:
    assert sorted(p.stem for p in histories()) == sorted(SCENARIOS)


def test_histories_from_before_lean_claims_take_the_old_path() -> None:
    """The older recordings schedule their claims as activity tasks; the current ones run them locally."""
    older = sorted((HISTORIES / "before_lean_claims").glob("*.json"))
    assert [p.stem for p in older] == ["callback_signal_then_connected", "callback_unreachable"]
    for path in older:
        assert "claim_callback" in _scheduled_activities(path)
    for path in histories():
        if path.stem.startswith("callback_"):
            assert "claim_callback" not in _scheduled_activities(path)


def _patches(path: Path) -> set[str]:
    """The `workflow.patched` ids a history recorded."""
    found = set()
    for event in load_history(path).events:
        attrs = event.marker_recorded_event_attributes
        if event.HasField("marker_recorded_event_attributes") and attrs.marker_name == "core_patch":
            found.add(json.loads(attrs.details["patch-data"].payloads[0].data)["id"])
    return found


def test_new_behaviour_is_recorded_behind_its_patches() -> None:
    """The invalid-number path and the second review rules are recorded behind their patch ids; the
    recordings made before them carry neither, and a valid number's callback never asks for the check."""
    assert NUMBER_CHECK in _patches(HISTORIES / "callback_number_not_e164.json")
    for name in ("callback_unreachable", "callback_voicemail_then_reached", "callback_signal_then_connected"):
        assert NUMBER_CHECK not in _patches(HISTORIES / f"{name}.json")
    for name in ("review_completed", "review_overdue", "review_transfer_retried"):
        assert RULES_V2 in _patches(HISTORIES / f"{name}.json")
    for path in (HISTORIES / "before_evidence").glob("*.json"):
        assert not _patches(path) & {NUMBER_CHECK, RULES_V2}


def test_widening_is_asked_at_the_start_of_every_callback_and_old_recordings_keep_their_path() -> None:
    """Every callback recorded now asks `WIDENING_FROM_START` at its first step and never the first patch;
    the recordings made before it ask `WIDENING` only where a claim reported widening, and still replay
    (`test_recorded_histories_replay`)."""
    for path in histories():
        if path.stem.startswith("callback_"):
            assert WIDENING_FROM_START in _patches(path), path
        assert WIDENING not in _patches(path), path
    older = HISTORIES / "before_widening_from_start"
    assert WIDENING in _patches(older / "callback_widened_then_connected.json")
    for path in all_histories():
        if path.parent.name != "before_widening_from_start" or path.stem != "callback_widened_then_connected":
            assert WIDENING not in _patches(path), path
        if path.parent.name.startswith("before_"):
            assert WIDENING_FROM_START not in _patches(path), path


def test_widening_marker_is_the_first_step_of_every_new_callback() -> None:
    """The fixed point: the patch marker precedes the first claim in every callback recorded now, so replay
    never depends on what a claim returned."""
    for path in histories():
        if not path.stem.startswith("callback_") or path.stem == "callback_number_not_e164":
            continue
        kinds = []
        for event in load_history(path).events:
            attrs = event.marker_recorded_event_attributes
            if event.HasField("marker_recorded_event_attributes"):
                if attrs.marker_name == "core_patch":
                    kinds.append(json.loads(attrs.details["patch-data"].payloads[0].data)["id"])
                else:
                    kinds.append(attrs.marker_name)
        assert WIDENING_FROM_START in kinds, path
        assert kinds.index(WIDENING_FROM_START) < kinds.index("core_local_activity"), (path, kinds)


def test_review_notifications_are_recorded_as_activities_of_the_review() -> None:
    """Who was told is in the history (a replay sends nothing again); reviews without contacts ask none."""
    assert "notify_supervisor" in _scheduled_activities(HISTORIES / "review_notified_then_escalated.json")
    for name in ("review_completed", "review_overdue", "review_transfer_retried"):
        assert "notify_supervisor" not in _scheduled_activities(HISTORIES / f"{name}.json")


def _scheduled_activities(path: Path) -> set[str]:
    return {
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in load_history(path).events
        if event.HasField("activity_task_scheduled_event_attributes")
    }


@pytest.mark.parametrize("path", all_histories(), ids=lambda p: str(p.relative_to(HISTORIES)))
async def test_history_replays_when_workflow_code_is_current(path: Path) -> None:
    history = load_history(path)
    result = await new_replayer().replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@workflow.defn(name="QueueCallbackWorkflow", sandboxed=False)
class ReorderedCallbackWorkflow:
    """The callback workflow with a timer slipped in before its first claim: an incompatible change."""

    @workflow.run
    async def run(self, data: QueueCallbackInput) -> CallbackStatus:
        await workflow.sleep(timedelta(seconds=1))
        return CallbackStatus(
            call_id=data.call_id, state=CallbackPhase.UNSPECIFIED, team_id="", masked_number=""
        )


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
    replayer = new_replayer()
    for path in written:
        await replayer.replay_workflow(load_history(path))
