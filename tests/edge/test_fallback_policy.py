"""The edge's fallback line is the policy file's: with routing down, Vapi gets the number (and the sentences)
the policy configures, on both tool paths; ESCALADE_FALLBACK_NUMBER still overrides it; only with neither is
the built-in number used, with a start-up warning; and the line follows the file when it changes."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from escalade_cli.local_server import LocalServer, local_server
from escalade_platform.settings import default_policy_path
from routing_service.policy.loader import load_policy
from tests.edge.edge_support import SECRET, audit, check_destination_numbers, load_fixture, running_edge
from webhook_edge import fallback as fallback_module
from webhook_edge.fallback import EdgeFallback, LineOrigin, fallback_line
from webhook_edge.settings import (
    DEFAULT_FALLBACK_HANDOFF,
    DEFAULT_FALLBACK_MESSAGE,
    DEFAULT_FALLBACK_NUMBER,
    EdgeSettings,
)
from webhook_edge.translate import transfer_unavailable_result

TRANSFER_REQUEST = "transfer-destination-request.enterprise-technical-advanced.json"
TOOL_CALLS = "tool-calls.escalate-to-support.json"
POLICY_NUMBER = "+15550177001"
POLICY_SPOKEN = "+1 555 017 7001"
POLICY_CALLER_MESSAGE = "Routing is having trouble, so I'm putting you through to our front desk."
POLICY_HANDOFF = "Front desk: an escalated caller, routing was unavailable."
OVERRIDE = "+15550100777"
NOT_STARTED = "The transfer could not be started"


def write_policy(path: Path, fallback: dict[str, Any]) -> Path:
    """The checkout's example policy with its `fallback` section replaced."""
    doc = yaml.safe_load(default_policy_path().read_text())
    doc["fallback"] = fallback
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def policy_fallback(
    number: str = POLICY_NUMBER,
    caller_message: str = POLICY_CALLER_MESSAGE,
    handoff_message: str = POLICY_HANDOFF,
    mode: str = "warm-transfer-say-message",
    **destination: str,
) -> dict[str, Any]:
    """A policy `fallback` section: `number` unless `destination` gives a `sip_uri`."""
    return {
        "destination": destination if "sip_uri" in destination else {"number": number, **destination},
        "transfer": {
            "mode": mode,
            "caller_message": caller_message,
            "handoff_message": handoff_message,
        },
    }


def closed_port_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def down_settings(tmp_path: Path, **overrides: Any) -> EdgeSettings:
    """An edge whose routing address has nothing listening."""
    values: dict[str, Any] = {
        "vapi_secret": SecretStr(SECRET),
        "routing_address": closed_port_address(),
        "routing_deadline_ms": 300,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'edge.db'}",
    }
    values.update(overrides)
    return EdgeSettings(**values)


def assert_valid_transfer_response(sdk: SimpleNamespace, body: dict[str, Any]) -> None:
    model = sdk.TransferResponse.model_validate(body)
    problems: list[str] = []
    audit(model, body, "$", problems)
    check_destination_numbers(body["destination"], problems)
    assert problems == []


