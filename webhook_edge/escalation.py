"""Routing one escalation: the routing decision as a Vapi destination, or the fallback line.

Shared by both ways an assistant escalates (the transfer tool's `transfer-destination-request` and the
function tool's `tool-calls`). Routing gets its deadline plus a quarter second; a gRPC error, a missed
deadline, a FALLBACK decision or a decision Vapi could not take is answered with the fallback line
(`webhook_edge.fallback`). A CALLBACK decision that is not a dry run records its callback workflow start
(`callback-<call id>`) in the outbox before the answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import structlog

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from webhook_edge.fallback import EdgeFallback, log_fallback
from webhook_edge.followups import FollowUps
from webhook_edge.routing_client import RoutingClient
from webhook_edge.settings import EdgeSettings
from webhook_edge.translate import UnusableDecision, callback_input, complexity_name, destination_json

__all__ = ["Escalations"]

log = structlog.get_logger(__name__)


class Escalations:
    """Asks routing where an escalated call goes and turns the answer into a Vapi destination."""

    def __init__(
        self, settings: EdgeSettings, routing: RoutingClient, fallback: EdgeFallback, followups: FollowUps
    ) -> None:
        self.settings = settings
        self.routing = routing
        self.fallback = fallback
        self.followups = followups

    async def decide(self, request: pb.ResolveEscalationRequest) -> tuple[dict[str, Any], pb.Decision | None]:
        """(Vapi destination, decision); the fallback destination whenever routing cannot be used."""
        budget = self.routing.deadline_seconds + 0.25
        try:
            async with asyncio.timeout(budget):
                decision = await self.routing.resolve(request)
        except grpc.aio.AioRpcError as exc:
            log_fallback("routing_error", exc)
            return self.fallback.destination(), None
        except TimeoutError as exc:
            log_fallback("routing_timeout", exc)
            return self.fallback.destination(), None
        if decision.kind == pb.DECISION_KIND_FALLBACK:
            log_fallback("routing_fallback_decision", reason_text=decision.reason[:300])
            return self.fallback.for_decision(decision), decision
        try:
            destination = destination_json(decision, failed_message=self.settings.transfer_failed_message)
        except UnusableDecision as exc:
            log_fallback("unusable_decision", exc, decision_id=decision.decision_id)
            return self.fallback.destination(), decision
        if decision.kind == pb.DECISION_KIND_CALLBACK and not decision.dry_run:
            callback = callback_input(
                decision,
                request,
                dial_heartbeat_timeout_seconds=self.settings.dial_heartbeat_timeout_seconds,
            )
            if callback.customer_number:
                await self.followups.record(callback)
            else:  # a web call has no number to call back: the queue line is all it gets
                log.info("callback_not_recorded", reason="no caller number")
        # routing logs each decision at info; the edge's copy is for debugging only (a line per request costs)
        log.debug(
            "escalation_routed",
            kind=pb.DecisionKind.Name(decision.kind),
            team=decision.team_id,
            agent=decision.agent_id,
            complexity=complexity_name(decision.effective_complexity),
            replayed=decision.replayed,
            reason=decision.reason[:300],
        )
        return destination, decision
