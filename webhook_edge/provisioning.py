"""The Vapi side of Escalade, built from the routing policy: the webhook credential, the `escalation`
structured output, the `escalateToSupport` tool and the "TechCorp Support Assistant" of the seed tutorial,
created or updated through Vapi's API.

Two tool styles:

    function   (default) a plain `function` tool whose `tool-calls` event carries typed arguments to the edge,
               which then transfers through Live Call Control (`call.monitor.controlUrl`), as Vapi's
               dynamic-transfer guide now recommends;
    transfer   the seed's dynamic transfer tool: `transferCall` with empty `destinations`, so Vapi asks the
               edge with a `transfer-destination-request`.

docs/vapi.md describes both paths for users.

How Vapi proves itself to the edge (`--auth`):

    hmac       (default) a webhook credential (`POST /credential`, provider `webhook`) whose
               `authenticationPlan` is `hmac` with the edge's ESCALADE_VAPI_HMAC_* options (algorithm,
               encoding, prefix, signature and timestamp headers); `server.credentialId` points at it
    bearer     a webhook credential with a `bearer` plan (`Authorization: Bearer <secret>`)
    header     no credential: the secret as the static header `X-Vapi-Secret` in `server.headers` (legacy)

Idempotent: the credential is found by provider and name, the structured output by name, tools by function
name (and type), assistants by name; they are PATCHed, and only created when absent, so a second run
updates and never duplicates.

Everything here is pure except `provision`, which talks to Vapi. The SDK (`vapi-server-sdk`, slow to import)
is imported inside `provision` only, so building bodies and `--dry-run` stay fast. SDK 3.0.0 has no client
for `/credential` and `CreateWebhookCredentialDto` lacks the `provider` discriminator that the API's create
union needs, so credentials (like the transfer tool) are sent with httpx to the same API.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from routing_service.domain.models import Complexity, Policy
from webhook_edge.auth import HmacOptions

if TYPE_CHECKING:
    from vapi import Vapi

__all__ = [
    "ASSISTANT_NAME",
    "CREDENTIAL_NAME",
    "FIRST_MESSAGE",
    "MASK",
    "SECRET_HEADER",
    "STRUCTURED_OUTPUT_NAME",
    "SYSTEM_PROMPT",
    "TOOL_FUNCTION_NAME",
    "AuthKind",
    "HmacOptions",
    "ProvisionConfig",
    "ProvisionResult",
    "ToolStyle",
    "VapiApiError",
    "VapiProvisioningError",
    "VapiUnreachable",
    "assistant_body",
    "credential_body",
    "escalation_function",
    "mask_secret",
    "plan",
    "provision",
    "server_messages",
    "structured_output_body",
    "tool_body",
    "webhook_url",
]

TOOL_FUNCTION_NAME = "escalateToSupport"
TOOL_DESCRIPTION = (
    "Escalate calls to appropriate support specialists based on customer tier and issue complexity"
)
CONFIDENCE_DESCRIPTION = (
    "How sure you are of the category and complexity, from 0 (a guess) to 1 (the caller confirmed them)."
    " Optional; when unsure, say so: an uncertain escalation goes to a wider team or asks you to confirm"
    " the category with the caller first"
)
ASSISTANT_NAME = "TechCorp Support Assistant"
CREDENTIAL_NAME = "Escalade webhook"
STRUCTURED_OUTPUT_NAME = "escalation"
FIRST_MESSAGE = (
    "Hello! I'm here to help with your TechCorp support needs. I can assist with account questions, "
    "technical issues, billing inquiries, and more. What can I help you with today?"
)
SYSTEM_PROMPT = """You are TechCorp's intelligent customer support assistant. Your job is to:

1. Help customers resolve issues when possible
2. Assess issue complexity and customer needs
3. Escalate to human specialists when appropriate using the escalateToSupport function

Try to resolve simple issues first. For complex issues or when customers request human help, escalate \
intelligently based on:
- Issue category (technical, billing, account, product)
- Complexity level (basic, intermediate, advanced, critical)
- Customer context and history

Always be professional and efficient in your support."""
# Vapi fills `{{...}}` from `assistantOverrides.variableValues` (LiquidJS): the callback dial of the worker
# sets these (workflows.callback), an inbound call sets none, so the paragraph only appears on callbacks.
CALLBACK_PROMPT = """

