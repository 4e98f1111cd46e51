"""Worker settings read from the environment: the workflow cache and sandbox are sized for many waiting
callbacks, and a bad value is refused with the setting's name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workflows.settings import WorkerSettings
from workflows.worker import workflow_runner


def test_workflow_cache_holds_two_thousand_workflows_by_default() -> None:
    assert WorkerSettings().max_cached_workflows == 2_000


def test_workflow_cache_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_MAX_CACHED_WORKFLOWS", "25000")
    assert WorkerSettings().max_cached_workflows == 25_000


def test_negative_workflow_cache_size_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_MAX_CACHED_WORKFLOWS", "-1")
    with pytest.raises(ValidationError, match="max_cached_workflows"):
        WorkerSettings()


def test_sandbox_shares_modules_by_default() -> None:
    runner = workflow_runner(WorkerSettings())
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert runner.restrictions.passthrough_all_modules


def test_strict_sandbox_reimports_modules_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_WORKFLOW_SANDBOX", "strict")
    runner = workflow_runner(WorkerSettings())
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert not runner.restrictions.passthrough_all_modules


def test_unknown_sandbox_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_WORKFLOW_SANDBOX", "none")
    with pytest.raises(ValidationError, match="workflow_sandbox"):
        WorkerSettings()


def test_reconciler_runs_every_minute_after_a_half_minute_grace_by_default() -> None:
    settings = WorkerSettings()
    assert (settings.reconcile_seconds, settings.reconcile_grace_seconds) == (60.0, 30.0)


def test_reconciler_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_RECONCILE_SECONDS", "0")
    monkeypatch.setenv("ESCALADE_RECONCILE_GRACE_SECONDS", "120")
    settings = WorkerSettings()
    assert (settings.reconcile_seconds, settings.reconcile_grace_seconds) == (0.0, 120.0)
