"""`tool-calls`: the function tool `escalateToSupport`, acted on through Live Call Control.

Each tool call in the message gets a result entry. For the first `escalateToSupport` call the edge decides
(`Escalations.decide`; the request says the assistant can still confirm the category with the caller, so an
uncertain decision may ask it to), acts, and says honestly what happened: the transfer is POSTed to the
call's control URL (`webhook_edge.control`, bounded by `control_timeout_seconds`) before the reply, and the
result is what the assistant reads. A further escalation in the same message gets an error entry and is not
routed (one call cannot be transferred twice at once); any other tool gets an error entry naming it.
"""

from __future__ import annotations

from typing import Any

import structlog

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from webhook_edge.control import ControlClient
from webhook_edge.escalation import Escalations
from webhook_edge.fallback import EdgeFallback
from webhook_edge.metrics import EDGE_METRICS
from webhook_edge.translate import (
    callback_result,
    resolve_request,
    spoken,
    tool_result,
    transfer_unavailable_result,
)
from webhook_edge.vapi_models import ESCALATION_TOOL, VapiMessage

__all__ = ["DEFAULT_SENTENCE", "ToolCalls"]

log = structlog.get_logger(__name__)

DEFAULT_SENTENCE = "I'm transferring you to a specialist now. Please stay on the line."
"""Said when a destination carries no message of its own."""


class ToolCalls:
    """Answers `tool-calls` messages."""

    def __init__(self, escalations: Escalations, control: ControlClient, fallback: EdgeFallback) -> None:
        self.escalations = escalations
        self.control = control
        self.fallback = fallback

    async def handle(self, message: VapiMessage) -> dict[str, Any]:
        """The reply body: `{"results": [...]}`, one entry per tool call."""
        results: list[dict[str, Any]] = []
        escalated = False
        for call in message.tool_calls():
            if call.name != ESCALATION_TOOL:
                results.append(
                    {
                        "name": call.name or "unknown",
                        "toolCallId": call.id,
                        "error": f"The tool {call.name or '(unnamed)'} is not handled by this server.",
                    }
                )
                continue
            if escalated:
                results.append(
                    {
                        "name": call.name,
                        "toolCallId": call.id,
                        "error": "Only one escalation per message is handled; the first one is under way.",
                    }
                )
                continue
            escalated = True
            request = resolve_request(message, call.arguments, tool_call_id=call.id, can_confirm=True)
            with structlog.contextvars.bound_contextvars(tool_call_id=call.id):
                destination, decision = await self.escalations.decide(request)
                result = await self.escalation_result(message, request, destination, decision)
            results.append(tool_result(call.name, call.id, result))
        return {"results": results}

    async def escalation_result(
        self,
        message: VapiMessage,
        request: pb.ResolveEscalationRequest,
        destination: dict[str, Any],
        decision: pb.Decision | None,
    ) -> str:
        """Act on a decision and return the tool result the assistant reads.

        CONFIRM_CATEGORY (routing was unsure of the category): no transfer; the result is routing's
        instruction to confirm the category with the caller and escalate again.
        CALLBACK with the callback queued: no transfer (the workflow is about to dial the caller, whose line
        must stay free); the result is routing's caller message (queue position, when to expect the call)
        plus the callback promise. Otherwise (a transfer, the fallback line, or a CALLBACK that could not be
        queued because the caller has no number: its queue line) the transfer is POSTed to the control URL
        first; the result is the caller's sentence only when the control URL accepted it, else it tells the
        assistant the transfer could not be started and to offer a callback or read out the fallback line.
        """
        if decision is not None and decision.kind == pb.DECISION_KIND_CONFIRM_CATEGORY:
            log.info("tool_confirm_category", category=decision.issue_category)
            return spoken(decision.caller_message)
        if (
            decision is not None
            and decision.kind == pb.DECISION_KIND_CALLBACK
            and (decision.caller_number or request.caller_number)
        ):
            log.info("tool_callback_promised", queue_position=decision.callback.position or None)
            return callback_result(decision)
        sentence = spoken(str(destination.get("message") or DEFAULT_SENTENCE))
        # the control message's content is the one sentence the caller hears; the destination stays silent
        silent = {**destination, "message": ""}
        outcome = await self.control.transfer(
            message.control_url, silent, sentence, key=(request.call_id, request.tool_call_id)
        )
        if outcome.started:
            return sentence
        EDGE_METRICS.fallback("control_transfer_failed")
        log.warning("tool_transfer_not_started", outcome=outcome.value)
        return transfer_unavailable_result(self.fallback.line.number)