{% if originalCallId %}This call is TechCorp calling the customer back about the {{issueCategory}} issue \
({{complexityLevel}}) they reported earlier: {{customerContext}} ({{callbackReason}}). A specialist is \
waiting for them. Once the customer confirms they have a moment, call escalateToSupport at once with \
issue_category "{{issueCategory}}" and complexity_level "{{complexityLevel}}"; do not troubleshoot again.\
{% endif %}"""
CALLBACK_VARIABLES = (
    "originalCallId",
    "issueCategory",
    "complexityLevel",
    "customerContext",
    "callbackReason",
)
"""The dial's `variableValues` the assistant's prompt uses (all set by the callback workflow)."""
MODEL_PROVIDER = "openai"
MODEL_NAME = "gpt-4o"
VOICE_PROVIDER = "11labs"
VOICE_ID = "burt"
WEBHOOK_PATH = "/webhook/vapi"
SERVER_TIMEOUT_SECONDS = 20
# The legacy static header (`--auth header`): the edge accepts `X-Vapi-Secret: <secret>` (webhook_edge.auth).
SECRET_HEADER = "X-Vapi-Secret"
MASK = "***"
TOOL_ID_PLACEHOLDER = "<id of the escalateToSupport tool>"
CREDENTIAL_ID_PLACEHOLDER = "<id of the Escalade webhook credential>"
STRUCTURED_OUTPUT_ID_PLACEHOLDER = "<id of the escalation structured output>"
# Events the edge acts on besides the escalation request itself: status-update (forwarding /
# ended feed RecordCallEvent), transfer-update (how each transfer attempt went), end-of-call-report (reviews).
LIFECYCLE_SERVER_MESSAGES = ("status-update", "transfer-update", "end-of-call-report")


class ToolStyle(enum.StrEnum):
    FUNCTION = "function"
    TRANSFER = "transfer"

    @property
    def vapi_type(self) -> str:
        """The Vapi tool `type` of this style."""
        return "transferCall" if self is ToolStyle.TRANSFER else "function"

    @property
    def request_message(self) -> str:
        """The server message that carries the escalation request in this style."""
        return "transfer-destination-request" if self is ToolStyle.TRANSFER else "tool-calls"


class AuthKind(enum.StrEnum):
    HMAC = "hmac"
    BEARER = "bearer"
    HEADER = "header"


@dataclass(frozen=True, slots=True)
class ProvisionConfig:
    """What the assistant needs to reach the edge. `server_url` is the edge's public base URL (or the full
    webhook URL); `secret` is the shared webhook secret (ESCALADE_VAPI_SECRET), None for none (then no
    credential and no header is set)."""

    server_url: str
    secret: str | None
    tool_style: ToolStyle = ToolStyle.FUNCTION
    auth: AuthKind = AuthKind.HMAC
    hmac: HmacOptions = field(default_factory=HmacOptions)
    timeout_seconds: int = SERVER_TIMEOUT_SECONDS

    @property
    def uses_credential(self) -> bool:
        return bool(self.secret) and self.auth is not AuthKind.HEADER


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    tool_id: str
    tool_action: Literal["created", "updated"]
    assistant_id: str
    assistant_action: Literal["created", "updated"]
    structured_output_id: str = ""
    structured_output_action: Literal["created", "updated", ""] = ""
    credential_id: str = ""
    """Empty when no credential is used (`--auth header`, or no secret)."""
    credential_action: Literal["created", "updated", ""] = ""
    other_style_tool_ids: tuple[str, ...] = ()
    """escalateToSupport tools of the other style, left in place (no longer used by the assistant)."""
    duplicate_assistant_ids: tuple[str, ...] = ()
    """Further assistants with the same name that were found and left alone."""


class VapiProvisioningError(Exception):
    """Base of the errors `provision` raises; `str()` is a readable one-line reason without secrets."""


class VapiUnreachable(VapiProvisioningError):
    """Vapi's API could not be reached (connection refused, DNS, timeout)."""


class VapiApiError(VapiProvisioningError):
    """Vapi answered a request with a non-2xx status (or an unreadable body)."""

    def __init__(self, action: str, status: int | None, detail: str = "") -> None:
        self.action = action
        self.status = status
        self.detail = detail
        shown = f"HTTP {status}" if status is not None else "an unreadable reply"
        super().__init__(f"{action}: Vapi answered {shown}" + (f": {detail}" if detail else ""))


