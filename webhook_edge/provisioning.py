"""The Vapi side of Escalade, built from the routing policy: the `escalateToSupport` tool and the
"TechCorp Support Assistant" of the seed tutorial (sections 1 and 2), created or updated through Vapi's API.

Two tool styles:

    transfer   the seed's dynamic transfer tool: `transferCall` with empty `destinations`, so Vapi asks
               the edge with a `transfer-destination-request` (PROTOCOL.md section 2);
    function   a plain `function` tool whose `tool-calls` event carries typed arguments to the edge, which
               then transfers through Live Call Control (PROTOCOL.md section 7, issue 4).

Idempotent: existing tools are found by function name (and type), assistants by name; they are PATCHed, and
only created when absent, so a second run updates and never duplicates.

Everything here is pure except `provision`, which talks to Vapi. The SDK (`vapi-server-sdk`, slow to import)
is imported inside `provision` only, so building bodies and `--dry-run` stay fast.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import httpx

from routing_service.domain.models import Complexity, Policy

if TYPE_CHECKING:
    from vapi import Vapi

__all__ = [
    "ASSISTANT_NAME",
    "FIRST_MESSAGE",
    "MASK",
    "SECRET_HEADER",
    "SYSTEM_PROMPT",
    "TOOL_FUNCTION_NAME",
    "TOOL_ID_PLACEHOLDER",
    "ProvisionConfig",
    "ProvisionResult",
    "ToolStyle",
    "VapiApiError",
    "VapiProvisioningError",
    "VapiUnreachable",
    "assistant_body",
    "escalation_function",
    "mask_secret",
    "plan",
    "provision",
    "server_messages",
    "tool_body",
    "webhook_url",
]

TOOL_FUNCTION_NAME = "escalateToSupport"
TOOL_DESCRIPTION = (
    "Escalate calls to appropriate support specialists based on customer tier and issue complexity"
)
ASSISTANT_NAME = "TechCorp Support Assistant"
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
MODEL_PROVIDER = "openai"
MODEL_NAME = "gpt-4o"
VOICE_PROVIDER = "11labs"
VOICE_ID = "burt"
WEBHOOK_PATH = "/webhook/vapi"
SERVER_TIMEOUT_SECONDS = 20
# How Vapi proves itself to the edge. PROTOCOL.md section 4 offers a credential (`server.credentialId`:
# bearer, hmac or oauth2, created beforehand through POST /credential) or static `server.headers`. Static
# headers need no second resource, are modelled by SDK 3.0.0's `Server.headers`, and the edge accepts
# `X-Vapi-Secret: <secret>` (webhook_edge.auth), so the secret travels as that header. An HMAC credential
# would also sign the body; it can replace this without any change on the edge, which accepts both.
SECRET_HEADER = "X-Vapi-Secret"
MASK = "***"
TOOL_ID_PLACEHOLDER = "<id of the escalateToSupport tool>"
BASE_SERVER_MESSAGES = ("transfer-destination-request", "status-update", "end-of-call-report")


class ToolStyle(enum.StrEnum):
    TRANSFER = "transfer"
    FUNCTION = "function"

    @property
    def vapi_type(self) -> str:
        """The Vapi tool `type` of this style."""
        return "transferCall" if self is ToolStyle.TRANSFER else "function"


@dataclass(frozen=True, slots=True)
class ProvisionConfig:
    """What the assistant needs to reach the edge. `server_url` is the edge's public base URL (or the full
    webhook URL); `secret` is the shared webhook secret (ESCALADE_VAPI_SECRET), None for none."""

    server_url: str
    secret: str | None
    tool_style: ToolStyle = ToolStyle.TRANSFER
    timeout_seconds: int = SERVER_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class ProvisionResult:
    tool_id: str
    tool_action: Literal["created", "updated"]
    assistant_id: str
    assistant_action: Literal["created", "updated"]
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


def escalation_function(policy: Policy) -> dict[str, Any]:
    """The seed's `escalateToSupport` function: four parameters, categories from the policy."""
    return {
        "name": TOOL_FUNCTION_NAME,
        "description": TOOL_DESCRIPTION,
        "parameters": {
            "type": "object",
            "properties": {
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
            },
            "required": ["issue_category", "complexity_level"],
        },
    }


def server_object(config: ProvisionConfig) -> dict[str, Any]:
    """Vapi `Server`: the edge's webhook URL, Vapi's default deadline, and the secret header (if any)."""
    server: dict[str, Any] = {"url": webhook_url(config.server_url), "timeoutSeconds": config.timeout_seconds}
    if config.secret:
        server["headers"] = {SECRET_HEADER: config.secret}
    return server


