"""The ONE module mapping Vapi JSON <-> the routing contract.

    VapiMessage + EscalationArguments  -> ResolveEscalationRequest
    Decision                           -> Vapi `transfer-destination-request` reply {"destination": {...}}
    Decision                           -> Live Call Control {"type": "transfer", "destination", "content"}
    Decision                           -> `tool-calls` result entry
    Decision / end-of-call-report      -> the callback and review workflows' inputs (`workflows.inputs`)

Everything sent to Vapi uses only keys the SDK (vapi-server-sdk 3.0.0) models, in camelCase, with E.164
numbers; a destination that cannot be expressed that way is refused here (`UnusableDecision`) and the
caller gets the fallback instead.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.masking import mask_number
from webhook_edge.settings import DEFAULT_TRANSFER_FAILED_MESSAGE, MAX_SPOKEN_CHARS
from webhook_edge.vapi_models import EscalationArguments, VapiMessage
from workflows.inputs import EscalationReviewInput, QueueCallbackInput

__all__ = [
    "CALLBACK_PROMISE",
    "CALL_ID_HEADER",
    "COMPLEXITY_BY_NAME",
    "DECISION_ID_HEADER",
    "E164",
    "UnusableDecision",
    "callback_input",
    "callback_result",
    "complexity_name",
    "control_transfer",
    "destination_json",
    "fallback_plan",
    "final_category",
    "mode_name",
    "resolve_request",
    "review_input",
    "sip_headers",
    "speakable_number",
    "spoken",
    "structured_outputs",
    "tool_result",
    "transfer_response",
    "transfer_unavailable_result",
]

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_SIP = re.compile(r"^sips?:\S+$")
_MAX_TRANSCRIPT = 16_000
_MAX_REVIEW_TRANSCRIPT = 32_000

COMPLEXITY_BY_NAME: dict[str, pb.Complexity.ValueType] = {
    "basic": pb.COMPLEXITY_BASIC,
    "intermediate": pb.COMPLEXITY_INTERMEDIATE,
    "advanced": pb.COMPLEXITY_ADVANCED,
    "critical": pb.COMPLEXITY_CRITICAL,
}

_SAY_MESSAGE_MODES = {
    pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE,
    pb.TRANSFER_MODE_WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_MESSAGE,
}
_SUMMARY_MODES = {
    pb.TRANSFER_MODE_WARM_TRANSFER_SAY_SUMMARY,
    pb.TRANSFER_MODE_WARM_TRANSFER_WAIT_FOR_OPERATOR_TO_SPEAK_FIRST_AND_THEN_SAY_SUMMARY,
    pb.TRANSFER_MODE_BLIND_TRANSFER_ADD_SUMMARY_TO_SIP_HEADER,
    pb.TRANSFER_MODE_WARM_TRANSFER_EXPERIMENTAL,
}


_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)(?=\s|$)")


def spoken(text: str, limit: int = MAX_SPOKEN_CHARS) -> str:
    """`text` if it fits in `limit` characters, else cut after the last full sentence that fits.

    Vapi would refuse a longer message (see `MAX_SPOKEN_CHARS`); the caller hears whole sentences. Without a
    sentence end in the first `limit` characters the text is cut at the last space (else hard) and ends
    with an ellipsis.
    """
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends:
        return head[: ends[-1]].rstrip()
    cut = head[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def fallback_plan(message: str = DEFAULT_TRANSFER_FAILED_MESSAGE) -> dict[str, Any]:
    """`transferPlan.fallbackPlan`: what the caller hears if the transfer fails; the assistant stays on."""
    return {"message": spoken(message) or DEFAULT_TRANSFER_FAILED_MESSAGE, "endCallEnabled": False}


class UnusableDecision(ValueError):
    """A decision whose destination Vapi would reject (no target, non-E.164 number, bad SIP URI)."""


def complexity_name(value: pb.Complexity.ValueType) -> str:
    """`advanced` for COMPLEXITY_ADVANCED; empty for UNSPECIFIED."""
    if value == pb.COMPLEXITY_UNSPECIFIED:
        return ""
    return pb.Complexity.Name(value).removeprefix("COMPLEXITY_").lower()


def mode_name(value: pb.TransferMode.ValueType) -> str:
    """Vapi's `transferPlan.mode` string; UNSPECIFIED is Vapi's default `blind-transfer`."""
    if value == pb.TRANSFER_MODE_UNSPECIFIED:
        return "blind-transfer"
    return pb.TransferMode.Name(value).removeprefix("TRANSFER_MODE_").lower().replace("_", "-")


def resolve_request(
    message: VapiMessage,
    arguments: EscalationArguments,
    *,
    tool_call_id: str | None = None,
    can_confirm: bool = False,
) -> pb.ResolveEscalationRequest:
    """The routing request for an escalation, whichever Vapi path (transfer tool or function tool) it took.

    A call Escalade dialled back carries `call.assistantOverrides.variableValues.originalCallId`: it becomes
    `callback_of_call_id`, so routing offers the specialist held for that callback. `can_confirm`: the
    function tool's path, where the assistant can still ask the caller before any transfer."""
    problems = [arguments.problem] if arguments.problem else []
    complexity = pb.COMPLEXITY_UNSPECIFIED
    if arguments.complexity_level:
        known = COMPLEXITY_BY_NAME.get(arguments.complexity_level)
        if known is None:
            problems.append(f"unknown complexity_level {arguments.complexity_level[:40]!r}")
        else:
            complexity = known
    request = pb.ResolveEscalationRequest(
        call_id=message.call_id,
        tool_call_id=arguments.tool_call_id if tool_call_id is None else tool_call_id,
        caller_number=message.caller_number,
        caller_sip_uri=message.caller_sip_uri,
        issue_category=arguments.issue_category,
        complexity=complexity,
        customer_context=arguments.customer_context,
        escalation_reason=arguments.escalation_reason,
        transcript=message.transcript[-_MAX_TRANSCRIPT:],
        arguments_problem="; ".join(problems),
        callback_of_call_id=message.original_call_id,
        can_confirm=can_confirm,
        assistant_summary=arguments.summary,
        steps_tried=list(arguments.steps_tried),
        entities=[pb.HandoffEntity(kind=kind, value=value) for kind, value in arguments.entities],
    )
    if arguments.confidence is not None:
        request.confidence = arguments.confidence
    return request