# ----------------------------------------------------------------------------------------------------
# Bodies
# ----------------------------------------------------------------------------------------------------
def webhook_url(server_url: str) -> str:
    """`https://edge.example.com` -> `https://edge.example.com/webhook/vapi`; a URL that already ends in
    one of the edge's webhook paths is kept."""
    url = server_url.strip().rstrip("/")
    if url.endswith((WEBHOOK_PATH, "/webhook/escalation")):
        return url
    return url + WEBHOOK_PATH


HANDOFF_PARAMETERS: dict[str, Any] = {
    "summary": {
        "type": "string",
        "description": (
            "Two or three sentences for the specialist: what the caller needs and what you found out"
        ),
    },
    "steps_tried": {
        "type": "array",
        "items": {"type": "string"},
        "description": "What you already tried with the caller, one short entry per step",
    },
    "account_id": {"type": "string", "description": "The caller's account number or id, if they gave it"},
    "order_id": {"type": "string", "description": "The order number the issue is about, if any"},
    "error_codes": {
        "type": "array",
        "items": {"type": "string"},
        "description": "Error codes or messages the caller reported, exactly as given",
    },
}
"""The optional parameters that fill the handoff packet (the specialist need not ask again)."""


def escalation_function(policy: Policy) -> dict[str, Any]:
    """The seed's `escalateToSupport` function: its four parameters (categories from the policy), with a
    policy `handoff` section the optional handoff-packet parameters (`HANDOFF_PARAMETERS`: summary, steps
    tried, account, order, error codes), and when the policy weighs uncertainty, the optional `confidence`
    (0-1) routing weighs against its own reading of the call (Vapi's JSON schema has no numeric bounds: the
    description says them, the edge checks them)."""
    properties: dict[str, Any] = {
        "issue_category": {
            "type": "string",
            "description": "Category of customer issue",
            "enum": list(policy.categories),
        },
        "complexity_level": {
            "type": "string",
            "description": "Issue complexity level",
            "enum": [level.label for level in Complexity],
        },
        "customer_context": {
            "type": "string",
            "description": "Relevant customer information for routing",
        },
        "escalation_reason": {
            "type": "string",
            "description": "Why this needs escalation vs self-service",
        },
    }
    if policy.uncertainty is not None:
        properties["confidence"] = {"type": "number", "description": CONFIDENCE_DESCRIPTION}
    if policy.handoff is not None:
        properties.update(HANDOFF_PARAMETERS)
    return {
        "name": TOOL_FUNCTION_NAME,
        "description": TOOL_DESCRIPTION,
        "parameters": {
            "type": "object",
            "properties": properties,
            "required": ["issue_category", "complexity_level"],
        },
    }


def credential_body(config: ProvisionConfig) -> dict[str, Any]:
    """The body of POST /credential (and PATCH /credential/{id}): a `webhook` credential whose
    authentication plan signs (hmac) or carries (bearer) the shared secret. Requires a secret."""
    if not config.secret:
        raise ValueError("a webhook credential needs a secret")
    plan: dict[str, Any]
    if config.auth is AuthKind.BEARER:
        plan = {"type": "bearer", "token": config.secret, "headerName": "Authorization"}
        plan["bearerPrefixEnabled"] = True
    else:
        options = config.hmac
        plan = {
            "type": "hmac",
            "secretKey": config.secret,
            "algorithm": options.algorithm,
            "signatureHeader": options.signature_header,
            "signatureEncoding": options.encoding,
        }
        if options.timestamp_header.strip():
            plan["timestampHeader"] = options.timestamp_header.strip()
            plan["includeTimestamp"] = True
            plan["payloadFormat"] = "{timestamp}.{body}"
        else:
            plan["includeTimestamp"] = False
            plan["payloadFormat"] = "{body}"
        if options.prefix:
            plan["signaturePrefix"] = options.prefix
    return {"provider": "webhook", "name": CREDENTIAL_NAME, "authenticationPlan": plan}


def structured_output_body(policy: Policy) -> dict[str, Any]:
    """The body of POST /structured-output (and PATCH): what Vapi extracts from every call into
    `artifact.structuredOutputs` of the end-of-call report, read by the review (issue_category first)."""
    categories = list(policy.categories)
    if policy.default_category not in categories:
        categories.append(policy.default_category)
    return {
        "name": STRUCTURED_OUTPUT_NAME,
        "type": "ai",
        "description": "How the support call went: the issue, whether it was resolved or escalated, and why.",
        "schema": {
            "type": "object",
            "properties": {
                "issue_category": {
                    "type": "string",
                    "description": "Category of the customer's issue",
                    "enum": categories,
                },
                "complexity_level": {
                    "type": "string",
                    "description": "How complex the issue turned out to be",
                    "enum": [level.label for level in Complexity],
                },
                "resolved": {
                    "type": "boolean",
                    "description": "True when the customer's issue was resolved during this call",
                },
                "escalated": {
                    "type": "boolean",
                    "description": "True when the call was handed to a human specialist",
                },
                "escalation_reason": {
                    "type": "string",
                    "description": "Why a specialist was needed, in one sentence; empty when not escalated",
                },
                "customer_sentiment": {
                    "type": "string",
                    "description": "The customer's mood at the end of the call",
                    "enum": ["positive", "neutral", "negative"],
                },
            },
            "required": ["issue_category", "resolved", "escalated"],
        },
    }


