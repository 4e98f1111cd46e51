"""The callback's `POST /call` body against the pinned vapi-server-sdk: every key is one the SDK's
`calls.create` knows (no unknown key at any depth, enums inside the SDK's values), and the SDK, given the
same values as its own models, sends exactly the body the dial activity sends."""

from __future__ import annotations

import inspect
import json
import re
import typing
from types import SimpleNamespace
from typing import Any

import httpx
import pydantic
import pytest

from tests.edge.edge_support import audit
from tests.workflow.workflow_fakes import callback_input
from workflows.activities import VapiActivities, vapi_call_name
from workflows.callback import attempt_key, callback_variables, default_first_message
from workflows.ledger import DialLedger
from workflows.payloads import ClaimOutcome, ClaimResult, DialParams


@pytest.fixture(scope="session")
def sdk() -> SimpleNamespace:
    """The SDK's client and models (the import is slow: once per session)."""
    from vapi import Vapi
    from vapi.types import AssistantOverrides, CreateCustomerDto, VapiVoicemailDetectionPlan

    return SimpleNamespace(
        Vapi=Vapi,
        AssistantOverrides=AssistantOverrides,
        CreateCustomerDto=CreateCustomerDto,
        VapiVoicemailDetectionPlan=VapiVoicemailDetectionPlan,
    )


def _model_in(annotation: Any) -> type[pydantic.BaseModel] | None:
    for arg in typing.get_args(annotation) or (annotation,):
        if inspect.isclass(arg) and issubclass(arg, pydantic.BaseModel):
            return arg
    return None


def callback_body(first_message: str) -> dict[str, Any]:
    """The body the dial activity sends for attempt 1 of a billing callback held for Ana."""
    data = callback_input("7d3e1a90-6f8b-4de5-9bc3-0e9f8d7c6bf8", first_message=first_message)
    key = attempt_key(data.call_id, 1)
    claim = ClaimResult(outcome=ClaimOutcome.RESERVED, agent_id="agent-ana", agent_name="Ana")
    params = DialParams(
        call_id=data.call_id,
        attempt=1,
        attempt_key=key,
        customer_number=data.customer_number,
        masked_number=data.masked_number,
        variable_values=callback_variables(data, key, claim),
        first_message=data.first_message or default_first_message(data.category),
    )
    vapi = VapiActivities(
        httpx.AsyncClient(),
        typing.cast(DialLedger, None),  # call_body touches neither the ledger nor the network
        api_url="https://api.vapi.ai",
        api_key="k",
        assistant_id="b3c9e2a1-7d4f-4e8a-a6b5-2f1c0d9e8a71",
        phone_number_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    )
    return vapi.call_body(params)


@pytest.mark.parametrize(
    "first_message",
    ["Hello, this is TechCorp calling back about the billing issue you called us about earlier.", ""],
)
def test_callback_call_body_is_what_the_sdk_sends(sdk: SimpleNamespace, first_message: str) -> None:
    body = callback_body(first_message)
    captured: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        captured["body"] = json.loads(request.content)
        return httpx.Response(
            201,
            json={
                "id": "00000000-0000-4000-8000-000000000000",
                "orgId": "o",
                "createdAt": "2025-01-01T00:00:00Z",
                "updatedAt": "2025-01-01T00:00:00Z",
            },
        )

    client = sdk.Vapi(token="t", httpx_client=httpx.Client(transport=httpx.MockTransport(handler)))
    parameters = inspect.signature(client.calls.create).parameters
    kwargs: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in body.items():
        snake = re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
        assert snake in parameters and snake != "request_options", f"{key} is not a POST /call field"
        model = _model_in(parameters[snake].annotation)
        if model is not None:
            parsed = model.model_validate(value)
            audit(parsed, value, f"$.{key}", problems)
            value = parsed
        kwargs[snake] = value
    client.calls.create(**kwargs)

    assert problems == []
    assert captured["body"] == body
    overrides = body["assistantOverrides"]
    assert overrides["firstMessage"] == (first_message or default_first_message("billing"))
    assert "billing issue" in overrides["firstMessage"]
    assert body["name"] == vapi_call_name(attempt_key("7d3e1a90-6f8b-4de5-9bc3-0e9f8d7c6bf8", 1))


def test_voicemail_detection_is_vapis_own_plan(sdk: SimpleNamespace) -> None:
    """`voicemailDetection` is a union whose first member accepts anything: check the plan itself."""
    raw = callback_body("")["assistantOverrides"]["voicemailDetection"]
    plan = sdk.VapiVoicemailDetectionPlan.model_validate(raw)
    problems: list[str] = []
    audit(plan, raw, "$.voicemailDetection", problems)
    assert problems == [] and plan.provider == "vapi"
    assert raw != "off"


def test_variable_values_are_strings_for_their_readers() -> None:
    values = callback_body("")["assistantOverrides"]["variableValues"]
    assert values["originalCallId"] == "7d3e1a90-6f8b-4de5-9bc3-0e9f8d7c6bf8"  # the edge links the call
    assert set(values) == {
        "originalCallId",
        "callbackAttemptKey",
        "decisionId",
        "specialistId",
        "issueCategory",
        "complexityLevel",
        "customerContext",
        "callbackReason",
    }
    assert all(isinstance(v, str) for v in values.values())
    assert not any(re.search(r"\+\d{7,}", v) for v in values.values())  # no phone number travels


def test_every_variable_the_provisioned_prompt_reads_is_sent() -> None:
    from webhook_edge.provisioning import CALLBACK_VARIABLES

    assert set(CALLBACK_VARIABLES) <= set(callback_body("")["assistantOverrides"]["variableValues"])
