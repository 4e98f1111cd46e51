"""`end-of-call-report`: the review of an escalated call starts from its report.

When routing has a decision for the call, the review workflow start (`review-<call id>`, its input built
from the report: transcript, summary, transfers and structured outputs) is recorded in the outbox
(`webhook_edge.followups`). When routing has none, the report itself decides
(`VapiMessage.escalation_evidence`): a call whose report shows an escalation (the tool was called, a transfer
was attempted) was answered without routing, with the fallback line, maybe by another edge while routing was
down; its review is recorded and finds the decision missing, so a person looks at it. A call that shows no
escalation has nothing to review. When routing cannot be asked, the start is recorded anyway and the review
workflow looks the decision up itself. Vapi gets `{}` whatever happens.
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from webhook_edge.fallback import log_routing_failure
from webhook_edge.followups import FollowUps
from webhook_edge.routing_client import RoutingClient
from webhook_edge.translate import review_input
from webhook_edge.vapi_models import VapiMessage

__all__ = ["EndOfCallReports"]

log = structlog.get_logger(__name__)


class EndOfCallReports:
    """Answers `end-of-call-report` messages."""

    def __init__(self, routing: RoutingClient, followups: FollowUps) -> None:
        self.routing = routing
        self.followups = followups

    async def handle(self, message: VapiMessage) -> dict[str, Any]:
        """The reply body: `{}`."""
        call_id = message.call_id
        decision: pb.Decision | None
        try:
            decision = await self.routing.get_decision(call_id)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            # routing unreachable: record anyway; the review workflow checks the decision itself
            log_routing_failure("decision_lookup_failed", "GetDecision failed; review recorded anyway", exc)
            await self.followups.record(review_input(message))
            return {}
        if decision is None:
            evidence = message.escalation_evidence()
            if not evidence:
                log.info("end_of_call_not_escalated")
                return {}
            # escalated, but routing never decided: answered with the fallback line (routing was down)
            log.warning("end_of_call_escalated_without_decision", evidence=evidence)
        await self.followups.record(review_input(message))
        return {}