def _transfer_plan(decision: pb.Decision, failed_message: str) -> dict[str, Any]:
    mode = decision.transfer_mode
    plan: dict[str, Any] = {"mode": mode_name(mode)}
    says_message = mode in _SAY_MESSAGE_MODES or mode == pb.TRANSFER_MODE_WARM_TRANSFER_EXPERIMENTAL
    if says_message and decision.handoff_message:
        plan["message"] = spoken(decision.handoff_message)
    if mode in _SUMMARY_MODES and decision.summary_messages:
        plan["summaryPlan"] = {
            "enabled": True,
            "messages": [{"role": m.role, "content": m.content} for m in decision.summary_messages],
        }
    # Every mode: SDK 3.0.0 documents fallbackPlan for warm-transfer-experimental and for blind (SIP cold)
    # transfers with outcome detection; the other warm modes accept it in the schema.
    plan["fallbackPlan"] = fallback_plan(failed_message)
    return plan


def destination_json(
    decision: pb.Decision, *, failed_message: str = DEFAULT_TRANSFER_FAILED_MESSAGE
) -> dict[str, Any]:
    """Vapi's `destination` object for a decision; raises `UnusableDecision` when it cannot be sent.

    `failed_message` is said to the caller if the transfer fails (`transferPlan.fallbackPlan`); sentences
    longer than Vapi takes are cut at a sentence boundary (`spoken`)."""
    target = decision.destination.WhichOneof("target")
    out: dict[str, Any]
    if target == "number":
        number = decision.destination.number
        if not E164.match(number):
            raise UnusableDecision("destination number is not E.164")
        out = {"type": "number", "number": number}
        extension = decision.destination.extension
        if extension:
            if not 1 <= len(extension) <= 10:
                raise UnusableDecision("extension must be 1-10 characters")
            out["extension"] = extension
    elif target == "sip_uri":
        uri = decision.destination.sip_uri
        if not _SIP.match(uri):
            raise UnusableDecision("destination SIP URI must start with sip: or sips:")
        out = {"type": "sip", "sipUri": uri}
        headers = sip_headers(decision)
        if headers:
            out["sipHeaders"] = headers
    else:
        raise UnusableDecision("decision has no destination")
    name = decision.agent_display_name or decision.team_display_name
    if name:
        out["name"] = name
    if decision.caller_message:
        out["message"] = spoken(decision.caller_message)
    out["transferPlan"] = _transfer_plan(decision, failed_message)
    return out


DECISION_ID_HEADER = "X-Escalade-Decision-Id"
"""The SIP header that tells the specialist's phone or desktop which decision (and so which handoff packet,
`GetHandoffPacket`) the call comes with."""
CALL_ID_HEADER = "X-Escalade-Call-Id"
_HEADER_VALUE = re.compile(r"[^\x21-\x7e]")


