"""Prometheus metrics, request ids and tracing of the webhook edge: `install_observability(app)` and
`EdgeMetricsEndpoint`.

    GET /metrics   on its own port (`edge_metrics_port`, never the webhook's), the edge's registry in the
                   Prometheus text format:

    escalade_edge_webhook_latency_seconds          webhook request handling time, end to end
    escalade_edge_webhook_requests_total{status}   webhook requests by HTTP status class (2xx, 4xx, 5xx)
    escalade_edge_fallbacks_total{cause}           fallback answers by cause (FALLBACK_CAUSES)
    escalade_edge_auth_failures_total{reason}      webhooks refused with 401, by reason (AUTH_REASONS)
    escalade_edge_outbox_depth{kind}               workflow starts recorded but not yet delivered to Temporal

Every request gets a request id (the caller's `X-Request-Id` when it is a sane token, else a new one),
bound to the structlog context for each log line of the request and echoed in the response header.
The registry is the edge's own (not prometheus_client's global one); labels are closed sets.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import grpc
import structlog
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from escalade_platform.metrics import LATENCY_BUCKETS, PrometheusEndpoint
from escalade_platform.tracing import instrument_fastapi

__all__ = [
    "AUTH_REASONS",
    "EDGE_METRICS",
    "FALLBACK_CAUSES",
    "EdgeMetrics",
    "EdgeMetricsEndpoint",
    "RequestContextMiddleware",
    "auth_reason",
    "fallback_cause",
    "install_observability",
]

log = structlog.get_logger(__name__)

FALLBACK_CAUSES = (
    "routing_unavailable",
    "deadline_exceeded",
    "routing_error",
    "no_rule",
    "unusable_decision",
    "control_transfer_failed",
    "unreadable_request",
    "internal",
)
"""routing_unavailable: routing not reachable (UNAVAILABLE); deadline_exceeded: no answer in time;
routing_error: any other gRPC error; no_rule: routing itself decided FALLBACK (no rule/team matched);
unusable_decision: a decision the edge could not turn into a Vapi destination; control_transfer_failed: the
Live Call Control transfer could not be started (the tool result offers a callback or the fallback line);
unreadable_request: a transfer request too large or malformed to read; internal: the edge failed."""
AUTH_REASONS = ("missing", "mismatch", "expired", "bad_timestamp", "not_configured", "other")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def fallback_cause(reason: str, error: BaseException | None = None) -> str:
    """The bounded `cause` label for a fallback answer (the reason strings of `webhook_edge.fallback`)."""
    if isinstance(error, grpc.aio.AioRpcError):
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            return "routing_unavailable"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "deadline_exceeded"
        return "routing_error"
    mapping = {
        "routing_timeout": "deadline_exceeded",
        "routing_fallback_decision": "no_rule",
        "unusable_decision": "unusable_decision",
        "routing_error": "routing_error",
        "internal": "internal",
        "control_transfer_failed": "control_transfer_failed",
        "unreadable_request": "unreadable_request",
    }
    return mapping.get(reason, "internal")


def auth_reason(message: str) -> str:
    """The bounded `reason` label for an AuthError message."""
    text = message.lower()
    if "missing credentials" in text:
        return "missing"
    if "no webhook secret" in text:
        return "not_configured"
    if "outside the accepted window" in text:
        return "expired"
    if "timestamp" in text or "needs a" in text:
        return "bad_timestamp"
    if "does not match" in text:
        return "mismatch"
    return "other"


class EdgeMetrics:
    """The edge's metrics on one registry (one per process; tests read deltas)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "escalade_edge_webhook_latency_seconds",
            "Webhook request handling time at the edge, end to end (routing call included).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "escalade_edge_webhook_requests", "Webhook requests by HTTP status class.", ["status"], registry=r
        )
        self.fallbacks = Counter(
            "escalade_edge_fallbacks",
            "Callers answered with the fallback line, by cause.",
            ["cause"],
            registry=r,
        )
        self.auth_failures = Counter(
            "escalade_edge_auth_failures",
            "Webhooks refused as unauthenticated, by reason.",
            ["reason"],
            registry=r,
        )
        self.outbox_depth = Gauge(
            "escalade_edge_outbox_depth",
            "Workflow starts recorded in the outbox and not yet delivered to Temporal.",
            ["kind"],
            registry=r,
        )
        for cause in FALLBACK_CAUSES:  # present from the first scrape, so rate() has a baseline
            self.fallbacks.labels(cause=cause)
        for reason in AUTH_REASONS:
            self.auth_failures.labels(reason=reason)

    def fallback(self, reason: str, error: BaseException | None = None) -> None:
        self.fallbacks.labels(cause=fallback_cause(reason, error)).inc()

    def auth_failure(self, message: str) -> None:
        self.auth_failures.labels(reason=auth_reason(message)).inc()

    async def refresh_outbox(self, outbox: Any) -> None:
        """Outbox depth from the store (`webhook_edge.outbox.Outbox.depth`)."""
        for kind, count in (await outbox.depth()).items():
            self.outbox_depth.labels(kind=kind).set(count)


EDGE_METRICS = EdgeMetrics()
"""The edge process's metrics."""


class RequestContextMiddleware:
    """Binds `request_id` for the request's log lines, echoes `X-Request-Id`, times webhook requests."""

    def __init__(self, app: ASGIApp, metrics: EdgeMetrics = EDGE_METRICS) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        timed = str(scope.get("path", "")).startswith("/webhook/")
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                if timed:
                    self.metrics.latency.observe(time.perf_counter() - started)
                    self.metrics.requests.labels(status=f"{status // 100}xx").inc()


class EdgeMetricsEndpoint(PrometheusEndpoint):
    """`GET /metrics` on the edge's metrics port, refreshing the outbox depth per scrape."""

    name = "edge_metrics"

    def __init__(self, outbox: Any, metrics: EdgeMetrics = EDGE_METRICS) -> None:
        super().__init__()
        self.outbox = outbox
        self.metrics = metrics

    async def scrape(self) -> bytes:
        try:
            await self.metrics.refresh_outbox(self.outbox)
        except Exception as exc:  # the scrape still answers; the gauge keeps its last value
            log.warning("outbox_depth_failed", cause=type(exc).__name__)
        return generate_latest(self.metrics.registry)


def install_observability(app: FastAPI, metrics: EdgeMetrics = EDGE_METRICS) -> None:
    """Add the request-context middleware, and FastAPI tracing when tracing is configured."""
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    instrument_fastapi(app)
