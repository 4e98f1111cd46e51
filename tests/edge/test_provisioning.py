"""`escalade vapi provision`: the bodies (checked against the seed and Vapi's SDK models) and the
create-or-update run against a local stand-in for Vapi's API."""

from __future__ import annotations

import json
import socket
import typing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
from typer.testing import CliRunner

from escalade_cli import vapi as vapi_cli
from escalade_cli.main import app
from routing_service.domain.models import (
    ComplexityPolicy,
    Destination,
    FallbackPolicy,
    Policy,
    QueuePolicy,
    Rule,
    Team,
    TransferMode,
    TransferTemplate,
)
from tests.edge.vapi_api_standin import VapiStandIn, running_vapi
from webhook_edge.provisioning import (
    ASSISTANT_NAME,
    FIRST_MESSAGE,
    MASK,
    SYSTEM_PROMPT,
    TOOL_ID_PLACEHOLDER,
    ProvisionConfig,
    ToolStyle,
    VapiApiError,
    VapiUnreachable,
    assistant_body,
    mask_secret,
    plan,
    provision,
    tool_body,
    webhook_url,
)

SECRET = "whsec-test-0123456789abcdef"
API_KEY = "vapi-private-key-1234"

# The seed tutorial's section 1 body (curl / requests examples), verbatim.
SEED_TOOL = {
    "type": "transferCall",
    "destinations": [],
    "function": {
        "name": "escalateToSupport",
        "description": "Escalate calls to appropriate support specialists based on customer tier and issue "
        "complexity",
        "parameters": {
            "type": "object",
            "properties": {
                "issue_category": {
                    "type": "string",
                    "description": "Category of customer issue",
                    "enum": ["technical", "billing", "account", "product"],
                },
                "complexity_level": {
                    "type": "string",
                    "description": "Issue complexity level",
                    "enum": ["basic", "intermediate", "advanced", "critical"],
                },
                "customer_context": {
                    "type": "string",
                    "description": "Relevant customer information for routing",
                },
                "escalation_reason": {
                    "type": "string",
                    "description": "Why this needs escalation vs self-service",
                },
            },
            "required": ["issue_category", "complexity_level"],
        },
    },
}
SEED_PROMPT = (
    "You are TechCorp's intelligent customer support assistant. Your job is to:\n\n"
    "1. Help customers resolve issues when possible\n2. Assess issue complexity and customer needs\n"
    "3. Escalate to human specialists when appropriate using the escalateToSupport function\n\n"
    "Try to resolve simple issues first. For complex issues or when customers request human help, escalate "
    "intelligently based on:\n- Issue category (technical, billing, account, product)\n"
    "- Complexity level (basic, intermediate, advanced, critical)\n- Customer context and history\n\n"
    "Always be professional and efficient in your support."
)


def make_policy(categories: tuple[str, ...] = ("technical", "billing", "account", "product")) -> Policy:
    """A small policy: provisioning only reads its categories, the rest must merely be valid."""
    say = TransferTemplate("Connecting you with our support team.", TransferMode.WARM_TRANSFER_SAY_MESSAGE)
    general = Team("general", "General Support", Destination(number="+15550100500"), say)
    return Policy(
        name="test",
        default_tier="standard",
        default_category="general",
        categories=categories,
        teams={"general": general},
        rules=(Rule("everything", "general"),),
        complexity=ComplexityPolicy(),
        queue=QueuePolicy(line=Destination(number="+15550100600"), transfer=say),
        fallback=FallbackPolicy(destination=Destination(number="+15550100900"), transfer=say),
        assignment_ttl=timedelta(hours=2),
    )


def config(style: ToolStyle = ToolStyle.TRANSFER, url: str = "https://edge.example.com") -> ProvisionConfig:
    return ProvisionConfig(server_url=url, secret=SECRET, tool_style=style)


@pytest.fixture
def vapi_api() -> Iterator[VapiStandIn]:
    with running_vapi(API_KEY) as stand_in:
        yield stand_in


def run(stand_in: VapiStandIn, style: ToolStyle = ToolStyle.TRANSFER, **kwargs: Any) -> Any:
    return provision(
        make_policy(), config(style), api_url=stand_in.url, api_key=API_KEY, max_retries=0, **kwargs
    )


