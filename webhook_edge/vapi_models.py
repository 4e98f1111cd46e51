"""Tolerant reading of Vapi server messages: the envelope, `transfer-destination-request`, `tool-calls`,
`status-update`, `transfer-update` and `end-of-call-report`.

The body is parsed once from the raw bytes (strict UTF-8, plain `json`), then read by JSON path; the SDK's
pydantic models are NOT used at request time (their import alone takes seconds). Accepted shapes:

    {"message": {"type": ..., ...}}        Vapi's envelope
    {"type": ..., "functionCall": ...}     the seed tutorial's flat body

Structural type errors on the paths Escalade reads (`message: []`, `call.id: 5`) raise `BadPayload`, which
the app answers with 400 and a field list. Tool arguments are read leniently: when they are absent or
malformed, `EscalationArguments.problem` says why and routing proceeds from the caller's data alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "END_OF_CALL_REPORT",
    "ESCALATION_TOOL",
    "HANDOFF_ENTITY_ARGUMENTS",
    "MAX_CALL_ID",
    "STATUS_UPDATE",
    "TOOL_CALLS",
    "TRANSFER_DESTINATION_REQUEST",
    "TRANSFER_UPDATE",
    "BadPayload",
    "EscalationArguments",
    "ToolCall",
    "VapiMessage",
    "parse_body",
]

ESCALATION_TOOL = "escalateToSupport"

# The message types the edge answers (`VapiMessage.type`); any other type is acknowledged and ignored.
TRANSFER_DESTINATION_REQUEST = "transfer-destination-request"
TOOL_CALLS = "tool-calls"
STATUS_UPDATE = "status-update"
TRANSFER_UPDATE = "transfer-update"
END_OF_CALL_REPORT = "end-of-call-report"

_MAX_TEXT = 16_000
_MAX_TRANSCRIPT = 64_000
MAX_CALL_ID = 200
"""Longest `originalCallId` taken from a callback call's variable values (Vapi call ids are UUIDs)."""
_MAX_STATUS = 80
_MAX_SUMMARY = 4_000
_MAX_LIST = 20
_MAX_STEP = 500
_MAX_ENTITY = 120
HANDOFF_ENTITY_ARGUMENTS: dict[str, str] = {
    "account_id": "account",
    "order_id": "order",
    "error_codes": "error_code",
}
"""The escalation tool's optional entity arguments and the packet's entity kind for each."""