def tool_body(policy: Policy, config: ProvisionConfig) -> dict[str, Any]:
    """The body of POST /tool (and PATCH /tool/{id}) for the configured style."""
    if config.tool_style is ToolStyle.TRANSFER:
        # The seed's dynamic transfer tool, as its curl/requests examples send it. SDK 3.0.0's
        # CreateTransferCallToolDto has no `function`/`parameters` (PROTOCOL.md section 2, point 4), so this
        # body cannot go through the SDK's typed `tools.create`: `provision` sends it with httpx to the same
        # API (same base URL, same bearer key).
        return {"type": "transferCall", "destinations": [], "function": escalation_function(policy)}
    # The Live Call Control path: a plain function tool (SDK CreateFunctionToolDto); its `tool-calls` event
    # goes to `tool.server.url` first, so the edge's URL and secret are set on the tool too.
    return {"type": "function", "function": escalation_function(policy), "server": server_object(config)}


def server_messages(style: ToolStyle) -> list[str]:
    """The events the assistant sends to the edge; the function style also needs `tool-calls`."""
    messages = list(BASE_SERVER_MESSAGES)
    if style is ToolStyle.FUNCTION:
        messages.append("tool-calls")
    return messages


def assistant_body(tool_id: str, config: ProvisionConfig) -> dict[str, Any]:
    """The body of POST /assistant (and PATCH /assistant/{id}): the seed's assistant, with `server` in place
    of the tutorial's `serverUrl`/`serverUrlSecret`, which SDK 3.0.0 no longer has (PROTOCOL.md section 9)."""
    return {
        "name": ASSISTANT_NAME,
        "firstMessage": FIRST_MESSAGE,
        "model": {
            "provider": MODEL_PROVIDER,
            "model": MODEL_NAME,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}],
            "toolIds": [tool_id],
        },
        "voice": {"provider": VOICE_PROVIDER, "voiceId": VOICE_ID},
        "server": server_object(config),
        "serverMessages": server_messages(config.tool_style),
    }


def plan(policy: Policy, config: ProvisionConfig) -> dict[str, dict[str, Any]]:
    """Both bodies as `provision` would send them, the tool id not yet known (a placeholder)."""
    return {"tool": tool_body(policy, config), "assistant": assistant_body(TOOL_ID_PLACEHOLDER, config)}


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

    def raw(self, action: str, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            response = self.http.request(method, f"{self.api_url}/{path}", json=body, headers=self.headers)
            try:
                data = response.json()
            except ValueError:
                data = response.text
            if not 200 <= response.status_code < 300:
                raise VapiApiError(action, response.status_code, mask_secret(_detail(data), self.secret))
            if not isinstance(data, dict) or not isinstance(data.get("id"), str):
                raise VapiApiError(action, None, "the reply has no tool id")
            return data

        return self.call(action, send)


def _kwargs(model: Any) -> dict[str, Any]:
    """The fields set on a validated SDK model, as keyword arguments of the SDK's create/update methods."""
    return {name: getattr(model, name) for name in model.model_fields_set}


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
    """Create or update the escalation tool, then the assistant using it. Raises `VapiProvisioningError`."""
    from vapi import CreateAssistantDto, Vapi
    from vapi.tools.types.create_tools_request import CreateToolsRequest_Function
    from vapi.tools.types.update_tools_request_body import UpdateToolsRequestBody_Function

    with httpx.Client(timeout=timeout_seconds, transport=transport) as http:
        api = _Api(
            Vapi(token=api_key, base_url=api_url, httpx_client=http), http, api_url, api_key, max_retries
        )
        api.secret = config.secret
        body = tool_body(policy, config)

        tools = api.call("list tools", lambda: api.sdk.tools.list(limit=1000, request_options=api.options))
        named = [t for t in tools if _function_name(t) == TOOL_FUNCTION_NAME]
        wanted = config.tool_style.vapi_type
        same = [str(_field(t, "id")) for t in named if _field(t, "type") == wanted]
        other = tuple(str(_field(t, "id")) for t in named if _field(t, "type") != wanted)

        tool_action: Literal["created", "updated"]
        if config.tool_style is ToolStyle.TRANSFER:
            if same:
                tool_id = api.raw("update tool", "PATCH", f"tool/{same[0]}", body)["id"]
                tool_action = "updated"
            else:
                tool_id = api.raw("create tool", "POST", "tool", body)["id"]
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

        assistant = CreateAssistantDto.model_validate(assistant_body(str(tool_id), config))
        existing = api.call(
            "list assistants", lambda: api.sdk.assistants.list(limit=1000, request_options=api.options)
        )
        matches = [str(a.id) for a in existing if getattr(a, "name", None) == ASSISTANT_NAME]
        assistant_action: Literal["created", "updated"]
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
        other_style_tool_ids=other,
        duplicate_assistant_ids=tuple(matches[1:]),
    )