# ----------------------------------------------------------------------------------------------------
# SDK model audit (as /work/shared/vapi/validate_fixtures.py does): unknown keys and open-enum strings
# ----------------------------------------------------------------------------------------------------
def _literals(annotation: Any) -> tuple[set[Any], bool]:
    found: set[Any] = set()
    has_any = False

    def walk(a: Any) -> None:
        nonlocal has_any
        if a is typing.Any:
            has_any = True
            return
        origin = typing.get_origin(a)
        if origin is typing.Literal:
            found.update(typing.get_args(a))
        elif origin in (typing.Union, typing.Annotated) or str(origin) == "<class 'types.UnionType'>":
            for arg in typing.get_args(a):
                walk(arg)

    walk(annotation)
    return found, has_any


def audit(value: Any, raw: Any, path: str = "$") -> list[str]:
    """Problems: JSON keys that are no field alias of the SDK model, strings outside an SDK enum."""
    problems: list[str] = []
    if isinstance(value, pydantic.BaseModel) and isinstance(raw, dict):
        fields = type(value).model_fields
        by_alias = {(f.alias or n): n for n, f in fields.items()}
        for key, raw_child in raw.items():
            name = by_alias.get(key)
            if name is None:
                problems.append(f"{path}.{key}: not a field of {type(value).__name__}")
                continue
            child = getattr(value, name, None)
            if isinstance(child, str):
                literals, is_open = _literals(fields[name].annotation)
                if literals and is_open and child not in literals:
                    problems.append(f"{path}.{key}={child!r}: not in the SDK enum")
            problems += audit(child, raw_child, f"{path}.{key}")
    elif isinstance(value, list | tuple) and isinstance(raw, list):
        for i, (item, raw_item) in enumerate(zip(value, raw, strict=True)):
            problems += audit(item, raw_item, f"{path}[{i}]")
    elif isinstance(value, dict) and isinstance(raw, dict):
        for key, item in value.items():
            problems += audit(item, raw.get(key), f"{path}.{key}")
    return problems


# ----------------------------------------------------------------------------------------------------
# Bodies
# ----------------------------------------------------------------------------------------------------
def test_tool_body_is_the_seed_body_when_transfer_style() -> None:
    assert tool_body(make_policy(), config()) == SEED_TOOL


def test_tool_enum_lists_policy_categories_when_policy_has_more() -> None:
    body = tool_body(make_policy(("technical", "billing", "account", "product", "security")), config())
    assert body["function"]["parameters"]["properties"]["issue_category"]["enum"] == [
        "technical",
        "billing",
        "account",
        "product",
        "security",
    ]


def test_assistant_body_carries_seed_prompt_message_model_voice_when_built() -> None:
    body = assistant_body("tool-1", config())
    assert SYSTEM_PROMPT == SEED_PROMPT
    assert body == {
        "name": "TechCorp Support Assistant",
        "firstMessage": "Hello! I'm here to help with your TechCorp support needs. I can assist with account "
        "questions, technical issues, billing inquiries, and more. What can I help you with today?",
        "model": {
            "provider": "openai",
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": SEED_PROMPT}],
            "toolIds": ["tool-1"],
        },
        "voice": {"provider": "11labs", "voiceId": "burt"},
        "server": {
            "url": "https://edge.example.com/webhook/vapi",
            "timeoutSeconds": 20,
            "headers": {"X-Vapi-Secret": SECRET},
        },
        "serverMessages": ["transfer-destination-request", "status-update", "end-of-call-report"],
    }


def test_function_style_sets_tool_server_and_tool_calls_event_when_chosen() -> None:
    tool = tool_body(make_policy(), config(ToolStyle.FUNCTION))
    assert tool["type"] == "function"
    assert tool["function"] == SEED_TOOL["function"]
    assert tool["server"] == {
        "url": "https://edge.example.com/webhook/vapi",
        "timeoutSeconds": 20,
        "headers": {"X-Vapi-Secret": SECRET},
    }
    assert "destinations" not in tool
    assistant = assistant_body("t", config(ToolStyle.FUNCTION))
    assert assistant["serverMessages"][-1] == "tool-calls"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://edge.example.com", "https://edge.example.com/webhook/vapi"),
        ("https://edge.example.com/", "https://edge.example.com/webhook/vapi"),
        ("https://edge.example.com/base", "https://edge.example.com/base/webhook/vapi"),
        ("https://edge.example.com/webhook/vapi", "https://edge.example.com/webhook/vapi"),
        ("https://edge.example.com/webhook/escalation/", "https://edge.example.com/webhook/escalation"),
    ],
)
def test_webhook_url_appends_path_when_missing(given: str, expected: str) -> None:
    assert webhook_url(given) == expected