class BadPayload(Exception):
    """The body is not a Vapi message; `fields` lists (JSON path, problem)."""

    def __init__(self, message: str, fields: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []


@dataclass(frozen=True, slots=True)
class EscalationArguments:
    """The `escalateToSupport` arguments as found (strings, possibly empty) and how they were found."""

    issue_category: str = ""
    complexity_level: str = ""
    customer_context: str = ""
    escalation_reason: str = ""
    confidence: float | None = None
    """The optional `confidence` argument (0-1); None when absent or unusable (then `problem` says why)."""
    summary: str = ""
    """The optional `summary` argument: the assistant's summary of the call, for the handoff packet."""
    steps_tried: tuple[str, ...] = ()
    """The optional `steps_tried` argument (a list of strings, or one string)."""
    entities: tuple[tuple[str, str], ...] = ()
    """(kind, value) from the optional `account_id`, `order_id` and `error_codes` arguments."""
    tool_call_id: str = ""
    source: str = ""
    problem: str = ""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One entry of a `tool-calls` message's `toolCallList`."""

    id: str
    name: str
    arguments: EscalationArguments


def _text(value: Any) -> str:
    return value[:_MAX_TEXT] if isinstance(value, str) else ""


def _object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadPayload(f"{path} must be an object", [(path, "must be an object")])
    return value


def _string(parent: dict[str, Any] | None, key: str, path: str) -> str | None:
    if parent is None:
        return None
    value = parent.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadPayload(f"{path} must be a string", [(path, "must be a string")])
    return value


@dataclass(frozen=True, slots=True)
class VapiMessage:
    """A parsed server message: `type` plus the message object, read by path."""

    type: str
    body: dict[str, Any]
    envelope: bool
    prefix: str = field(default="message")

    # --- common fields --------------------------------------------------------------------------------
    @property
    def call(self) -> dict[str, Any] | None:
        return _object(self.body, "call", f"{self.prefix}.call")

    @property
    def call_id(self) -> str:
        """`call.id`; raises BadPayload when missing or not a string."""
        value = _string(self.call, "id", f"{self.prefix}.call.id")
        if not value:
            path = f"{self.prefix}.call.id"
            raise BadPayload(f"{path} is required", [(path, "is required")])
        return value

    @property
    def call_id_or_empty(self) -> str:
        try:
            return self.call_id
        except BadPayload:
            return ""

    @property
    def caller_number(self) -> str:
        """`call.customer.number`, else `customer.number`, else empty (web calls)."""
        call = self.call
        call_customer = _object(call, "customer", f"{self.prefix}.call.customer") if call else None
        number = _string(call_customer, "number", f"{self.prefix}.call.customer.number")
        if not number:
            customer = _object(self.body, "customer", f"{self.prefix}.customer")
            number = _string(customer, "number", f"{self.prefix}.customer.number")
        return (number or "").strip()

    @property
    def caller_sip_uri(self) -> str:
        customer = _object(self.body, "customer", f"{self.prefix}.customer")
        uri = _string(customer, "sipUri", f"{self.prefix}.customer.sipUri")
        if not uri:
            call = self.call
            call_customer = _object(call, "customer", f"{self.prefix}.call.customer") if call else None
            uri = _string(call_customer, "sipUri", f"{self.prefix}.call.customer.sipUri")
        return (uri or "").strip()

    @property
    def artifact(self) -> dict[str, Any] | None:
        return _object(self.body, "artifact", f"{self.prefix}.artifact")

    @property
    def transcript(self) -> str:
        value = (self.artifact or {}).get("transcript")
        if not isinstance(value, str):
            value = self.body.get("transcript")
        return value[-_MAX_TRANSCRIPT:] if isinstance(value, str) else ""

    @property
    def control_url(self) -> str:
        """`call.monitor.controlUrl` (Live Call Control), or empty."""
        call = self.call
        monitor = _object(call, "monitor", f"{self.prefix}.call.monitor") if call else None
        return (_string(monitor, "controlUrl", f"{self.prefix}.call.monitor.controlUrl") or "").strip()

    @property
    def status(self) -> str:
        return _string(self.body, "status", f"{self.prefix}.status") or ""

    @property
    def ended_reason(self) -> str:
        value = _string(self.body, "endedReason", f"{self.prefix}.endedReason")
        if not value:
            value = _string(self.call, "endedReason", f"{self.prefix}.call.endedReason")
        return value or ""

    @property
    def timestamp_ms(self) -> float | None:
        """`timestamp` (Unix epoch milliseconds) when it is a plausible number, else None."""
        value = self.body.get("timestamp")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not 0 < value < 10_000_000_000_000:  # before the year 2286 in ms
            return None
        return float(value)

    @property
    def transfer_status(self) -> str:
        """The status of the LAST `artifact.transfers[]` entry, else the message's own `transferStatus` or
        `status` (neither is in SDK 3.0.0's `ServerMessageTransferUpdate`; read in case Vapi sends them);
        else empty."""
        transfers = (self.artifact or {}).get("transfers")
        if isinstance(transfers, list):
            for entry in reversed(transfers):
                if isinstance(entry, dict) and isinstance(entry.get("status"), str) and entry["status"]:
                    return str(entry["status"]).strip()[:_MAX_STATUS]
                if isinstance(entry, dict):
                    break  # the latest attempt carries no status: do not report an older one as current
        for key in ("transferStatus", "status"):
            value = self.body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:_MAX_STATUS]
        return ""

    @property
    def original_call_id(self) -> str:
        """`call.assistantOverrides.variableValues.originalCallId` (set when Escalade dialled this call back);
        empty when absent, not a string, blank or longer than `MAX_CALL_ID`."""
        call = self.call
        overrides = call.get("assistantOverrides") if call else None
        values = overrides.get("variableValues") if isinstance(overrides, dict) else None
        value = values.get("originalCallId") if isinstance(values, dict) else None
        if not isinstance(value, str):
            return ""
        value = value.strip()
        return value if len(value) <= MAX_CALL_ID else ""

    # --- end-of-call-report -----------------------------------------------------------------------------
    def escalation_evidence(self) -> str:
        """What in this report shows the assistant escalated, or empty when nothing does: an
        `escalateToSupport` call in `artifact.messages`, an `artifact.transfers[]` entry, a forwarding
        `destination`, or an `endedReason` of a forwarded call.

        Routing may hold no decision for an escalated call (it was down and the edge answered with the
        fallback line); the report is then the only record that the call was escalated."""
        artifact = self.artifact or {}
        messages = artifact.get("messages")
        for item in messages if isinstance(messages, list) else []:
            if not isinstance(item, dict) or item.get("role") != "tool_calls":
                continue
            calls = item.get("toolCalls")
            for call in calls if isinstance(calls, list) else []:
                if _function_of(call)[0] == ESCALATION_TOOL:
                    return f"{ESCALATION_TOOL} called"
        transfers = artifact.get("transfers")
        if isinstance(transfers, list) and any(isinstance(t, dict) for t in transfers):
            return "artifact.transfers"
        destination = self.body.get("destination")
        if isinstance(destination, dict) and destination:
            return "destination"
        if "forwarded" in self.ended_reason:
            return f"endedReason {self.ended_reason[:_MAX_STATUS]}"
        return ""

    # --- transfer-destination-request ------------------------------------------------------------------
    def escalation_arguments(self) -> EscalationArguments:
        """The LAST `escalateToSupport` call in `artifact.messages`, else legacy `functionCall.parameters`."""
        found: tuple[str, Any, str] | None = None
        messages = (self.artifact or {}).get("messages")
        if isinstance(messages, list):
            for item in messages:
                if not isinstance(item, dict) or item.get("role") != "tool_calls":
                    continue
                calls = item.get("toolCalls")
                for call in calls if isinstance(calls, list) else []:
                    name, arguments = _function_of(call)
                    if name == ESCALATION_TOOL:
                        call_id = call.get("id") if isinstance(call.get("id"), str) else ""
                        found = (call_id, arguments, "artifact.messages[tool_calls]")
        if found is None:
            legacy = self.body.get("functionCall")
            if isinstance(legacy, dict):
                params = legacy.get("parameters")
                if params is None:
                    params = legacy.get("arguments")
                legacy_id = legacy.get("id")
                found = (legacy_id if isinstance(legacy_id, str) else "", params, "functionCall.parameters")
        if found is None:
            return EscalationArguments(problem="no escalateToSupport arguments in the message")
        call_id, arguments, source = found
        return read_arguments(arguments, tool_call_id=call_id, source=source)

    # --- tool-calls ------------------------------------------------------------------------------------
    def tool_calls(self) -> list[ToolCall]:
        """Entries of `toolCallList` (each id/name/arguments read leniently)."""
        path = f"{self.prefix}.toolCallList"
        items = self.body.get("toolCallList")
        if items is None:
            items = [
                entry.get("toolCall")
                for entry in self.body.get("toolWithToolCallList") or []
                if isinstance(entry, dict)
            ]
        if not isinstance(items, list):
            raise BadPayload(f"{path} must be a list", [(path, "must be a list")])
        calls: list[ToolCall] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadPayload(
                    f"{path}[{index}] must be an object", [(f"{path}[{index}]", "must be an object")]
                )
            call_id = _string(item, "id", f"{path}[{index}].id") or ""
            name, arguments = _function_of(item)
            args = read_arguments(arguments, tool_call_id=call_id, source="toolCallList")
            calls.append(ToolCall(id=call_id, name=name, arguments=args))
        return calls


