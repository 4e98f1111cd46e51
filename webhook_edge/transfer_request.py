"""`transfer-destination-request`: the transfer tool asks where to send the caller.

The answer is always `{"destination": {...}}`: routing's choice, or the fallback line when routing cannot
be used (`Escalations.decide`). The tool's arguments are read from the message (tolerantly: routing
proceeds from the caller's data alone when they are missing or malformed, and the problem is logged).
"""

from __future__ import annotations

from typing import Any

import structlog

from webhook_edge.escalation import Escalations
from webhook_edge.translate import resolve_request
from webhook_edge.vapi_models import VapiMessage

__all__ = ["TransferRequests"]

log = structlog.get_logger(__name__)


class TransferRequests:
    """Answers `transfer-destination-request` messages."""

    def __init__(self, escalations: Escalations) -> None:
        self.escalations = escalations

    async def handle(self, message: VapiMessage) -> dict[str, Any]:
        """The reply body: `{"destination": ...}`."""
        arguments = message.escalation_arguments()
        request = resolve_request(message, arguments)
        with structlog.contextvars.bound_contextvars(tool_call_id=request.tool_call_id):
            if arguments.problem:
                log.info("tool_arguments_problem", problem=arguments.problem)
            destination, _ = await self.escalations.decide(request)
        return {"destination": destination}