def events(logs: Sequence[Mapping[str, Any]], name: str) -> list[Mapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


class ControlRecorder:
    """Vapi's control URL: records each POST and answers `status`."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200

    async def control(self, request: Request) -> JSONResponse:
        self.received.append(json.loads(await request.body()))
        return JSONResponse({"ok": True}, status_code=self.status)


@pytest.fixture
async def vapi_control() -> AsyncIterator[tuple[ControlRecorder, LocalServer]]:
    recorder = ControlRecorder()
    app = Starlette(routes=[Route("/control", recorder.control, methods=["POST"])])
    async with local_server(app, lifespan="on") as server:
        yield recorder, server


def tool_calls_message(control_url: str) -> dict[str, Any]:
    doc = copy.deepcopy(load_fixture(TOOL_CALLS))
    doc["message"]["call"]["monitor"]["controlUrl"] = control_url
    return doc


def only_result(response: Any) -> str:
    assert response.status_code == 200
    [entry] = response.json()["results"]
    result: str = entry["result"]
    return result


# --- routing down: Vapi gets the policy's line -----------------------------------------------------------
async def test_transfer_request_gets_the_policy_line_when_routing_is_down(
    tmp_path: Path, vapi_sdk: SimpleNamespace
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", policy_fallback())
    async with running_edge(down_settings(tmp_path, policy=policy)) as edge:
        response = await edge.post(load_fixture(TRANSFER_REQUEST))
    assert response.status_code == 200
    body = response.json()
    assert_valid_transfer_response(vapi_sdk, body)
    destination = body["destination"]
    assert destination["type"] == "number" and destination["number"] == POLICY_NUMBER
    assert destination["message"] == POLICY_CALLER_MESSAGE
    assert destination["transferPlan"]["mode"] == "warm-transfer-say-message"
    assert destination["transferPlan"]["message"] == POLICY_HANDOFF


async def test_tool_call_transfers_to_the_policy_line_when_routing_is_down(
    tmp_path: Path, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    policy = write_policy(tmp_path / "policy.yaml", policy_fallback())
    async with running_edge(down_settings(tmp_path, policy=policy)) as edge:
        result = only_result(await edge.post(tool_calls_message(f"{server.url}/control")))
    assert result == POLICY_CALLER_MESSAGE
    [sent] = recorder.received
    assert sent["destination"]["number"] == POLICY_NUMBER and sent["content"] == POLICY_CALLER_MESSAGE


async def test_tool_result_offers_the_policy_line_when_routing_and_the_transfer_fail(
    tmp_path: Path, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    recorder.status = 500
    policy = write_policy(tmp_path / "policy.yaml", policy_fallback())
    async with running_edge(down_settings(tmp_path, policy=policy)) as edge:
        result = only_result(await edge.post(tool_calls_message(f"{server.url}/control")))
    assert result.startswith(NOT_STARTED)
    assert POLICY_SPOKEN in result


async def test_setting_overrides_the_policy_line_when_both_are_set(
    tmp_path: Path, vapi_control: tuple[ControlRecorder, LocalServer]
) -> None:
    recorder, server = vapi_control
    policy = write_policy(tmp_path / "policy.yaml", policy_fallback())
    settings = down_settings(tmp_path, policy=policy, fallback_number=OVERRIDE)
    async with running_edge(settings) as edge:
        destination = (await edge.post(load_fixture(TRANSFER_REQUEST))).json()["destination"]
        result = only_result(await edge.post(tool_calls_message(f"{server.url}/control")))
    assert destination["number"] == OVERRIDE
    assert destination["message"] == POLICY_CALLER_MESSAGE  # the sentences are still the policy's
    [sent] = recorder.received
    assert sent["destination"]["number"] == OVERRIDE and result == POLICY_CALLER_MESSAGE


async def test_built_in_line_is_used_with_a_warning_when_there_is_no_policy_and_no_setting(
    tmp_path: Path,
) -> None:
    with capture_logs() as logs:
        async with running_edge(down_settings(tmp_path, policy=None)) as edge:
            destination = (await edge.post(load_fixture(TRANSFER_REQUEST))).json()["destination"]
    assert destination["number"] == DEFAULT_FALLBACK_NUMBER
    assert destination["message"] == DEFAULT_FALLBACK_MESSAGE
    assert destination["transferPlan"]["message"] == DEFAULT_FALLBACK_HANDOFF
    [warning] = events(logs, "fallback_line_built_in")
    assert warning["log_level"] == "warning" and "no policy file" in warning["reason"]


async def test_no_warning_when_the_setting_gives_the_line_without_a_policy(tmp_path: Path) -> None:
    with capture_logs() as logs:
        async with running_edge(down_settings(tmp_path, policy=None, fallback_number=OVERRIDE)) as edge:
            destination = (await edge.post(load_fixture(TRANSFER_REQUEST))).json()["destination"]
    assert destination["number"] == OVERRIDE
    assert events(logs, "fallback_line_built_in") == []
    [announced] = events(logs, "fallback_line")
    assert announced["origin"] == "setting"


async def test_built_in_line_with_a_warning_when_the_policy_file_does_not_load(tmp_path: Path) -> None:
    broken = tmp_path / "policy.yaml"
    broken.write_text("name: [unclosed\n")
    with capture_logs() as logs:
        async with running_edge(down_settings(tmp_path, policy=broken)) as edge:
            destination = (await edge.post(load_fixture(TRANSFER_REQUEST))).json()["destination"]
    assert destination["number"] == DEFAULT_FALLBACK_NUMBER
    assert events(logs, "fallback_policy_unreadable")
    [warning] = events(logs, "fallback_line_built_in")
    assert "no usable fallback line" in warning["reason"]


# --- the line follows the policy file ----------------------------------------------------------------------
async def test_running_edge_follows_the_policy_file_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fallback_module, "POLICY_POLL_SECONDS", 0.05)
    policy = write_policy(tmp_path / "policy.yaml", policy_fallback())
    async with running_edge(down_settings(tmp_path, policy=policy)) as edge:
        first = (await edge.post(load_fixture(TRANSFER_REQUEST))).json()["destination"]
        write_policy(policy, policy_fallback(number="+15550177999", caller_message="Moved line."))
        for _ in range(100):  # up to 5 s; the watcher polls every 0.05 s
            await asyncio.sleep(0.05)
            if edge.app.state.webhook.fallback.line.number == "+15550177999":
                break
        second = (await edge.post(load_fixture(TRANSFER_REQUEST))).json()["destination"]
    assert first["number"] == POLICY_NUMBER
    assert second["number"] == "+15550177999" and second["message"] == "Moved line."


async def test_a_bad_policy_edit_keeps_the_last_good_line(tmp_path: Path) -> None:
    policy = write_policy(tmp_path / "policy.yaml", policy_fallback())
    fallback = EdgeFallback.load(down_settings(tmp_path, policy=policy))
    assert await fallback.refresh() is False  # unchanged on disk
    policy.write_text(policy.read_text().replace(POLICY_NUMBER, "not a number"))
    with capture_logs() as logs:
        assert await fallback.refresh() is False
    assert events(logs, "fallback_policy_unreadable")
    assert fallback.destination()["number"] == POLICY_NUMBER
    write_policy(policy, policy_fallback(number="+15550177002"))
    assert await fallback.refresh() is True
    assert fallback.destination()["number"] == "+15550177002" and fallback.reloads == 1


async def test_policy_written_after_start_up_replaces_the_built_in_line(tmp_path: Path) -> None:
    later = tmp_path / "policy.yaml"
    fallback = EdgeFallback.load(down_settings(tmp_path, policy=later))
    assert fallback.line.origin is LineOrigin.BUILT_IN
    write_policy(later, policy_fallback())
    assert await fallback.refresh() is True
    assert (fallback.line.origin, fallback.line.number) == (LineOrigin.POLICY, POLICY_NUMBER)


# --- what the line is made of ------------------------------------------------------------------------------
def test_sip_line_from_the_policy_is_a_sip_destination(tmp_path: Path, vapi_sdk: SimpleNamespace) -> None:
    policy = load_policy(write_policy(tmp_path / "p.yaml", policy_fallback(sip_uri="sip:desk@example.com")))
    settings = down_settings(tmp_path, policy=None)
    line = fallback_line(settings, policy)
    destination = EdgeFallback(settings, policy).destination()
    assert_valid_transfer_response(vapi_sdk, {"destination": destination})
    assert destination["type"] == "sip" and destination["sipUri"] == "sip:desk@example.com"
    assert "number" not in destination and line.number == ""


def test_extension_of_the_policy_line_is_dialled(tmp_path: Path, vapi_sdk: SimpleNamespace) -> None:
    doc = policy_fallback(extension="4321")
    policy = load_policy(write_policy(tmp_path / "p.yaml", doc))
    destination = EdgeFallback(down_settings(tmp_path, policy=None), policy).destination()
    assert_valid_transfer_response(vapi_sdk, {"destination": destination})
    assert destination["number"] == POLICY_NUMBER and destination["extension"] == "4321"


def test_message_settings_override_the_policy_sentences_when_set(tmp_path: Path) -> None:
    policy = load_policy(write_policy(tmp_path / "p.yaml", policy_fallback()))
    settings = down_settings(
        tmp_path, policy=None, fallback_message="Hold on.", fallback_handoff_message="Hi"
    )
    destination = EdgeFallback(settings, policy).destination()
    assert destination["number"] == POLICY_NUMBER
    assert destination["message"] == "Hold on." and destination["transferPlan"]["message"] == "Hi"


def test_policy_sentence_with_a_placeholder_is_left_to_routing(tmp_path: Path) -> None:
    doc = policy_fallback(caller_message="Connecting you about your {issue_category} issue.")
    policy = load_policy(write_policy(tmp_path / "p.yaml", doc))
    with capture_logs() as logs:
        line = fallback_line(down_settings(tmp_path, policy=None), policy)
    assert line.caller_message == DEFAULT_FALLBACK_MESSAGE and line.handoff_message == POLICY_HANDOFF
    [unused] = events(logs, "fallback_policy_message_unused")
    assert unused["field"] == "fallback.transfer.caller_message"


def test_empty_policy_handoff_leaves_the_built_in_handoff(tmp_path: Path) -> None:
    doc = policy_fallback(handoff_message="", mode="blind-transfer")
    policy = load_policy(write_policy(tmp_path / "p.yaml", doc))
    line = fallback_line(down_settings(tmp_path, policy=None), policy)
    assert line.handoff_message == DEFAULT_FALLBACK_HANDOFF and line.caller_message == POLICY_CALLER_MESSAGE


def test_tool_result_offers_no_number_when_the_line_is_sip() -> None:
    result = transfer_unavailable_result("")
    assert result.startswith(NOT_STARTED) and result.endswith("call them back.")
    assert "support line" not in result and "+" not in result
