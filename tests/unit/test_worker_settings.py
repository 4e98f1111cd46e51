"""Worker settings read from the environment: the workflow cache is sized for many waiting callbacks and a
bad value is refused with the setting's name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workflows.settings import WorkerSettings


def test_workflow_cache_holds_ten_thousand_waiting_callbacks_by_default() -> None:
    assert WorkerSettings().max_cached_workflows == 10_000


def test_workflow_cache_size_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_MAX_CACHED_WORKFLOWS", "25000")
    assert WorkerSettings().max_cached_workflows == 25_000


def test_negative_workflow_cache_size_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_MAX_CACHED_WORKFLOWS", "-1")
    with pytest.raises(ValidationError, match="max_cached_workflows"):
        WorkerSettings()