def server_object(config: ProvisionConfig, credential_id: str | None = None) -> dict[str, Any]:
    """Vapi `Server`: the edge's webhook URL, Vapi's default deadline, and how Vapi authenticates: the
    credential's id, or (`--auth header`) the secret as a static header."""
    server: dict[str, Any] = {"url": webhook_url(config.server_url), "timeoutSeconds": config.timeout_seconds}
    if config.uses_credential:
        server["credentialId"] = credential_id or CREDENTIAL_ID_PLACEHOLDER
    elif config.secret:
        server["headers"] = {SECRET_HEADER: config.secret}
    return server


def tool_body(policy: Policy, config: ProvisionConfig, credential_id: str | None = None) -> dict[str, Any]:
    """The body of POST /tool (and PATCH /tool/{id}) for the configured style."""
    if config.tool_style is ToolStyle.TRANSFER:
        # The seed's dynamic transfer tool, as its curl/requests examples send it. SDK 3.0.0's
        # CreateTransferCallToolDto has no `function`/`parameters` (the tool's arguments), so this
        # body cannot go through the SDK's typed `tools.create`: `provision` sends it with httpx to the same
        # API (same base URL, same bearer key).
        return {"type": "transferCall", "destinations": [], "function": escalation_function(policy)}
    # The Live Call Control path: a plain function tool (SDK CreateFunctionToolDto); its `tool-calls` event
    # goes to `tool.server.url` first, so the edge's URL and credential are set on the tool too.
    return {
        "type": "function",
        "function": escalation_function(policy),
        "server": server_object(config, credential_id),
    }


def server_messages(style: ToolStyle) -> list[str]:
    """The events the assistant sends to the edge: the style's escalation request, then the lifecycle."""
    return [style.request_message, *LIFECYCLE_SERVER_MESSAGES]


def assistant_body(
    tool_id: str,
    config: ProvisionConfig,
    *,
    credential_id: str | None = None,
    structured_output_id: str | None = None,
) -> dict[str, Any]:
    """The body of POST /assistant (and PATCH /assistant/{id}): the seed's assistant, with `server` in place
    of the tutorial's `serverUrl`/`serverUrlSecret`, which SDK 3.0.0 no longer has,
    Live Call Control on (`monitorPlan.controlEnabled`, so `call.monitor.controlUrl` exists) and the
    escalation structured output extracted after each call (`artifactPlan.structuredOutputIds`)."""
    return {
        "name": ASSISTANT_NAME,
        "firstMessage": FIRST_MESSAGE,
        "model": {
            "provider": MODEL_PROVIDER,
            "model": MODEL_NAME,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT + CALLBACK_PROMPT}],
            "toolIds": [tool_id],
        },
        "voice": {"provider": VOICE_PROVIDER, "voiceId": VOICE_ID},
        "server": server_object(config, credential_id),
        "serverMessages": server_messages(config.tool_style),
        "monitorPlan": {"controlEnabled": True},
        "artifactPlan": {"structuredOutputIds": [structured_output_id or STRUCTURED_OUTPUT_ID_PLACEHOLDER]},
    }


def plan(policy: Policy, config: ProvisionConfig) -> dict[str, dict[str, Any]]:
    """Every body as `provision` would send it, ids not yet known (placeholders), in the order sent."""
    bodies: dict[str, dict[str, Any]] = {}
    if config.uses_credential:
        bodies["credential"] = credential_body(config)
    bodies["structuredOutput"] = structured_output_body(policy)
    bodies["tool"] = tool_body(policy, config)
    bodies["assistant"] = assistant_body(TOOL_ID_PLACEHOLDER, config)
    return bodies


_T = TypeVar("_T")


