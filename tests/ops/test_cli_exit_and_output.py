"""The `escalade` console script: its exit after Temporal was loaded (no interpreter teardown), and output
that shows user and trace text literally (no rich markup, no wrapping of error lines)."""

from __future__ import annotations

import os
import sys

import pytest
import typer

from escalade_cli import main


class Exited(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """os._exit replaced by a recorder that stops the call (so the test process lives on)."""
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    return codes


@pytest.mark.parametrize(("argv", "code"), [(["--help"], 0), (["no-such-command"], 2)])
def test_exit_skips_teardown_with_the_commands_code_when_temporal_was_loaded(
    monkeypatch: pytest.MonkeyPatch, exits: list[int], argv: list[str], code: int
) -> None:
    monkeypatch.setattr(sys, "argv", ["escalade", *argv])
    monkeypatch.setattr(main, "_temporal_loaded", lambda: True)
    with pytest.raises(Exited):
        main.run()
    assert exits == [code]


def test_exit_is_the_ordinary_one_when_temporal_was_never_loaded(
    monkeypatch: pytest.MonkeyPatch, exits: list[int]
) -> None:
    monkeypatch.setattr(sys, "argv", ["escalade", "--help"])
    monkeypatch.setattr(main, "_temporal_loaded", lambda: False)
    with pytest.raises(SystemExit) as done:
        main.run()
    assert done.value.code == 0
    assert exits == []


def test_a_plain_return_from_the_app_exits_with_0_when_temporal_was_loaded(
    monkeypatch: pytest.MonkeyPatch, exits: list[int]
) -> None:
    monkeypatch.setattr(main, "app", lambda: None)
    monkeypatch.setattr(main, "_temporal_loaded", lambda: True)
    with pytest.raises(Exited):
        main.run()
    assert exits == [0]


@pytest.mark.parametrize(("given", "code"), [(None, 0), (3, 3), ("a message", 1)])
def test_exit_code_follows_sys_exit_rules(given: object, code: int) -> None:
    assert main._exit_code(given) == code


def test_fail_prints_the_message_whole_and_literal_whatever_its_length(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from escalade_cli.console import fail

    path = "/tmp/" + "x" * 120 + "/bad.yaml"
    message = f"policy rejected: {path}: expected ',' or ']' near '[bold]' and [/]"
    with pytest.raises(typer.Exit) as done:
        fail(message)
    assert done.value.exit_code == 1
    err = capsys.readouterr().err
    assert err == f"error: {message}\n", "one line, brackets kept, nothing wrapped"


def test_callback_and_review_notes_print_literally_when_they_hold_brackets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from types import SimpleNamespace

    from escalade_cli.callbacks import _print_status
    from escalade_cli.reviews import _print_review

    note = "customer said [urgent] and [/] twice"
    _print_status(
        SimpleNamespace(
            call_id="call-1",
            state="waiting",
            team_id="technical",
            masked_number="+1******0123",
            position=1,
            attempts=0,
            max_attempts=3,
            next_attempt_at=None,
            widening="",
            promise_state="",
            promised_by=None,
            agent_name="",
            agent_id="",
            last_outcome="",
            note=note,
        )
    )
    _print_review(
        SimpleNamespace(
            call_id="call-[1]",
            state="awaiting-review",
            team_id="",
            agent_id="",
            deadline=None,
            overdue=False,
            verdict="",
            note=note,
            findings=[],
            notices=[SimpleNamespace(step=0, contact="lead", delivered=False, detail="HTTP [404]", at=None)],
        )
    )
    out = capsys.readouterr().out
    assert out.count(note) == 2 and "review of call-[1]" in out
    assert "notified lead (step 0, -): not delivered, HTTP [404]" in out


def test_a_completed_review_says_what_the_verdict_did_and_taught(capsys: pytest.CaptureFixture[str]) -> None:
    from escalade_cli.reviews import _print_review
    from workflows.inputs import ReviewState, ReviewStatus

    _print_review(
        ReviewStatus(
            call_id="call-1",
            state=ReviewState.COMPLETED,
            verdict="wrong-category",
            outcome="overturned",
            learned=["preferred team billing for calls stated as technical [until 2027-01-06]"],
        )
    )
    out = " ".join(capsys.readouterr().out.split())
    assert "the verdict overturned the decision" in out
    assert "learned: preferred team billing for calls stated as technical [until 2027-01-06]" in out


def test_trace_table_and_simulation_table_keep_bracketed_text() -> None:
    from rich.console import Console

    from escalade_cli.policy import trace_table
    from escalade_cli.scenarios import SCENARIOS
    from escalade_cli.simulate import Outcome, outcome_table
    from routing_service.domain.models import TraceOutcome, TraceStep

    console = Console(width=250, record=True)
    step = TraceStep(
        "rule", "enterprise-tier", TraceOutcome.SKIPPED, "skipped (tier standard not in [enterprise])"
    )
    console.print(trace_table([step]))
    outcome = Outcome(
        SCENARIOS["standard-billing"],
        "c1",
        200,
        3.2,
        "+15550100301",
        "warm-transfer-say-message",
        "billing",
        "team",
        "rule billing-and-account: team billing line",
        notes=["tool arguments missing"],
    )
    console.print(outcome_table([outcome]))
    text = console.export_text()
    assert "skipped (tier standard not in [enterprise])" in text
    assert "team billing line [tool arguments missing]" in text


def test_callbacks_table_keeps_each_row_on_one_line_when_stdout_is_captured(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without a terminal rich assumes 80 columns and folded a workflow id over several lines, so `callbacks
    list | grep callback-` found nothing whole; captured output is printed at the table's natural width."""
    from datetime import UTC, datetime

    from escalade_cli.callbacks import print_rows
    from escalade_cli.console import console
    from workflows.client import WorkflowRow

    assert not console.is_terminal
    workflow_id = "callback-call_" + "7" * 40
    row = WorkflowRow(
        workflow_id=workflow_id,
        status="RUNNING",
        callback_state="waiting",
        tier="premium",
        category="technical",
        complexity="advanced",
        started_at=datetime(2026, 12, 7, 9, 30, tzinfo=UTC),
        memo={},
    )
    print_rows("Callbacks", [row, row], with_state=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if workflow_id in line]
    assert len(lines) == 2
    cells = [cell.strip() for cell in lines[0].strip().strip("│").split("│")]
    assert cells == [
        workflow_id,
        "RUNNING",
        "waiting",
        "premium",
        "technical",
        "advanced",
        "2026-12-07 09:30:00 UTC",
    ]