def sip_headers(decision: pb.Decision) -> dict[str, str]:
    """`sipHeaders` of a SIP destination: the decision id and the Vapi call id (printable ASCII only, so
    nothing a caller said can break the SIP message). The call summary itself travels in Vapi's own
    `X-Transfer-Summary` header in `blind-transfer-add-summary-to-sip-header` mode (its summary prompt
    carries the packet)."""
    headers: dict[str, str] = {}
    for name, value in ((DECISION_ID_HEADER, decision.decision_id), (CALL_ID_HEADER, decision.call_id)):
        cleaned = _HEADER_VALUE.sub("", value)[:128]
        if cleaned:
            headers[name] = cleaned
    return headers


def transfer_response(
    decision: pb.Decision, *, failed_message: str = DEFAULT_TRANSFER_FAILED_MESSAGE
) -> dict[str, Any]:
    """The body answering a `transfer-destination-request`."""
    return {"destination": destination_json(decision, failed_message=failed_message)}


def control_transfer(destination: dict[str, Any], content: str) -> dict[str, Any]:
    """Live Call Control body (SDK `ClientInboundMessageMessage_Transfer`) for a Vapi destination object."""
    body: dict[str, Any] = {"type": "transfer", "destination": destination}
    if content:
        body["content"] = spoken(content)
    return body


def tool_result(name: str, tool_call_id: str, sentence: str) -> dict[str, Any]:
    """One `results[]` entry of a `tool-calls` reply (SDK `ToolCallResult`)."""
    return {"name": name, "toolCallId": tool_call_id, "result": sentence}


def speakable_number(number: str) -> str:
    """An E.164 number grouped for reading aloud: `+1 555 010 0900` (NANP); elsewhere the last four digits
    together and groups of three before them (the country code is not known without a numbering plan)."""
    digits = number.removeprefix("+")
    if not digits.isdigit() or len(digits) < 7 or not number.startswith("+"):
        return number
    if len(digits) == 11 and digits.startswith("1"):
        return f"+1 {digits[1:4]} {digits[4:7]} {digits[7:]}"
    head, tail = digits[:-4], digits[-4:]
    groups: list[str] = []
    while head:
        groups.insert(0, head[-3:])
        head = head[:-3]
    if len(groups) > 1 and len(groups[0]) == 1:
        groups[0:2] = [groups[0] + groups[1]]
    return "+" + " ".join([*groups, tail])


CALLBACK_PROMISE = "We'll call you back at this number as soon as a specialist is free."


def transfer_unavailable_result(fallback_number: str) -> str:
    """Tool result when the transfer could not be started: the caller is still with the assistant. The
    fallback line is offered when it is a number (empty: a SIP line, which a caller cannot dial)."""
    said = (
        "The transfer could not be started, so the caller is still on the line with you. Tell them you "
        "couldn't connect them to a specialist right now and offer to have a specialist call them back"
    )
    if not fallback_number:
        return spoken(f"{said}.")
    return spoken(
        f"{said}; if they would rather call us, give them our support line, "
        f"{speakable_number(fallback_number)}, reading it out digit by digit."
    )


def callback_result(decision: pb.Decision) -> str:
    """Tool result for a CALLBACK decision with the callback queued: what the caller is to hear (their place
    in the queue and when to expect the call, from routing) and the callback promise. Nothing is transferred.
    """
    said = decision.caller_message.strip()
    return spoken(f"{said} {CALLBACK_PROMISE}" if said else CALLBACK_PROMISE)


def callback_input(
    decision: pb.Decision,
    request: pb.ResolveEscalationRequest,
    *,
    dial_heartbeat_timeout_seconds: int = QueueCallbackInput.dial_heartbeat_timeout_seconds,
) -> QueueCallbackInput:
    """`QueueCallbackWorkflow`'s input for a CALLBACK decision (outbox kind 'callback'), with the edge's
    dial heartbeat timeout. The starter judges the number and adds the policy's queue knobs
    (`workflows.client.prepare_callback`)."""
    ticket = decision.callback if decision.HasField("callback") else None
    number = decision.caller_number or request.caller_number
    return QueueCallbackInput(
        call_id=decision.call_id or request.call_id,
        customer_number=number,
        masked_number=mask_number(number),
        team_id=decision.team_id,
        tier=decision.tier,
        category=decision.issue_category,
        complexity=complexity_name(decision.effective_complexity),
        priority=ticket.priority if ticket is not None else 0,
        context=request.customer_context,
        reason=request.escalation_reason,
        decision_id=decision.decision_id,
        first_message=ticket.first_message if ticket is not None else "",
        dial_heartbeat_timeout_seconds=dial_heartbeat_timeout_seconds,
    )