def _function_of(call: Any) -> tuple[str, Any]:
    """(name, arguments) of an OpenAI-shaped tool call, also accepting the flattened form."""
    if not isinstance(call, dict):
        return "", None
    function = call.get("function")
    if isinstance(function, dict):
        name = function.get("name")
        return (name if isinstance(name, str) else ""), function.get("arguments")
    name = call.get("name")
    return (name if isinstance(name, str) else ""), call.get("arguments", call.get("parameters"))


def read_arguments(arguments: Any, *, tool_call_id: str, source: str) -> EscalationArguments:
    """Arguments given as a JSON string or an object; anything else becomes a `problem` note."""
    if arguments is None:
        return EscalationArguments(
            tool_call_id=tool_call_id, source=source, problem=f"{source}: no arguments"
        )
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return EscalationArguments(
                tool_call_id=tool_call_id, source=source, problem=f"{source}: arguments are not valid JSON"
            )
    if not isinstance(arguments, dict):
        return EscalationArguments(
            tool_call_id=tool_call_id, source=source, problem=f"{source}: arguments are not a JSON object"
        )
    wrong = sorted(
        key
        for key in ("issue_category", "complexity_level", "customer_context", "escalation_reason")
        if key in arguments and arguments[key] is not None and not isinstance(arguments[key], str)
    )
    problems = [f"{source}: ignored non-string {', '.join(wrong)}"] if wrong else []
    confidence, confidence_problem = _confidence(arguments.get("confidence"))
    if confidence_problem:
        problems.append(f"{source}: {confidence_problem}")
    steps, steps_problem = _strings(arguments.get("steps_tried"), "steps_tried")
    entities: list[tuple[str, str]] = []
    entity_problems = [steps_problem] if steps_problem else []
    for name, kind in HANDOFF_ENTITY_ARGUMENTS.items():
        values, values_problem = _strings(arguments.get(name), name)
        entities += [(kind, value[:_MAX_ENTITY]) for value in values]
        if values_problem:
            entity_problems.append(values_problem)
    problems += [f"{source}: {text}" for text in entity_problems]
    problem = "; ".join(problems)
    return EscalationArguments(
        issue_category=_text(arguments.get("issue_category")).strip().lower(),
        complexity_level=_text(arguments.get("complexity_level")).strip().lower(),
        customer_context=_text(arguments.get("customer_context")).strip(),
        escalation_reason=_text(arguments.get("escalation_reason")).strip(),
        confidence=confidence,
        summary=_text(arguments.get("summary")).strip()[:_MAX_SUMMARY],
        steps_tried=steps,
        entities=tuple(entities[:_MAX_LIST]),
        tool_call_id=tool_call_id,
        source=source,
        problem=problem,
    )


