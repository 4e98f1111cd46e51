"""Thin typed wrapper over the routing service's gRPC stub, with the edge's deadline on every call.

One long-lived `grpc.aio` channel per process (created in the app's lifespan) with keepalive and a retry
policy: UNAVAILABLE only, a few quick attempts, all bounded by the per-call deadline. The channel carries
the TLS and the bearer token of the edge's `RoutingClientSettings` (`escalade_platform.routing_channel`).
"""

from __future__ import annotations

import json

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.generated.escalade.routing.v1 import routing_pb2_grpc as pb_grpc
from escalade_platform.routing_channel import routing_channel
from escalade_platform.settings import RoutingClientSettings

__all__ = ["SERVICE_NAME", "RoutingClient", "channel_options"]

SERVICE_NAME = "escalade.routing.v1.RoutingService"

_SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": SERVICE_NAME}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.02s",
                "maxBackoff": "0.2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def channel_options() -> list[tuple[str, int | str]]:
    """Keepalive and the retry service config.

    Pings every 60 s while calls are in flight, dropping the connection when one goes unanswered for 10 s.
    No pings on an idle channel: a gRPC server's default policy (one ping per 5 minutes without data)
    would answer those with GOAWAY "too_many_pings"; a connection that died while idle fails the next call
    as UNAVAILABLE, which the retry policy retries on a fresh connection within the deadline.
    """
    return [
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(_SERVICE_CONFIG)),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2_000),
    ]


class RoutingClient:
    """The routing calls the edge makes; every call carries `deadline_seconds`."""

    def __init__(
        self, channel: grpc.aio.Channel, *, deadline_seconds: float, health_deadline_seconds: float = 0.5
    ) -> None:
        self._channel = channel
        self._stub = pb_grpc.RoutingServiceStub(channel)
        self._health = health_pb2_grpc.HealthStub(channel)
        self.deadline_seconds = deadline_seconds
        self.health_deadline_seconds = health_deadline_seconds

    @classmethod
    def connect(
        cls, settings: RoutingClientSettings, *, deadline_seconds: float, health_deadline_seconds: float = 0.5
    ) -> RoutingClient:
        """A client over a new channel to `settings.routing_address`, with the settings' TLS and token
        (`routing_channel.RoutingChannelError` when a TLS file cannot be read)."""
        channel = routing_channel(settings, options=channel_options())
        return cls(
            channel, deadline_seconds=deadline_seconds, health_deadline_seconds=health_deadline_seconds
        )

    async def resolve(self, request: pb.ResolveEscalationRequest) -> pb.Decision:
        """ResolveEscalation; raises `grpc.aio.AioRpcError` (DEADLINE_EXCEEDED on overrun)."""
        response = await self._stub.ResolveEscalation(request, timeout=self.deadline_seconds)
        return response.decision

    async def release(self, call_id: str, reason: str) -> pb.ReleaseAssignmentResponse:
        """ReleaseAssignment: frees the call's specialist whatever the stage (an administrative override; the
        webhook forwards Vapi's call events with `record_call_event` instead)."""
        request = pb.ReleaseAssignmentRequest(call_id=call_id, reason=reason)
        return await self._stub.ReleaseAssignment(request, timeout=self.deadline_seconds)

    async def record_call_event(self, request: pb.RecordCallEventRequest) -> pb.RecordCallEventResponse:
        """RecordCallEvent: what Vapi reported about a live call (routing decides what it means)."""
        return await self._stub.RecordCallEvent(request, timeout=self.deadline_seconds)

    async def get_decision(self, call_id: str) -> pb.Decision | None:
        """The call's decision, or None when routing never decided for it (NOT_FOUND)."""
        try:
            response = await self._stub.GetDecision(
                pb.GetDecisionRequest(call_id=call_id), timeout=self.deadline_seconds
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.decision if response.HasField("decision") else None

    async def ready(self) -> tuple[bool, str]:
        """(serving?, detail) from grpc.health.v1, for the service and else the server as a whole."""
        detail = ""
        for service in (SERVICE_NAME, ""):
            try:
                reply = await self._health.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=self.health_deadline_seconds
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    detail = "health service does not know the routing service"
                    continue
                return False, f"{exc.code().name}: {exc.details() or ''}".strip()
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            return reply.status == health_pb2.HealthCheckResponse.SERVING, status
        return False, detail

    async def close(self, grace: float | None = None) -> None:
        """Close the channel (pending calls get `grace` seconds)."""
        await self._channel.close(grace)
