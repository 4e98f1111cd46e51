"""`status-update` and `transfer-update`: a call's lifecycle, forwarded to routing as call events.

    status-update   forwarding          -> RecordCallEvent FORWARDING
                    ended (endedReason) -> RecordCallEvent ENDED
                    any other status    -> nothing
    transfer-update                     -> RecordCallEvent TRANSFER_UPDATE with the latest attempt's status
                                           (`artifact.transfers[-1].status`)

Nothing is freed here: `ended` with `assistant-forwarded-call` means the specialist has just started
talking. Routing decides what each event means for the assignment. Vapi gets `{}` whatever happens; a
failed or late RecordCallEvent is logged with its decoded gRPC status.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import structlog

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from webhook_edge.fallback import log_routing_failure
from webhook_edge.routing_client import RoutingClient
from webhook_edge.vapi_models import VapiMessage

__all__ = ["MAX_REASON", "CallEvents"]

log = structlog.get_logger(__name__)

MAX_REASON = 200
"""Longest `endedReason` forwarded to routing."""


class CallEvents:
    """Answers `status-update` and `transfer-update` messages."""

    def __init__(self, routing: RoutingClient) -> None:
        self.routing = routing

    async def status_update(self, message: VapiMessage) -> dict[str, Any]:
        """`forwarding` -> FORWARDING, `ended` -> ENDED with its endedReason; other statuses are ignored."""
        if message.status == "forwarding":
            await self.record(message, pb.RecordCallEventRequest(kind=pb.CALL_EVENT_KIND_FORWARDING))
        elif message.status == "ended":
            event = pb.RecordCallEventRequest(
                kind=pb.CALL_EVENT_KIND_ENDED, ended_reason=message.ended_reason[:MAX_REASON]
            )
            await self.record(message, event)
        return {}

    async def transfer_update(self, message: VapiMessage) -> dict[str, Any]:
        """TRANSFER_UPDATE with the latest transfer attempt's status (`artifact.transfers[-1].status`)."""
        event = pb.RecordCallEventRequest(
            kind=pb.CALL_EVENT_KIND_TRANSFER_UPDATE, transfer_status=message.transfer_status
        )
        await self.record(message, event)
        return {}

    async def record(self, message: VapiMessage, event: pb.RecordCallEventRequest) -> None:
        """Forward one call event to routing; failures are logged, never raised."""
        event.call_id = message.call_id
        stamp = message.timestamp_ms
        if stamp is not None:
            event.occurred_at.FromMilliseconds(int(stamp))
        kind = pb.CallEventKind.Name(event.kind)
        try:
            async with asyncio.timeout(self.routing.deadline_seconds + 0.25):
                reply = await self.routing.record_call_event(event)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            log_routing_failure("call_event_failed", f"RecordCallEvent {kind} failed", exc)
            return
        assignment = reply.assignment if reply.HasField("assignment") else None
        log.info(
            "call_event_recorded",
            kind=kind,
            ended_reason=event.ended_reason or None,
            transfer_status=event.transfer_status or None,
            changed=reply.changed,
            stage=pb.AssignmentStage.Name(assignment.stage) if assignment is not None else None,
            agent=assignment.agent_id if assignment is not None else None,
            agent_set_away=reply.agent_set_away or None,
        )