def mask_secret(value: _T, secret: str | None) -> _T:
    """A deep copy of a JSON value with the secret replaced by `***`: strings equal to it, and (for secrets of
    8 characters or more, which cannot be mistaken for ordinary words) every occurrence inside a string."""
    if not secret:
        return copy.deepcopy(value)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            if item == secret:
                return MASK
            return item.replace(secret, MASK) if len(secret) >= 8 else item
        if isinstance(item, Mapping):
            return {key: walk(child) for key, child in item.items()}
        if isinstance(item, list | tuple):
            return [walk(child) for child in item]
        return item

    result: _T = walk(value)
    return result


# ----------------------------------------------------------------------------------------------------
# Talking to Vapi
# ----------------------------------------------------------------------------------------------------
def _function_name(item: Any) -> str | None:
    """`function.name` of a listed tool, whether the SDK modelled `function` or kept it as an extra dict."""
    fn = item.get("function") if isinstance(item, Mapping) else getattr(item, "function", None)
    name = fn.get("name") if isinstance(fn, Mapping) else getattr(fn, "name", None)
    return name if isinstance(name, str) else None


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _detail(body: Any) -> str:
    """Vapi's error bodies look like {"message": ..., "error": ..., "statusCode": ...}: keep the message."""
    if isinstance(body, Mapping):
        message = body.get("message") or body.get("error")
        if isinstance(message, list):
            return "; ".join(str(m) for m in message)
        if message:
            return str(message)
    text = str(body or "").strip()
    return text[:300]