def _instant(text: str) -> datetime | None:
    """An ISO-8601 instant as Vapi writes it (`2025-11-18T14:02:11.482Z`); None when empty or unreadable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
    except ValueError:
        return None


def _seconds_between(begun: datetime | None, ended: datetime | None) -> float | None:
    if begun is None or ended is None or (begun.tzinfo is None) != (ended.tzinfo is None):
        return None
    return (ended - begun).total_seconds()


_MAX_OUTPUTS = 50
_MAX_OUTPUT_JSON = 8_000
_MAX_CATEGORY = 40


def structured_outputs(artifact: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`artifact.structuredOutputs` (`{id: {name, result}}`) as plain JSON, bounded: at most 50 outputs,
    names up to 200 characters, results whose JSON exceeds 8000 characters dropped (string results cut)."""
    raw = artifact.get("structuredOutputs")
    if not isinstance(raw, dict):
        return {}
    outputs: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if len(outputs) >= _MAX_OUTPUTS:
            break
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            continue
        result = value.get("result")
        if isinstance(result, str):
            result = result[:_MAX_OUTPUT_JSON]
        else:
            try:
                if len(json.dumps(result)) > _MAX_OUTPUT_JSON:
                    continue
            except (TypeError, ValueError, RecursionError):
                continue
        outputs[str(key)[:200]] = {"name": value["name"][:200], "result": result}
    return outputs


def _category(value: Any) -> str:
    return value.strip().lower()[:_MAX_CATEGORY] if isinstance(value, str) and value.strip() else ""


def final_category(outputs: dict[str, dict[str, Any]], analysis: Any) -> str:
    """The call's category as the assistant extracted it: a structured output named `issue_category`, else
    the `issue_category` field of one named `escalation`, else (deprecated) `analysis.structuredData`."""
    by_name = {output["name"].strip().lower(): output["result"] for output in outputs.values()}
    found = _category(by_name.get("issue_category"))
    escalation = by_name.get("escalation")
    if not found and isinstance(escalation, dict):
        found = _category(escalation.get("issue_category"))
    structured = analysis.get("structuredData") if isinstance(analysis, dict) else None
    if not found and isinstance(structured, dict):
        found = _category(structured.get("issue_category")) or _category(structured.get("category"))
    return found


def review_input(message: VapiMessage) -> EscalationReviewInput:
    """`EscalationReviewWorkflow`'s input from an end-of-call report (outbox kind 'review'); the starter adds
    the policy's review knobs (`workflows.client.prepare_review`). The workflow reads the stored decision
    itself.

    `transfer_statuses` are the non-empty `artifact.transfers[].status`; `destination` is where Vapi
    forwarded the call (number, else SIP URI); `structured_outputs` are `artifact.structuredOutputs`;
    `final_category` comes from them first and from the deprecated `analysis.structuredData` only when they
    do not name one (`final_category`).
    """
    body = message.body
    started = _instant(body["startedAt"]) if isinstance(body.get("startedAt"), str) else None
    ended = _instant(body["endedAt"]) if isinstance(body.get("endedAt"), str) else None
    analysis = body.get("analysis")
    artifact = message.artifact or {}
    transfers = artifact.get("transfers")
    statuses = [
        t["status"]
        for t in (transfers if isinstance(transfers, list) else [])
        if isinstance(t, dict) and isinstance(t.get("status"), str) and t["status"]
    ]
    destination = body.get("destination")
    where = ""
    if isinstance(destination, dict):
        for key in ("number", "sipUri"):
            if isinstance(destination.get(key), str) and destination[key]:
                where = destination[key]
                break
    raw_summary = analysis.get("summary") if isinstance(analysis, dict) else None
    summary = raw_summary if isinstance(raw_summary, str) else ""
    outputs = structured_outputs(artifact)
    return EscalationReviewInput(
        call_id=message.call_id,
        ended_reason=message.ended_reason,
        started_at=started,
        ended_at=ended,
        duration_seconds=_seconds_between(started, ended),
        summary=summary[:_MAX_TRANSCRIPT],
        transcript=message.transcript[-_MAX_REVIEW_TRANSCRIPT:],
        transfer_statuses=statuses,
        destination=where,
        final_category=final_category(outputs, analysis),
        structured_outputs=outputs,
    )
