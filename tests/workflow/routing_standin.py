"""A programmable stand-in of the routing gRPC service on 127.0.0.1:0 (real grpc.aio server, real stub),
for the routing activities and the availability relay. Tests set its answers and read what it was asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc


@dataclass
class RoutingStandin(routing_pb2_grpc.RoutingServiceServicer):
    tickets: list[pb.CallbackTicket] = field(default_factory=list)
    decisions: dict[str, pb.Decision] = field(default_factory=dict)
    claim: pb.ClaimCallbackResponse = field(default_factory=pb.ClaimCallbackResponse)
    finish_error: grpc.StatusCode | None = None
    events: asyncio.Queue[pb.WatchAvailabilityResponse | None] = field(default_factory=asyncio.Queue)
    requests: list[Any] = field(default_factory=list)
    watchers: int = 0
    review_outcomes: list[pb.RecordReviewOutcomeRequest] = field(default_factory=list)
    teams: list[str] = field(default_factory=list)
    """Teams of the policy besides those of `tickets` (for GetQueueStatus)."""

    async def ClaimCallback(self, request: pb.ClaimCallbackRequest, context: Any) -> pb.ClaimCallbackResponse:
        self.requests.append(request)
        if not any(t.call_id == request.call_id for t in self.tickets):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no callback for call {request.call_id!r}")
        return self.claim

    async def FinishCallback(
        self, request: pb.FinishCallbackRequest, context: Any
    ) -> pb.FinishCallbackResponse:
        self.requests.append(request)
        if self.finish_error is not None:
            await context.abort(self.finish_error, "already ended as connected")
        return pb.FinishCallbackResponse(
            callback=pb.CallbackTicket(call_id=request.call_id, state=request.state)
        )

    async def GetDecision(self, request: pb.GetDecisionRequest, context: Any) -> pb.GetDecisionResponse:
        self.requests.append(request)
        if request.call_id not in self.decisions:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no decision")
        return pb.GetDecisionResponse(decision=self.decisions[request.call_id])

    async def RecordEscalationOutcome(
        self, request: pb.RecordEscalationOutcomeRequest, context: Any
    ) -> pb.RecordEscalationOutcomeResponse:
        self.requests.append(request)
        return pb.RecordEscalationOutcomeResponse(
            customer=pb.Customer(
                number="+15550100003", previous_escalations=3, last_agent_id=request.agent_id
            ),
            counted=True,
        )

    async def RecordReviewOutcome(
        self, request: pb.RecordReviewOutcomeRequest, context: Any
    ) -> pb.RecordReviewOutcomeResponse:
        self.review_outcomes.append(request)
        return pb.RecordReviewOutcomeResponse(outcome="confirmed" if request.verdict else "")

    async def ListCallbacks(self, request: pb.ListCallbacksRequest, context: Any) -> pb.ListCallbacksResponse:
        self.requests.append(request)
        chosen = [
            t
            for t in self.tickets
            if (not request.team_id or t.team_id == request.team_id)
            and (
                t.state == request.state
                or (
                    request.state == pb.CALLBACK_STATE_UNSPECIFIED
                    and t.state in (pb.CALLBACK_STATE_WAITING, pb.CALLBACK_STATE_RESERVED)
                )
            )
        ]
        if not 0 <= request.page_size <= 1000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size out of range")
        head = sorted(chosen, key=lambda t: t.position)[: request.page_size or 1000]
        return pb.ListCallbacksResponse(callbacks=head)

    async def GetQueueStatus(
        self, request: pb.GetQueueStatusRequest, context: Any
    ) -> pb.GetQueueStatusResponse:
        self.requests.append(request)
        teams = sorted({t.team_id for t in self.tickets} | set(self.teams))
        return pb.GetQueueStatusResponse(
            teams=[
                pb.TeamQueueStatus(
                    team_id=team,
                    waiting_callbacks=sum(
                        1 for t in self.tickets if t.team_id == team and t.state == pb.CALLBACK_STATE_WAITING
                    ),
                )
                for team in teams
            ]
        )

    async def WatchAvailability(
        self, request: pb.WatchAvailabilityRequest, context: Any
    ) -> AsyncIterator[pb.WatchAvailabilityResponse]:
        self.watchers += 1
        while True:
            event = await self.events.get()
            if event is None:  # drop the stream (as a restarting routing replica would)
                return
            yield event


def ticket(
    call_id: str, team_id: str, position: int, state: pb.CallbackState.ValueType = pb.CALLBACK_STATE_WAITING
) -> pb.CallbackTicket:
    return pb.CallbackTicket(call_id=call_id, team_id=team_id, position=position, state=state)


def stamp(seconds: int) -> Timestamp:
    return Timestamp(seconds=seconds)


async def serve(standin: RoutingStandin) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    routing_pb2_grpc.add_RoutingServiceServicer_to_server(standin, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"
