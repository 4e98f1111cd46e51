"""OpenAPI description of the webhook: request body schema, examples and documented responses.

The webhook reads its body as raw bytes (the signature covers them), so the request schema is attached
with `openapi_extra` rather than inferred from a parameter. These models document; they never parse.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from webhook_edge.settings import DEFAULT_FALLBACK_NUMBER, DEFAULT_TRANSFER_FAILED_MESSAGE
from webhook_edge.translate import transfer_unavailable_result

__all__ = [
    "REQUEST_BODY",
    "WEBHOOK_RESPONSES",
    "ErrorResponse",
    "ToolCallsResponse",
    "TransferDestinationResponse",
    "custom_openapi",
]

_STRING = {"type": "string"}

_MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type"],
    "additionalProperties": True,
    "properties": {
        "type": {
            "type": "string",
            "description": "Dispatch key. Handled: transfer-destination-request, tool-calls, status-update "
            "(forwarding and ended are forwarded to routing as call events; nothing is freed here), "
            "transfer-update (the latest artifact.transfers[] status is forwarded), end-of-call-report. "
            "Any other value is acknowledged with {}.",
            "examples": ["transfer-destination-request"],
        },
        "timestamp": {"type": "number", "description": "Unix epoch milliseconds."},
        "call": {
            "type": "object",
            "additionalProperties": True,
            "properties": {
                "id": {"type": "string", "description": "Vapi call id: idempotency key and workflow id."},
                "type": {"type": "string", "examples": ["inboundPhoneCall", "webCall"]},
                "customer": {"type": "object", "properties": {"number": _STRING, "sipUri": _STRING}},
                "monitor": {
                    "type": "object",
                    "properties": {"controlUrl": {"type": "string", "description": "Live Call Control URL."}},
                },
            },
        },
        "customer": {"type": "object", "properties": {"number": _STRING, "sipUri": _STRING, "name": _STRING}},
        "artifact": {
            "type": "object",
            "description": "messages[] (role tool_calls holds the escalateToSupport arguments), transcript.",
            "additionalProperties": True,
            "properties": {"messages": {"type": "array", "items": {"type": "object"}}, "transcript": _STRING},
        },
        "functionCall": {
            "type": "object",
            "description": "Legacy (seed tutorial) location of the tool arguments: functionCall.parameters.",
        },
        "toolCallList": {"type": "array", "items": {"type": "object"}, "description": "tool-calls only."},
        "call.assistantOverrides.variableValues.originalCallId": {
            "type": "string",
            "description": "Not a property: documents that a call Escalade dialled back carries the original "
            "call id at this path; an escalation from it is offered the specialist held for the callback.",
        },
        "status": {"type": "string", "description": "status-update only."},
        "endedReason": {"type": "string"},
    },
}

_EXAMPLE_ARGS = (
    '{"issue_category":"technical","complexity_level":"advanced",'
    '"customer_context":"Enterprise account; batch API returns 401.",'
    '"escalation_reason":"Needs an integration engineer."}'
)

REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "A Vapi server message, authenticated by one of: Vapi's HMAC credential as configured "
    "(ESCALADE_VAPI_HMAC_*: sha256/sha512/sha1, hex or base64, optional prefix; by default x-signature + "
    'x-timestamp over "{timestamp}.{body}", or the body alone when no timestamp header is configured), '
    "x-vapi-signature (HMAC-SHA256 of the body), X-Vapi-Secret, or Authorization: Bearer. Vapi's envelope "
    '{"message": {...}} and the seed tutorial\'s flat body are both accepted. Limits: 1 MiB by default '
    "(ESCALADE_MAX_BODY_BYTES); an end-of-call-report up to 16 MiB (ESCALADE_MAX_REPORT_BYTES); a larger "
    "transfer-destination-request is answered with the fallback destination.",
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "title": "Envelope",
                        "type": "object",
                        "required": ["message"],
                        "properties": {"message": _MESSAGE_SCHEMA},
                    },
                    {"title": "Flat (seed tutorial)", **_MESSAGE_SCHEMA},
                ]
            },
            "examples": {
                "transfer-destination-request": {
                    "summary": "Escalation with tool arguments in the message history",
                    "value": {
                        "message": {
                            "type": "transfer-destination-request",
                            "call": {
                                "id": "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81",
                                "type": "inboundPhoneCall",
                            },
                            "customer": {"number": "+1234567890"},
                            "artifact": {
                                "messages": [
                                    {
                                        "role": "tool_calls",
                                        "toolCalls": [
                                            {
                                                "id": "call_Qm7LrT4sYh1NcP3wDa9XkV2b",
                                                "type": "function",
                                                "function": {
                                                    "name": "escalateToSupport",
                                                    "arguments": _EXAMPLE_ARGS,
                                                },
                                            }
                                        ],
                                    }
                                ],
                                "transcript": "User: Our API integration returns 401 errors.",
                            },
                        }
                    },
                },
                "status-update": {
                    "summary": "Call handed over: forwarded to routing (the specialist is now talking)",
                    "value": {
                        "message": {
                            "type": "status-update",
                            "status": "ended",
                            "endedReason": "assistant-forwarded-call",
                            "call": {"id": "0c6f3b2a-9e1d-4c7b-8a5f-3d2e1c0b9a81"},
                        }
                    },
                },
            },
        }
    },
}


class _SummaryMessage(BaseModel):
    role: str
    content: str


class _SummaryPlan(BaseModel):
    enabled: bool = True
    messages: list[_SummaryMessage]


class _FallbackPlan(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    message: str = Field(
        description="Said to the caller when the transfer fails (ESCALADE_TRANSFER_FAILED_MESSAGE)."
    )
    end_call_enabled: bool = Field(
        default=False, alias="endCallEnabled", description="Always false: the assistant stays on the call."
    )


class _TransferPlan(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    mode: str = Field(examples=["warm-transfer-say-message"])
    message: str | None = Field(default=None, description="Said to the specialist (say-message modes).")
    summary_plan: _SummaryPlan | None = Field(default=None, alias="summaryPlan")
    fallback_plan: _FallbackPlan = Field(
        alias="fallbackPlan", description="On every transfer Escalade answers, whatever the mode."
    )


class _Destination(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    type: str = Field(examples=["number", "sip"])
    number: str | None = Field(default=None, description="E.164", examples=["+15550100110"])
    sip_uri: str | None = Field(default=None, alias="sipUri")
    sip_headers: dict[str, str] | None = Field(
        default=None,
        alias="sipHeaders",
        description="SIP destinations: X-Escalade-Decision-Id (whose handoff packet GetHandoffPacket "
        "returns) and X-Escalade-Call-Id, added to the SIP REFER.",
    )
    extension: str | None = None
    name: str | None = None
    message: str | None = Field(
        default=None,
        description="Said to the caller before the transfer (cut to 1000 characters at a sentence end).",
    )
    transfer_plan: _TransferPlan = Field(alias="transferPlan")


class TransferDestinationResponse(BaseModel):
    """Reply to transfer-destination-request: always a destination (the fallback line if routing failed)."""

    destination: _Destination


class _ToolCallResult(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str
    tool_call_id: str = Field(alias="toolCallId")
    result: str | None = Field(
        default=None,
        description="escalateToSupport: the caller's sentence when the Live Call Control transfer was "
        "accepted; for a queued callback, the queue position, when to expect the call and the callback "
        "promise (nothing is transferred); otherwise a note that the transfer could not be started, asking "
        "the assistant to offer a callback or read out the fallback line.",
    )
    error: str | None = Field(default=None, description="A tool this server does not handle.")


class ToolCallsResponse(BaseModel):
    """Reply to tool-calls."""

    results: list[_ToolCallResult]


class _ErrorField(BaseModel):
    field: str
    description: str


class _ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_request"])
    message: str
    fields: list[_ErrorField] = []


class ErrorResponse(BaseModel):
    """Every 4xx answer."""

    error: _ErrorDetail


_OK_EXAMPLES = {
    "transfer": {
        "summary": "transfer-destination-request",
        "value": {
            "destination": {
                "type": "number",
                "number": "+15550100200",
                "message": "Transferring you to our technical support specialists.",
                "transferPlan": {
                    "mode": "warm-transfer-say-message",
                    "message": "Technical advanced issue.",
                    "fallbackPlan": {
                        "message": DEFAULT_TRANSFER_FAILED_MESSAGE,
                        "endCallEnabled": False,
                    },
                },
            }
        },
    },
    "tool-calls": {
        "summary": "tool-calls",
        "value": {
            "results": [
                {
                    "name": "escalateToSupport",
                    "toolCallId": "call_1",
                    "result": "Transferring you to our technical support specialists.",
                }
            ]
        },
    },
    "tool-calls-not-started": {
        "summary": "tool-calls, the transfer could not be started (no control URL, POST failed)",
        "value": {
            "results": [
                {
                    "name": "escalateToSupport",
                    "toolCallId": "call_1",
                    "result": transfer_unavailable_result(DEFAULT_FALLBACK_NUMBER),
                }
            ]
        },
    },
    "ack": {"summary": "status-update, transfer-update, end-of-call-report, other types", "value": {}},
}

WEBHOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A destination (transfer-destination-request), tool results (tool-calls) or {}.",
        "content": {
            "application/json": {
                "schema": {
                    "anyOf": [
                        {"$ref": "#/components/schemas/TransferDestinationResponse"},
                        {"$ref": "#/components/schemas/ToolCallsResponse"},
                        {"type": "object", "maxProperties": 0},
                    ]
                },
                "examples": _OK_EXAMPLES,
            }
        },
    },
    400: {
        "model": ErrorResponse,
        "description": "Not a Vapi message (bad JSON, UTF-8, types, nesting). Never for a "
        "transfer-destination-request: one that cannot be read gets the fallback destination.",
    },
    401: {"model": ErrorResponse, "description": "Missing or invalid credentials."},
    413: {
        "model": ErrorResponse,
        "description": "Body larger than the limit (1 MiB; 16 MiB for an end-of-call-report). Never for a "
        "transfer-destination-request: it gets the fallback destination.",
    },
    415: {"model": ErrorResponse, "description": "Content type is not JSON."},
}


def custom_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """`app.openapi` for the edge: FastAPI's schema plus the reply models the webhook's responses name."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (TransferDestinationResponse, ToolCallsResponse, ErrorResponse):
            doc = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            components.update(doc.pop("$defs", {}))
            components[model.__name__] = doc
        app.openapi_schema = schema
        return schema

    return build