def test_assistant_omits_headers_when_no_secret() -> None:
    body = assistant_body("t", ProvisionConfig(server_url="https://e.example.com", secret=None))
    assert body["server"] == {"url": "https://e.example.com/webhook/vapi", "timeoutSeconds": 20}


def test_bodies_validate_against_sdk_models_when_built() -> None:
    from vapi import CreateAssistantDto, CreateFunctionToolDto, CreateTransferCallToolDto
    from vapi.tools.types.create_tools_request import CreateToolsRequest_Function

    assistant = assistant_body("tool-1", config())
    assert audit(CreateAssistantDto.model_validate(assistant), assistant) == []
    fn_assistant = assistant_body("tool-1", config(ToolStyle.FUNCTION))
    assert audit(CreateAssistantDto.model_validate(fn_assistant), fn_assistant) == []

    fn_tool = tool_body(make_policy(), config(ToolStyle.FUNCTION))
    assert audit(CreateToolsRequest_Function.model_validate(fn_tool), fn_tool) == []
    untyped = {k: v for k, v in fn_tool.items() if k != "type"}
    assert audit(CreateFunctionToolDto.model_validate(untyped), untyped) == []

    # The seed's transfer tool: everything but `function` fits CreateTransferCallToolDto; `function` is
    # exactly the part SDK 3.0.0 lacks (PROTOCOL.md section 2, point 4), and it fits the SDK's OpenAiFunction.
    transfer = tool_body(make_policy(), config())
    rest = {k: v for k, v in transfer.items() if k not in {"type", "function"}}
    assert audit(CreateTransferCallToolDto.model_validate(rest), rest) == []
    from vapi.tools.types.create_tools_request import CreateToolsRequest_TransferCall

    assert audit(CreateToolsRequest_TransferCall.model_validate(transfer), transfer) == [
        "$.function: not a field of CreateToolsRequest_TransferCall"
    ]
    from vapi.types.open_ai_function import OpenAiFunction

    assert audit(OpenAiFunction.model_validate(transfer["function"]), transfer["function"]) == []


def test_audit_reports_unknown_keys_when_body_has_them() -> None:
    from vapi import CreateAssistantDto

    body = {**assistant_body("t", config()), "serverUrlSecret": "x"}
    assert audit(CreateAssistantDto.model_validate(body), body) == [
        "$.serverUrlSecret: not a field of CreateAssistantDto"
    ]


def test_short_secret_is_masked_only_where_it_stands_alone_when_printed() -> None:
    shown = mask_secret(plan(make_policy(), ProvisionConfig("https://e.example.com", "e")), "e")
    assert shown["assistant"]["server"]["headers"] == {"X-Vapi-Secret": MASK}
    assert shown["assistant"]["model"]["messages"][0]["content"] == SYSTEM_PROMPT


def test_plan_masks_secret_when_printed() -> None:
    shown = mask_secret(plan(make_policy(), config(ToolStyle.FUNCTION)), SECRET)
    text = json.dumps(shown)
    assert SECRET not in text
    assert shown["assistant"]["server"]["headers"] == {"X-Vapi-Secret": MASK}
    assert shown["tool"]["server"]["headers"] == {"X-Vapi-Secret": MASK}
    assert shown["assistant"]["model"]["toolIds"] == [TOOL_ID_PLACEHOLDER]


