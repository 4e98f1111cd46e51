"""A bad ESCALADE_* setting stops every serve command with one readable line naming the variable (exit 2)."""

from __future__ import annotations

from pathlib import Path

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


@pytest.mark.parametrize(
    "command",
    [["edge", "serve", "--insecure-dev"], ["worker"], ["callbacks", "list"], ["reviews", "list"], ["status"]],
)
def test_a_missing_temporal_certificate_stops_every_temporal_client_with_one_line(
    monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.setenv("ESCALADE_TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_SERVER_CA_CERT", "/nonexistent/temporal-ca.pem")
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting ESCALADE_TEMPORAL_TLS_SERVER_CA_CERT: no file at /nonexistent/temporal-ca.pem"
    ]


def test_a_missing_temporal_certificate_stops_the_standalone_outbox_relay_with_one_line() -> None:
    import subprocess
    import sys

    env = {
        "PATH": "/usr/bin:/bin",
        "ESCALADE_TEMPORAL_ADDRESS": "127.0.0.1:7233",
        "ESCALADE_TEMPORAL_TLS_CLIENT_CERT": "/nonexistent/client.pem",
        "ESCALADE_TEMPORAL_TLS_CLIENT_KEY": "/nonexistent/client.key",
    }
    result = subprocess.run(
        [sys.executable, "-m", "webhook_edge.relay"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting ESCALADE_TEMPORAL_TLS_CLIENT_CERT: no file at /nonexistent/client.pem"
    ]


@pytest.mark.parametrize(
    ("command", "prefix"),
    [
        (["edge", "serve", "--insecure-dev"], ""),
        (["worker"], "cannot start the worker: "),
        (["callbacks", "list"], "list callbacks: "),
    ],
)
def test_a_temporal_tls_file_without_pem_stops_the_command_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, command: list[str], prefix: str
) -> None:
    not_pem = tmp_path / "client.pem"
    not_pem.write_text("not a certificate\n")
    monkeypatch.setenv("ESCALADE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    monkeypatch.setenv("ESCALADE_WORKER_METRICS_ADDRESS", "")
    monkeypatch.setenv("ESCALADE_TEMPORAL_ADDRESS", "127.0.0.1:7233")
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_CLIENT_CERT", str(not_pem))
    monkeypatch.setenv("ESCALADE_TEMPORAL_TLS_CLIENT_KEY", str(not_pem))
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {prefix}ESCALADE_TEMPORAL_TLS_CLIENT_CERT {not_pem} holds no PEM certificate"
    )
    assert "Traceback" not in result.output