def _strings(value: Any, name: str) -> tuple[tuple[str, ...], str]:
    """An optional list-of-strings argument (one string is read as a list of one), bounded: at most
    `_MAX_LIST` non-blank entries of at most `_MAX_STEP` characters; anything else ignored and said why."""
    if value is None:
        return (), ""
    items = [value] if isinstance(value, str | int) and not isinstance(value, bool) else value
    if not isinstance(items, list):
        return (), f"ignored {name} that is not a list of strings"
    kept = [
        str(item).strip()[:_MAX_STEP]
        for item in items
        if isinstance(item, str | int) and not isinstance(item, bool)
    ]
    kept = [item for item in kept if item]
    problem = "" if len(kept) == len(items) else f"ignored entries of {name} that are not strings"
    return tuple(kept[:_MAX_LIST]), problem


def _confidence(value: Any) -> tuple[float | None, str]:
    """The `confidence` argument as a number 0-1 (a numeric string is read too), or None and why not."""
    if value is None:
        return None, ""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None, "ignored confidence that is not a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, "ignored confidence that is not a number"
    number = float(value)
    if not 0.0 <= number <= 1.0:  # NaN fails both comparisons
        return None, "ignored confidence outside 0-1"
    return number, ""


def parse_body(raw: bytes) -> VapiMessage:
    """Decode and classify a webhook body; raises `BadPayload` for anything that is not a Vapi message."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(
            "body is not valid UTF-8", [("body", f"invalid byte at offset {exc.start}")]
        ) from None
    if not text.strip():
        raise BadPayload("body is empty", [("body", "a JSON object is required")])
    try:
        doc = json.loads(text)
    except RecursionError:
        raise BadPayload("body is nested too deeply", [("body", "nesting too deep")]) from None
    except ValueError as exc:
        reason = (
            f"line {exc.lineno} column {exc.colno}: {exc.msg}"
            if isinstance(exc, json.JSONDecodeError)
            else str(exc)
        )
        raise BadPayload("body is not valid JSON", [("body", reason)]) from None
    if not isinstance(doc, dict):
        raise BadPayload("body must be a JSON object", [("body", "must be an object")])
    if "message" in doc:
        message = doc["message"]
        if not isinstance(message, dict):
            raise BadPayload("message must be an object", [("message", "must be an object")])
        envelope, prefix = True, "message"
    else:
        message, envelope, prefix = doc, False, "body"
    kind = message.get("type")
    if not isinstance(kind, str) or not kind:
        path = f"{prefix}.type" if envelope else "type"
        problem = "is required" if kind is None else "must be a non-empty string"
        raise BadPayload(f"{path} {problem}", [(path, problem)])
    return VapiMessage(type=kind, body=message, envelope=envelope, prefix=prefix)