# ----------------------------------------------------------------------------------------------------
# Against the stand-in API
# ----------------------------------------------------------------------------------------------------
def test_provision_creates_tool_then_assistant_when_none_exist(vapi_api: VapiStandIn) -> None:
    result = run(vapi_api)

    assert (result.tool_action, result.assistant_action) == ("created", "created")
    assert [(r.method, r.path) for r in vapi_api.requests] == [
        ("GET", "/tool"),
        ("POST", "/tool"),
        ("GET", "/assistant"),
        ("POST", "/assistant"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in vapi_api.requests)
    assert vapi_api.requests[1].body == SEED_TOOL
    assert vapi_api.requests[3].body == assistant_body(result.tool_id, config())
    assert list(vapi_api.tools) == [result.tool_id]
    assert list(vapi_api.assistants) == [result.assistant_id]


def test_second_run_patches_existing_tool_and_assistant_when_already_provisioned(
    vapi_api: VapiStandIn,
) -> None:
    first = run(vapi_api)
    vapi_api.requests.clear()
    second = run(vapi_api)

    assert (second.tool_action, second.assistant_action) == ("updated", "updated")
    assert (second.tool_id, second.assistant_id) == (first.tool_id, first.assistant_id)
    assert [(r.method, r.path) for r in vapi_api.writes()] == [
        ("PATCH", f"/tool/{first.tool_id}"),
        ("PATCH", f"/assistant/{first.assistant_id}"),
    ]
    assert vapi_api.writes()[0].body == SEED_TOOL
    assert vapi_api.writes()[1].body == assistant_body(first.tool_id, config())
    assert len(vapi_api.tools) == 1
    assert len(vapi_api.assistants) == 1


def test_function_style_goes_through_sdk_and_updates_when_run_twice(vapi_api: VapiStandIn) -> None:
    first = run(vapi_api, ToolStyle.FUNCTION)
    second = run(vapi_api, ToolStyle.FUNCTION)

    writes = vapi_api.writes()
    assert [(r.method, r.path) for r in writes] == [
        ("POST", "/tool"),
        ("POST", "/assistant"),
        ("PATCH", f"/tool/{first.tool_id}"),
        ("PATCH", f"/assistant/{first.assistant_id}"),
    ]
    expected_tool = tool_body(make_policy(), config(ToolStyle.FUNCTION))
    assert writes[0].body == expected_tool
    assert writes[2].body == expected_tool
    assert writes[1].body == assistant_body(first.tool_id, config(ToolStyle.FUNCTION))
    assert second.tool_id == first.tool_id
    assert len(vapi_api.tools) == 1
    assert len(vapi_api.assistants) == 1


def test_switching_style_creates_new_tool_and_repoints_assistant_when_style_changes(
    vapi_api: VapiStandIn,
) -> None:
    transfer = run(vapi_api)
    function = run(vapi_api, ToolStyle.FUNCTION)

    assert function.tool_action == "created"
    assert function.tool_id != transfer.tool_id
    assert function.other_style_tool_ids == (transfer.tool_id,)
    assert function.assistant_id == transfer.assistant_id
    assert vapi_api.assistants[transfer.assistant_id]["model"]["toolIds"] == [function.tool_id]
    assert len(vapi_api.assistants) == 1


def test_other_tools_and_assistants_are_left_alone_when_names_differ(vapi_api: VapiStandIn) -> None:
    vapi_api.tools["other"] = {
        "id": "other",
        "orgId": "o",
        "createdAt": "x",
        "updatedAt": "x",
        "type": "function",
        "function": {"name": "lookupTicketStatus"},
    }
    vapi_api.assistants["a0"] = {
        "id": "a0",
        "orgId": "o",
        "createdAt": "x",
        "updatedAt": "x",
        "name": "Sales",
    }
    result = run(vapi_api)
    assert result.tool_action == "created"
    assert result.assistant_action == "created"
    assert vapi_api.tools["other"]["function"] == {"name": "lookupTicketStatus"}
    assert vapi_api.assistants["a0"] == {
        "id": "a0",
        "orgId": "o",
        "createdAt": "x",
        "updatedAt": "x",
        "name": "Sales",
    }


def test_api_error_is_readable_when_vapi_rejects_assistant(vapi_api: VapiStandIn) -> None:
    vapi_api.failures[("POST", "assistant")] = (
        400,
        {"message": ["voice.voiceId must be a valid voice"], "error": "Bad Request", "statusCode": 400},
    )
    with pytest.raises(VapiApiError) as caught:
        run(vapi_api)
    assert caught.value.status == 400
    assert (
        str(caught.value) == "create assistant: Vapi answered HTTP 400: voice.voiceId must be a valid voice"
    )


def test_api_error_masks_secret_when_vapi_echoes_it(vapi_api: VapiStandIn) -> None:
    vapi_api.failures[("POST", "tool")] = (500, {"message": f"cannot store header value {SECRET}"})
    with pytest.raises(VapiApiError) as caught:
        run(vapi_api)
    assert SECRET not in str(caught.value)
    assert str(caught.value) == "create tool: Vapi answered HTTP 500: cannot store header value ***"


def test_wrong_key_is_reported_when_vapi_answers_401(vapi_api: VapiStandIn) -> None:
    with pytest.raises(VapiApiError) as caught:
        provision(make_policy(), config(), api_url=vapi_api.url, api_key="wrong", max_retries=0)
    assert caught.value.status == 401
    assert caught.value.action == "list tools"


def test_unreachable_api_is_reported_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(VapiUnreachable) as caught:
        provision(make_policy(), config(), api_url=f"http://127.0.0.1:{port}", api_key=API_KEY, max_retries=0)
    assert f"http://127.0.0.1:{port}" in str(caught.value)
    assert API_KEY not in str(caught.value)


# ----------------------------------------------------------------------------------------------------
# The CLI command, in process (the policy loader is replaced by the test policy)
# ----------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)  # no .escalade/webhook-secret here
    monkeypatch.setattr(vapi_cli, "load_policy_readably", lambda path: make_policy())
    for name in ("ESCALADE_VAPI_API_KEY", "ESCALADE_VAPI_SECRET", "ESCALADE_VAPI_API_URL", "ESCALADE_POLICY"):
        monkeypatch.delenv(name, raising=False)
    yield


@pytest.mark.usefixtures("cli_env")
def test_dry_run_prints_masked_json_and_sends_nothing_when_asked(
    vapi_api: VapiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_API_URL", vapi_api.url)
    monkeypatch.setenv("ESCALADE_VAPI_API_KEY", API_KEY)
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    result = CliRunner().invoke(
        app, ["vapi", "provision", "--dry-run", "--server-url", "https://e.example.com"]
    )
    assert result.exit_code == 0, result.output
    assert vapi_api.requests == []
    assert SECRET not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["tool"] == SEED_TOOL
    expected = assistant_body(TOOL_ID_PLACEHOLDER, ProvisionConfig("https://e.example.com", SECRET))
    expected["server"]["headers"] = {"X-Vapi-Secret": "***"}
    assert shown["assistant"] == expected


@pytest.mark.usefixtures("cli_env")
def test_missing_api_key_is_a_readable_error_when_not_dry_run() -> None:
    result = CliRunner().invoke(app, ["vapi", "provision", "--server-url", "https://e.example.com"])
    assert result.exit_code == 1
    assert "ESCALADE_VAPI_API_KEY is not set" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli_env")
def test_unknown_tool_style_is_a_usage_error_when_given() -> None:
    result = CliRunner().invoke(app, ["vapi", "provision", "--dry-run", "--tool-style", "sip"])
    assert result.exit_code == 2
    assert "--tool-style must be one of: transfer, function" in result.stderr


@pytest.mark.usefixtures("cli_env")
def test_cli_provisions_then_updates_when_run_twice(
    vapi_api: VapiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_API_URL", vapi_api.url)
    monkeypatch.setenv("ESCALADE_VAPI_API_KEY", API_KEY)
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    args = ["vapi", "provision", "--server-url", "https://e.example.com"]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    tool_id = next(iter(vapi_api.tools))
    assert f"tool escalateToSupport (transferCall): created {tool_id}" in first.stdout
    assert f"tool escalateToSupport (transferCall): updated {tool_id}" in second.stdout
    assert "assistant TechCorp Support Assistant: updated" in second.stdout
    assert len(vapi_api.tools) == 1
    assert len(vapi_api.assistants) == 1
    assert SECRET not in first.output + second.output
    assert next(iter(vapi_api.assistants.values()))["name"] == ASSISTANT_NAME
    assert next(iter(vapi_api.assistants.values()))["firstMessage"] == FIRST_MESSAGE


@pytest.mark.usefixtures("cli_env")
def test_cli_reports_api_error_readably_when_vapi_fails(
    vapi_api: VapiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_API_URL", vapi_api.url)
    monkeypatch.setenv("ESCALADE_VAPI_API_KEY", "not-the-key")
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    result = CliRunner().invoke(app, ["vapi", "provision", "--server-url", "https://e.example.com"])
    assert result.exit_code == 1
    assert "list tools: Vapi answered HTTP 401: Invalid Key" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli_env")
def test_dev_secret_file_is_used_when_no_secret_setting(tmp_path: Path) -> None:
    (tmp_path / ".escalade").mkdir()
    (tmp_path / ".escalade" / "webhook-secret").write_text("dev-secret-xyz\n")
    assert vapi_cli.webhook_secret(None) == "dev-secret-xyz"
    assert vapi_cli.webhook_secret(pydantic.SecretStr("env-secret")) == "env-secret"
