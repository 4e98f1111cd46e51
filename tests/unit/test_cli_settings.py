"""A bad ESCALADE_* setting stops every serve command with one readable line naming the variable (exit 2)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from escalade_cli.main import app


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["routing", "serve"], "ESCALADE_METRICS_PORT", "99999"),
        (["worker"], "ESCALADE_MAX_CACHED_WORKFLOWS", "-1"),
        (["edge", "serve"], "ESCALADE_ROUTING_DEADLINE_MS", "1"),
        (["edge", "serve"], "ESCALADE_VAPI_HMAC_ENCODING", "base32"),
    ],
)
def test_a_bad_setting_names_its_variable_when_a_serve_command_starts(
    monkeypatch: pytest.MonkeyPatch, command: list[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert f"invalid setting {variable}: " in result.stderr
    assert "Traceback" not in result.output


def test_hmac_algorithm_and_encoding_are_read_case_insensitively(monkeypatch: pytest.MonkeyPatch) -> None:
    from webhook_edge.settings import EdgeSettings

    monkeypatch.setenv("ESCALADE_VAPI_HMAC_ALGORITHM", " SHA512 ")
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_ENCODING", "Base64")
    settings = EdgeSettings()
    assert (settings.vapi_hmac_algorithm, settings.vapi_hmac_encoding) == ("sha512", "base64")