class _Api:
    """The SDK for what its models can express, httpx (same base URL, same bearer key) for the rest."""

    def __init__(self, sdk: Vapi, http: httpx.Client, api_url: str, api_key: str, max_retries: int) -> None:
        self.sdk = sdk
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.options: dict[str, Any] = {"max_retries": max_retries}
        self.secret: str | None = None

    def call(self, action: str, fn: Callable[[], _T]) -> _T:
        from vapi.core.api_error import ApiError
        from vapi.core.parse_error import ParsingError

        try:
            return fn()
        except ApiError as exc:
            raise VapiApiError(action, exc.status_code, mask_secret(_detail(exc.body), self.secret)) from None
        except ParsingError:
            raise VapiApiError(action, None, "the reply does not have the shape Vapi's SDK expects") from None
        except (httpx.TransportError, OSError) as exc:
            raise VapiUnreachable(
                f"{action}: Vapi's API at {self.api_url} is not reachable ({exc})"
            ) from None

    def request(
        self,
        action: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One request outside the SDK; the decoded JSON reply, or VapiApiError on a non-2xx."""

        def send() -> Any:
            response = self.http.request(
                method, f"{self.api_url}/{path}", json=body, params=params, headers=self.headers
            )
            try:
                data = response.json()
            except ValueError:
                data = response.text
            if not 200 <= response.status_code < 300:
                raise VapiApiError(action, response.status_code, mask_secret(_detail(data), self.secret))
            return data

        return self.call(action, send)

    def write(self, action: str, method: str, path: str, body: dict[str, Any], what: str) -> str:
        """POST/PATCH outside the SDK; the id of the created or updated resource."""
        data = self.request(action, method, path, body)
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise VapiApiError(action, None, f"the reply has no {what} id")
        return str(data["id"])

    def listing(self, action: str, path: str, params: dict[str, str] | None = None) -> list[Any]:
        """GET of a collection outside the SDK: a bare list, or the `results` of a paginated reply."""
        data = self.request(action, "GET", path, params=params)
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            data = data["results"]
        if not isinstance(data, list):
            raise VapiApiError(action, None, "the reply is not a list")
        return [item for item in data if isinstance(item, dict)]


def _kwargs(model: Any) -> dict[str, Any]:
    """The fields set on a validated SDK model, as keyword arguments of the SDK's create/update methods."""
    return {name: getattr(model, name) for name in model.model_fields_set}


Action = Literal["created", "updated"]


def _upsert_credential(api: _Api, config: ProvisionConfig) -> tuple[str, Action]:
    body = credential_body(config)
    listed = api.listing("list credentials", "credential", {"limit": "1000"})
    same = [
        str(c["id"])
        for c in listed
        if c.get("provider") == "webhook"
        and c.get("name") == CREDENTIAL_NAME
        and isinstance(c.get("id"), str)
    ]
    if same:
        return api.write("update credential", "PATCH", f"credential/{same[0]}", body, "credential"), "updated"
    return api.write("create credential", "POST", "credential", body, "credential"), "created"


def _upsert_structured_output(api: _Api, policy: Policy) -> tuple[str, Action]:
    body = structured_output_body(policy)
    listed = api.listing(
        "list structured outputs", "structured-output", {"name": STRUCTURED_OUTPUT_NAME, "limit": "1000"}
    )
    same = [
        str(o["id"])
        for o in listed
        if o.get("name") == STRUCTURED_OUTPUT_NAME and isinstance(o.get("id"), str)
    ]
    if same:
        # `schemaOverride=true` lets a policy with other categories change the schema (SDK 3.0.0's update).
        path = f"structured-output/{same[0]}"
        data = api.request("update structured output", "PATCH", path, body, params={"schemaOverride": "true"})
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise VapiApiError("update structured output", None, "the reply has no structured output id")
        return str(data["id"]), "updated"
    created = api.write("create structured output", "POST", "structured-output", body, "structured output")
    return created, "created"


def provision(
    policy: Policy,
    config: ProvisionConfig,
    *,
    api_url: str,
    api_key: str,
    max_retries: int = 2,
    timeout_seconds: float = 30.0,
    transport: httpx.BaseTransport | None = None,
) -> ProvisionResult:
    """Create or update the credential, the structured output, the escalation tool, then the assistant using
    them. Raises `VapiProvisioningError`."""
    from vapi import CreateAssistantDto, Vapi
    from vapi.tools.types.create_tools_request import CreateToolsRequest_Function
    from vapi.tools.types.update_tools_request_body import UpdateToolsRequestBody_Function

    with httpx.Client(timeout=timeout_seconds, transport=transport) as http:
        api = _Api(
            Vapi(token=api_key, base_url=api_url, httpx_client=http), http, api_url, api_key, max_retries
        )
        api.secret = config.secret

        credential_id = ""
        credential_action: Literal["created", "updated", ""] = ""
        if config.uses_credential:
            credential_id, credential_action = _upsert_credential(api, config)
        output_id, output_action = _upsert_structured_output(api, policy)
        body = tool_body(policy, config, credential_id or None)

        tools = api.call("list tools", lambda: api.sdk.tools.list(limit=1000, request_options=api.options))
        named = [t for t in tools if _function_name(t) == TOOL_FUNCTION_NAME]
        wanted = config.tool_style.vapi_type
        same = [str(_field(t, "id")) for t in named if _field(t, "type") == wanted]
        other = tuple(str(_field(t, "id")) for t in named if _field(t, "type") != wanted)

        tool_action: Action
        if config.tool_style is ToolStyle.TRANSFER:
            if same:
                tool_id = api.write("update tool", "PATCH", f"tool/{same[0]}", body, "tool")
                tool_action = "updated"
            else:
                tool_id = api.write("create tool", "POST", "tool", body, "tool")
                tool_action = "created"
        elif same:
            update = UpdateToolsRequestBody_Function.model_validate(body)
            tool_id = api.call(
                "update tool",
                lambda: api.sdk.tools.update(same[0], request=update, request_options=api.options),
            ).id
            tool_action = "updated"
        else:
            create = CreateToolsRequest_Function.model_validate(body)
            tool_id = api.call(
                "create tool", lambda: api.sdk.tools.create(request=create, request_options=api.options)
            ).id
            tool_action = "created"

        assistant = CreateAssistantDto.model_validate(
            assistant_body(
                str(tool_id), config, credential_id=credential_id or None, structured_output_id=output_id
            )
        )
        existing = api.call(
            "list assistants", lambda: api.sdk.assistants.list(limit=1000, request_options=api.options)
        )
        matches = [str(a.id) for a in existing if getattr(a, "name", None) == ASSISTANT_NAME]
        assistant_action: Action
        if matches:
            assistant_id = api.call(
                "update assistant",
                lambda: api.sdk.assistants.update(
                    matches[0], **_kwargs(assistant), request_options=api.options
                ),
            ).id
            assistant_action = "updated"
        else:
            assistant_id = api.call(
                "create assistant",
                lambda: api.sdk.assistants.create(**_kwargs(assistant), request_options=api.options),
            ).id
            assistant_action = "created"
    return ProvisionResult(
        tool_id=str(tool_id),
        tool_action=tool_action,
        assistant_id=str(assistant_id),
        assistant_action=assistant_action,
        structured_output_id=output_id,
        structured_output_action=output_action,
        credential_id=credential_id,
        credential_action=credential_action,
        other_style_tool_ids=other,
        duplicate_assistant_ids=tuple(matches[1:]),
    )
