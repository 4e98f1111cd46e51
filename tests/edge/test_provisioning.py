"""`escalade vapi provision`: the bodies (checked against the seed and Vapi's SDK models) and the
create-or-update run (credential, structured output, tool, assistant) against a stand-in for Vapi's API."""

from __future__ import annotations

import dataclasses
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
    UncertaintyAction,
    UncertaintyPolicy,
)
from tests.edge.vapi_api_standin import VapiStandIn, running_vapi
from webhook_edge.provisioning import (
    ASSISTANT_NAME,
    CALLBACK_PROMPT,
    CALLBACK_VARIABLES,
    CONFIDENCE_DESCRIPTION,
    CREDENTIAL_ID_PLACEHOLDER,
    CREDENTIAL_NAME,
    FIRST_MESSAGE,
    MASK,
    STRUCTURED_OUTPUT_ID_PLACEHOLDER,
    SYSTEM_PROMPT,
    TOOL_ID_PLACEHOLDER,
    AuthKind,
    HmacOptions,
    ProvisionConfig,
    ToolStyle,
    VapiApiError,
    VapiUnreachable,
    assistant_body,
    credential_body,
    mask_secret,
    plan,
    provision,
    structured_output_body,
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


def config(
    style: ToolStyle = ToolStyle.TRANSFER,
    url: str = "https://edge.example.com",
    auth: AuthKind = AuthKind.HMAC,
    hmac: HmacOptions | None = None,
) -> ProvisionConfig:
    return ProvisionConfig(
        server_url=url, secret=SECRET, tool_style=style, auth=auth, hmac=hmac or HmacOptions()
    )


@pytest.fixture
def vapi_api() -> Iterator[VapiStandIn]:
    with running_vapi(API_KEY) as stand_in:
        yield stand_in


def run(
    stand_in: VapiStandIn,
    style: ToolStyle = ToolStyle.TRANSFER,
    auth: AuthKind = AuthKind.HMAC,
    **kwargs: Any,
) -> Any:
    return provision(
        make_policy(),
        config(style, auth=auth),
        api_url=stand_in.url,
        api_key=API_KEY,
        max_retries=0,
        **kwargs,
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


def test_tool_offers_an_optional_confidence_when_the_policy_weighs_uncertainty() -> None:
    from vapi.tools.types.create_tools_request import CreateToolsRequest_Function
    from vapi.types.open_ai_function import OpenAiFunction

    weighing = dataclasses.replace(
        make_policy(), uncertainty=UncertaintyPolicy(threshold=0.5, action=UncertaintyAction.UNION)
    )
    transfer = tool_body(weighing, config())
    function = tool_body(weighing, config(ToolStyle.FUNCTION))

    parameters = transfer["function"]["parameters"]
    assert parameters["properties"]["confidence"] == {"type": "number", "description": CONFIDENCE_DESCRIPTION}
    assert "confidence" not in parameters["required"]
    assert "0 (a guess) to 1 (the caller confirmed them)" in CONFIDENCE_DESCRIPTION
    assert audit(OpenAiFunction.model_validate(transfer["function"]), transfer["function"]) == []
    assert audit(CreateToolsRequest_Function.model_validate(function), function) == []
    # without the policy section the tool is the seed's, verbatim
    assert "confidence" not in tool_body(make_policy(), config())["function"]["parameters"]["properties"]


def test_assistant_body_carries_seed_prompt_message_model_voice_when_built() -> None:
    body = assistant_body("tool-1", config(), credential_id="cred-1", structured_output_id="so-1")
    assert SYSTEM_PROMPT == SEED_PROMPT
    assert body == {
        "name": "TechCorp Support Assistant",
        "firstMessage": "Hello! I'm here to help with your TechCorp support needs. I can assist with account "
        "questions, technical issues, billing inquiries, and more. What can I help you with today?",
        "model": {
            "provider": "openai",
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": SEED_PROMPT + CALLBACK_PROMPT}],
            "toolIds": ["tool-1"],
        },
        "voice": {"provider": "11labs", "voiceId": "burt"},
        "server": {
            "url": "https://edge.example.com/webhook/vapi",
            "timeoutSeconds": 20,
            "credentialId": "cred-1",
        },
        "serverMessages": [
            "transfer-destination-request",
            "status-update",
            "transfer-update",
            "end-of-call-report",
        ],
        "monitorPlan": {"controlEnabled": True},
        "artifactPlan": {"structuredOutputIds": ["so-1"]},
    }


def test_function_style_is_the_default_with_tool_calls_and_lifecycle_events_when_not_chosen() -> None:
    default = ProvisionConfig(server_url="https://edge.example.com", secret=SECRET)
    assert default.tool_style is ToolStyle.FUNCTION
    assert default.auth is AuthKind.HMAC
    assert assistant_body("t", default)["serverMessages"] == [
        "tool-calls",
        "status-update",
        "transfer-update",
        "end-of-call-report",
    ]
    assert tool_body(make_policy(), default)["type"] == "function"


def test_callback_prompt_uses_only_variables_the_callback_dial_sets_when_rendered() -> None:
    import re

    used = set(re.findall(r"{{\s*(\w+)", CALLBACK_PROMPT)) | set(
        re.findall(r"{%\s*if\s+(\w+)", CALLBACK_PROMPT)
    )
    assert used == set(CALLBACK_VARIABLES)
    # the names the callback workflow puts in assistantOverrides.variableValues (workflows/callback.py)
    source = (Path(__file__).parents[2] / "workflows" / "callback.py").read_text()
    assert all(f'"{name}":' in source for name in CALLBACK_VARIABLES)


def test_function_style_sets_tool_server_and_tool_calls_event_when_chosen() -> None:
    tool = tool_body(make_policy(), config(ToolStyle.FUNCTION), "cred-1")
    assert tool["type"] == "function"
    assert tool["function"] == SEED_TOOL["function"]
    assert tool["server"] == {
        "url": "https://edge.example.com/webhook/vapi",
        "timeoutSeconds": 20,
        "credentialId": "cred-1",
    }
    assert "destinations" not in tool
    assistant = assistant_body("t", config(ToolStyle.FUNCTION))
    assert assistant["serverMessages"][0] == "tool-calls"
    assert "transfer-destination-request" not in assistant["serverMessages"]


def test_header_auth_puts_secret_in_static_header_and_creates_no_credential_when_chosen() -> None:
    legacy = config(ToolStyle.FUNCTION, auth=AuthKind.HEADER)
    assert assistant_body("t", legacy)["server"] == {
        "url": "https://edge.example.com/webhook/vapi",
        "timeoutSeconds": 20,
        "headers": {"X-Vapi-Secret": SECRET},
    }
    assert "credential" not in plan(make_policy(), legacy)


def test_hmac_credential_carries_default_options_when_nothing_configured() -> None:
    assert credential_body(config()) == {
        "provider": "webhook",
        "name": CREDENTIAL_NAME,
        "authenticationPlan": {
            "type": "hmac",
            "secretKey": SECRET,
            "algorithm": "sha256",
            "signatureHeader": "x-signature",
            "signatureEncoding": "hex",
            "timestampHeader": "x-timestamp",
            "includeTimestamp": True,
            "payloadFormat": "{timestamp}.{body}",
        },
    }


def test_hmac_credential_mirrors_edge_options_when_configured() -> None:
    options = HmacOptions(
        algorithm="sha512",
        encoding="base64",
        prefix="sha512=",
        signature_header="x-vapi-signature",
        timestamp_header="",
    )
    assert credential_body(config(hmac=options))["authenticationPlan"] == {
        "type": "hmac",
        "secretKey": SECRET,
        "algorithm": "sha512",
        "signatureHeader": "x-vapi-signature",
        "signatureEncoding": "base64",
        "includeTimestamp": False,
        "payloadFormat": "{body}",
        "signaturePrefix": "sha512=",
    }


def test_bearer_credential_sends_authorization_bearer_when_chosen() -> None:
    assert credential_body(config(auth=AuthKind.BEARER))["authenticationPlan"] == {
        "type": "bearer",
        "token": SECRET,
        "headerName": "Authorization",
        "bearerPrefixEnabled": True,
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"algorithm": "md5"}, "HMAC algorithm must be one of sha256, sha512, sha1"),
        ({"encoding": "base32"}, "HMAC encoding must be one of hex, base64"),
        ({"signature_header": " "}, "signature header must not be empty"),
    ],
)
def test_bad_hmac_options_are_refused_when_built(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HmacOptions(**options)


def test_structured_output_lists_policy_categories_and_escalation_fields_when_built() -> None:
    body = structured_output_body(make_policy(("technical", "billing")))
    assert body["name"] == "escalation"
    properties = body["schema"]["properties"]
    assert properties["issue_category"]["enum"] == ["technical", "billing", "general"]
    assert properties["resolved"]["type"] == "boolean"
    assert properties["escalated"]["type"] == "boolean"
    assert body["schema"]["required"] == ["issue_category", "resolved", "escalated"]


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


def test_assistant_omits_headers_and_credential_when_no_secret() -> None:
    no_secret = ProvisionConfig(server_url="https://e.example.com", secret=None)
    body = assistant_body("t", no_secret)
    assert body["server"] == {"url": "https://e.example.com/webhook/vapi", "timeoutSeconds": 20}
    assert "credential" not in plan(make_policy(), no_secret)


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
    # exactly the part SDK 3.0.0 lacks, and it fits the SDK's OpenAiFunction.
    transfer = tool_body(make_policy(), config())
    rest = {k: v for k, v in transfer.items() if k not in {"type", "function"}}
    assert audit(CreateTransferCallToolDto.model_validate(rest), rest) == []
    from vapi.tools.types.create_tools_request import CreateToolsRequest_TransferCall

    assert audit(CreateToolsRequest_TransferCall.model_validate(transfer), transfer) == [
        "$.function: not a field of CreateToolsRequest_TransferCall"
    ]
    from vapi.types.open_ai_function import OpenAiFunction

    assert audit(OpenAiFunction.model_validate(transfer["function"]), transfer["function"]) == []


@pytest.mark.parametrize(
    "built",
    [
        config(),
        config(auth=AuthKind.BEARER),
        config(hmac=HmacOptions("sha1", "base64", "sha1=", "x-hub-signature", "")),
    ],
    ids=["hmac-default", "bearer", "hmac-options"],
)
def test_credential_body_validates_against_sdk_models_when_built(built: ProvisionConfig) -> None:
    from vapi import CreateWebhookCredentialDto, UpdateWebhookCredentialDto
    from vapi.types.create_assistant_dto_credentials_item import CreateAssistantDtoCredentialsItem_Webhook

    body = credential_body(built)
    # POST /credential is a union keyed by `provider`; SDK 3.0.0's CreateWebhookCredentialDto omits that
    # discriminator, its union member (as in CreateAssistantDto.credentials) carries it.
    assert audit(CreateAssistantDtoCredentialsItem_Webhook.model_validate(body), body) == []
    rest = {k: v for k, v in body.items() if k != "provider"}
    assert audit(CreateWebhookCredentialDto.model_validate(rest), rest) == []
    assert audit(UpdateWebhookCredentialDto.model_validate(body), body) == []


def test_structured_output_and_lifecycle_plans_validate_against_sdk_models_when_built() -> None:
    from vapi import CreateAssistantDto, CreateStructuredOutputDto
    from vapi.types.artifact_plan import ArtifactPlan
    from vapi.types.monitor_plan import MonitorPlan

    output = structured_output_body(make_policy())
    assert audit(CreateStructuredOutputDto.model_validate(output), output) == []
    assistant = assistant_body("t", config(ToolStyle.FUNCTION), credential_id="c", structured_output_id="s")
    validated = CreateAssistantDto.model_validate(assistant)
    assert audit(validated, assistant) == []
    assert isinstance(validated.monitor_plan, MonitorPlan) and validated.monitor_plan.control_enabled is True
    assert isinstance(validated.artifact_plan, ArtifactPlan)
    assert validated.artifact_plan.structured_output_ids == ["s"]
    assert validated.server is not None and validated.server.credential_id == "c"


def test_audit_reports_unknown_keys_when_body_has_them() -> None:
    from vapi import CreateAssistantDto

    body = {**assistant_body("t", config()), "serverUrlSecret": "x"}
    assert audit(CreateAssistantDto.model_validate(body), body) == [
        "$.serverUrlSecret: not a field of CreateAssistantDto"
    ]


def test_short_secret_is_masked_only_where_it_stands_alone_when_printed() -> None:
    legacy = ProvisionConfig("https://e.example.com", "e", auth=AuthKind.HEADER)
    shown = mask_secret(plan(make_policy(), legacy), "e")
    assert shown["assistant"]["server"]["headers"] == {"X-Vapi-Secret": MASK}
    assert shown["assistant"]["model"]["messages"][0]["content"] == SYSTEM_PROMPT + CALLBACK_PROMPT


def test_plan_masks_secret_when_printed() -> None:
    shown = mask_secret(plan(make_policy(), config(ToolStyle.FUNCTION)), SECRET)
    text = json.dumps(shown)
    assert SECRET not in text
    assert list(shown) == ["credential", "structuredOutput", "tool", "assistant"]
    assert shown["credential"]["authenticationPlan"]["secretKey"] == MASK
    assert shown["assistant"]["server"]["credentialId"] == CREDENTIAL_ID_PLACEHOLDER
    assert shown["tool"]["server"]["credentialId"] == CREDENTIAL_ID_PLACEHOLDER
    assert shown["assistant"]["model"]["toolIds"] == [TOOL_ID_PLACEHOLDER]
    assert shown["assistant"]["artifactPlan"] == {"structuredOutputIds": [STRUCTURED_OUTPUT_ID_PLACEHOLDER]}


# ----------------------------------------------------------------------------------------------------
# Against the stand-in API
# ----------------------------------------------------------------------------------------------------
def test_provision_creates_credential_output_tool_then_assistant_when_none_exist(
    vapi_api: VapiStandIn,
) -> None:
    result = run(vapi_api)

    assert (result.credential_action, result.structured_output_action) == ("created", "created")
    assert (result.tool_action, result.assistant_action) == ("created", "created")
    assert [(r.method, r.path) for r in vapi_api.requests] == [
        ("GET", "/credential"),
        ("POST", "/credential"),
        ("GET", "/structured-output"),
        ("POST", "/structured-output"),
        ("GET", "/tool"),
        ("POST", "/tool"),
        ("GET", "/assistant"),
        ("POST", "/assistant"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in vapi_api.requests)
    assert vapi_api.requests[1].body == credential_body(config())
    assert vapi_api.requests[3].body == structured_output_body(make_policy())
    assert vapi_api.requests[5].body == SEED_TOOL
    assert vapi_api.requests[7].body == assistant_body(
        result.tool_id,
        config(),
        credential_id=result.credential_id,
        structured_output_id=result.structured_output_id,
    )
    assert list(vapi_api.credentials) == [result.credential_id]
    assert list(vapi_api.structured_outputs) == [result.structured_output_id]
    assert list(vapi_api.tools) == [result.tool_id]
    assert list(vapi_api.assistants) == [result.assistant_id]
    stored = vapi_api.assistants[result.assistant_id]
    assert stored["server"]["credentialId"] == result.credential_id
    assert "headers" not in stored["server"]
    assert SECRET not in json.dumps(stored)


def test_second_run_patches_everything_when_already_provisioned(vapi_api: VapiStandIn) -> None:
    first = run(vapi_api)
    vapi_api.requests.clear()
    second = run(vapi_api)

    assert (second.credential_action, second.structured_output_action) == ("updated", "updated")
    assert (second.tool_action, second.assistant_action) == ("updated", "updated")
    assert (second.credential_id, second.structured_output_id) == (
        first.credential_id,
        first.structured_output_id,
    )
    assert (second.tool_id, second.assistant_id) == (first.tool_id, first.assistant_id)
    writes = vapi_api.writes()
    assert [(r.method, r.path) for r in writes] == [
        ("PATCH", f"/credential/{first.credential_id}"),
        ("PATCH", f"/structured-output/{first.structured_output_id}"),
        ("PATCH", f"/tool/{first.tool_id}"),
        ("PATCH", f"/assistant/{first.assistant_id}"),
    ]
    assert writes[1].query == {"schemaOverride": "true"}
    assert writes[0].body == credential_body(config())
    assert writes[2].body == SEED_TOOL
    assert writes[3].body == assistant_body(
        first.tool_id,
        config(),
        credential_id=first.credential_id,
        structured_output_id=first.structured_output_id,
    )
    assert [len(s) for s in (vapi_api.credentials, vapi_api.structured_outputs)] == [1, 1]
    assert [len(s) for s in (vapi_api.tools, vapi_api.assistants)] == [1, 1]


def test_every_body_sent_validates_against_sdk_models_when_provisioned(vapi_api: VapiStandIn) -> None:
    from vapi import CreateAssistantDto, CreateStructuredOutputDto
    from vapi.tools.types.create_tools_request import CreateToolsRequest_Function
    from vapi.types.create_assistant_dto_credentials_item import CreateAssistantDtoCredentialsItem_Webhook

    run(vapi_api, ToolStyle.FUNCTION)
    run(vapi_api, ToolStyle.FUNCTION, auth=AuthKind.BEARER)
    models: dict[str, Any] = {
        "credential": CreateAssistantDtoCredentialsItem_Webhook,
        "structured-output": CreateStructuredOutputDto,
        "tool": CreateToolsRequest_Function,
        "assistant": CreateAssistantDto,
    }
    writes = vapi_api.writes()
    assert len(writes) == 8
    for write in writes:
        model = models[write.path.split("/")[1]]
        assert audit(model.model_validate(write.body), write.body) == [], write.path


def test_existing_credential_of_other_provider_or_name_is_left_alone_when_provisioning(
    vapi_api: VapiStandIn,
) -> None:
    other = {"id": "c0", "provider": "webhook", "name": "Someone else's", "authenticationPlan": {}}
    twilio = {"id": "c1", "provider": "twilio", "name": CREDENTIAL_NAME}
    vapi_api.credentials.update({"c0": dict(other), "c1": dict(twilio)})
    result = run(vapi_api)
    assert result.credential_action == "created"
    assert result.credential_id not in {"c0", "c1"}
    assert vapi_api.credentials["c0"] == other
    assert vapi_api.credentials["c1"] == twilio


def test_header_auth_creates_no_credential_when_chosen(vapi_api: VapiStandIn) -> None:
    result = run(vapi_api, auth=AuthKind.HEADER)
    assert (result.credential_id, result.credential_action) == ("", "")
    assert not any(r.path.startswith("/credential") for r in vapi_api.requests)
    stored = vapi_api.assistants[result.assistant_id]["server"]
    assert stored["headers"] == {"X-Vapi-Secret": SECRET}


def test_function_style_goes_through_sdk_and_updates_when_run_twice(vapi_api: VapiStandIn) -> None:
    first = run(vapi_api, ToolStyle.FUNCTION)
    second = run(vapi_api, ToolStyle.FUNCTION)

    writes = [w for w in vapi_api.writes() if w.path.startswith(("/tool", "/assistant"))]
    assert [(r.method, r.path) for r in writes] == [
        ("POST", "/tool"),
        ("POST", "/assistant"),
        ("PATCH", f"/tool/{first.tool_id}"),
        ("PATCH", f"/assistant/{first.assistant_id}"),
    ]
    expected_tool = tool_body(make_policy(), config(ToolStyle.FUNCTION), first.credential_id)
    assert writes[0].body == expected_tool
    assert writes[2].body == expected_tool
    assert writes[1].body == assistant_body(
        first.tool_id,
        config(ToolStyle.FUNCTION),
        credential_id=first.credential_id,
        structured_output_id=first.structured_output_id,
    )
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
    vapi_api.failures[("POST", "credential")] = (400, {"message": f"secretKey {SECRET} is too short"})
    with pytest.raises(VapiApiError) as caught:
        run(vapi_api)
    assert SECRET not in str(caught.value)
    assert str(caught.value) == "create credential: Vapi answered HTTP 400: secretKey *** is too short"


def test_wrong_key_is_reported_when_vapi_answers_401(vapi_api: VapiStandIn) -> None:
    with pytest.raises(VapiApiError) as caught:
        provision(make_policy(), config(), api_url=vapi_api.url, api_key="wrong", max_retries=0)
    assert caught.value.status == 401
    assert caught.value.action == "list credentials"


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
    default = ProvisionConfig("https://e.example.com", SECRET)
    assert shown["tool"] == tool_body(make_policy(), default)
    assert shown["tool"]["type"] == "function"
    assert shown["assistant"] == assistant_body(TOOL_ID_PLACEHOLDER, default)
    assert shown["credential"] == mask_secret(credential_body(default), SECRET)


@pytest.mark.usefixtures("cli_env")
def test_dry_run_uses_edge_hmac_settings_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_ALGORITHM", "SHA512")
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_ENCODING", "base64")
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_PREFIX", "sha512=")
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_SIGNATURE_HEADER", "x-vapi-signature")
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_TIMESTAMP_HEADER", "")
    result = CliRunner().invoke(app, ["vapi", "provision", "--dry-run", "--tool-style", "transfer"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["credential"]["authenticationPlan"] == {
        "type": "hmac",
        "secretKey": MASK,
        "algorithm": "sha512",
        "signatureHeader": "x-vapi-signature",
        "signatureEncoding": "base64",
        "includeTimestamp": False,
        "payloadFormat": "{body}",
        "signaturePrefix": "sha512=",
    }
    assert shown["tool"] == SEED_TOOL


@pytest.mark.usefixtures("cli_env")
def test_bad_hmac_setting_is_a_readable_usage_error_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_HMAC_ALGORITHM", "md5")
    result = CliRunner().invoke(app, ["vapi", "provision", "--dry-run"])
    assert result.exit_code == 2
    assert "invalid setting ESCALADE_VAPI_HMAC_ALGORITHM: Input should be 'sha256', 'sha512' or 'sha1'" in (
        result.stderr
    )
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli_env")
def test_unknown_auth_is_a_usage_error_when_given() -> None:
    result = CliRunner().invoke(app, ["vapi", "provision", "--dry-run", "--auth", "oauth2"])
    assert result.exit_code == 2
    assert "--auth must be one of: hmac, bearer, header" in result.stderr


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
    assert "--tool-style must be one of: function, transfer" in result.stderr


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
    assert len(vapi_api.credentials) == 1 and len(vapi_api.structured_outputs) == 1
    assert len(vapi_api.tools) == 1 and len(vapi_api.assistants) == 1
    tool_id, assistant_id = next(iter(vapi_api.tools)), next(iter(vapi_api.assistants))
    credential_id = next(iter(vapi_api.credentials))
    output_id = next(iter(vapi_api.structured_outputs))
    assert f"credential Escalade webhook (hmac): created {credential_id}" in first.stdout
    assert f"structured output escalation: created {output_id}" in first.stdout
    assert f"tool escalateToSupport (function): created {tool_id}" in first.stdout
    assert f"assistant TechCorp Support Assistant: created {assistant_id}" in first.stdout
    assert f"credential Escalade webhook (hmac): updated {credential_id}" in second.stdout
    assert f"structured output escalation: updated {output_id}" in second.stdout
    assert f"tool escalateToSupport (function): updated {tool_id}" in second.stdout
    assert f"assistant TechCorp Support Assistant: updated {assistant_id}" in second.stdout
    assert [(r.method, r.path) for r in vapi_api.writes()] == [
        ("POST", "/credential"),
        ("POST", "/structured-output"),
        ("POST", "/tool"),
        ("POST", "/assistant"),
        ("PATCH", f"/credential/{credential_id}"),
        ("PATCH", f"/structured-output/{output_id}"),
        ("PATCH", f"/tool/{tool_id}"),
        ("PATCH", f"/assistant/{assistant_id}"),
    ]
    assert all(r.headers["authorization"] == f"Bearer {API_KEY}" for r in vapi_api.requests)
    assistant = vapi_api.assistants[assistant_id]
    assert (assistant["name"], assistant["firstMessage"]) == (ASSISTANT_NAME, FIRST_MESSAGE)
    assert assistant["model"]["toolIds"] == [tool_id]
    assert assistant["server"]["credentialId"] == credential_id
    assert assistant["artifactPlan"] == {"structuredOutputIds": [output_id]}
    assert assistant["monitorPlan"] == {"controlEnabled": True}
    assert vapi_api.credentials[credential_id]["authenticationPlan"]["secretKey"] == SECRET
    assert SECRET not in first.output + second.output


@pytest.mark.usefixtures("cli_env")
def test_cli_reports_api_error_readably_when_vapi_fails(
    vapi_api: VapiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALADE_VAPI_API_URL", vapi_api.url)
    monkeypatch.setenv("ESCALADE_VAPI_API_KEY", "not-the-key")
    monkeypatch.setenv("ESCALADE_VAPI_SECRET", SECRET)
    result = CliRunner().invoke(app, ["vapi", "provision", "--server-url", "https://e.example.com"])
    assert result.exit_code == 1
    assert "list credentials: Vapi answered HTTP 401: Invalid Key" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli_env")
def test_dev_secret_file_is_used_when_no_secret_setting(tmp_path: Path) -> None:
    (tmp_path / ".escalade").mkdir()
    (tmp_path / ".escalade" / "webhook-secret").write_text("dev-secret-xyz\n")
    assert vapi_cli.webhook_secret(None) == "dev-secret-xyz"
    assert vapi_cli.webhook_secret(pydantic.SecretStr("env-secret")) == "env-secret"
