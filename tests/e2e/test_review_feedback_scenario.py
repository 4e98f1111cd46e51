"""`escalade simulate review-feedback` against `escalade dev`: a user runs the scenario and reads that the
review found the mismatch, the verdict overturned the decision and taught a preferred team, and the
customer's next call went to it (the trace line in the notes)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.devstack import clean_env, escalade_dev, escalade_script, free_port
from tests.e2e.test_dev_stack import _cells, _stop

pytestmark = [pytest.mark.e2e, pytest.mark.temporal]


@pytest.mark.timeout(300)
def test_review_feedback_scenario_shows_the_verdict_changing_the_next_decision(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with escalade_dev(state) as run:
        secret = (state / "webhook-secret").read_text().strip()
        edge, routing = f"http://127.0.0.1:{run.ports['edge']}", f"127.0.0.1:{run.ports['routing']}"
        env = {
            **clean_env(),
            "ESCALADE_VAPI_SECRET": secret,
            "ESCALADE_TEMPORAL_ADDRESS": f"127.0.0.1:{run.ports['temporal']}",
            "ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE": str(state / "temporal-payload-keys.json"),
        }
        argv = [escalade_script(), "simulate", "--edge", edge, "--routing", routing, "--callback-wait", "120"]
        result = subprocess.run(
            [*argv, "review-feedback"], env=env, capture_output=True, text=True, timeout=200, cwd=tmp_path
        )
        assert result.returncode == 0, result.stdout + result.stderr + "\n" + run.output
        cells = _cells(result.stdout, "review-feedback")
        assert cells[-1] == "OK", result.stdout
        text = " ".join(result.stdout.split())
        for shown in (
            "category_mismatch",
            "verdict wrong-category: overturned",
            "next call: billing instead of technical",
            "review of call",
        ):
            assert shown in text, result.stdout
        _stop(run, signal.SIGTERM)


@pytest.mark.timeout(300)
def test_review_notice_scenario_receives_the_supervisors_notification(tmp_path: Path) -> None:
    """The dev stack's worker is pointed at the receiver `escalade simulate review-notice` starts."""
    port = free_port()
    state = tmp_path / "state"
    contact = {"ESCALADE_NOTIFY_TECH_SUPERVISOR_URL": f"http://127.0.0.1:{port}/tech-supervisor"}
    with escalade_dev(state, **contact) as run:
        secret = (state / "webhook-secret").read_text().strip()
        edge, routing = f"http://127.0.0.1:{run.ports['edge']}", f"127.0.0.1:{run.ports['routing']}"
        env = {
            **clean_env(),
            "ESCALADE_VAPI_SECRET": secret,
            "ESCALADE_TEMPORAL_ADDRESS": f"127.0.0.1:{run.ports['temporal']}",
            "ESCALADE_TEMPORAL_PAYLOAD_KEY_FILE": str(state / "temporal-payload-keys.json"),
        }
        argv = [escalade_script(), "simulate", "--edge", edge, "--routing", routing, "--callback-wait", "120"]
        argv += ["--notify-port", str(port), "review-notice"]
        result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=200, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr + "\n" + run.output
        assert _cells(result.stdout, "review-notice")[-1] == "OK", result.stdout
        text = " ".join(result.stdout.split())
        for shown in (
            "notified /tech-supervisor",
            "review.needs_verdict",
            "transfer_failed",
            "verdict resolved",
        ):
            assert shown in text, result.stdout
        _stop(run, signal.SIGTERM)
