"""The answer when routing cannot be used: the edge's own fallback destination.

Used on any routing error, missed deadline, unreachable service, unusable decision or FALLBACK decision,
so the caller is always transferred somewhere. Each use is logged with its cause and, for gRPC errors, the
decoded status (code, details, google.rpc.BadRequest field violations).
"""

from __future__ import annotations

from typing import Any

import grpc
import structlog

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from webhook_edge.metrics import EDGE_METRICS
from webhook_edge.settings import EdgeSettings
from webhook_edge.translate import destination_json, fallback_plan, spoken

__all__ = [
    "describe_rpc_error",
    "fallback_destination",
    "fallback_for_decision",
    "log_fallback",
    "log_routing_failure",
]

log = structlog.get_logger(__name__)


def fallback_destination(settings: EdgeSettings) -> dict[str, Any]:
    """The configured fallback as a Vapi `destination` (warm transfer with the routing-error handoff; should
    the fallback line not answer either, the assistant stays on the call: `fallbackPlan`)."""
    return {
        "type": "number",
        "number": settings.effective_fallback_number,
        "message": spoken(settings.fallback_message),
        "transferPlan": {
            "mode": "warm-transfer-say-message",
            "message": spoken(settings.fallback_handoff_message),
            "fallbackPlan": fallback_plan(settings.transfer_failed_message),
        },
    }


def fallback_for_decision(settings: EdgeSettings, decision: pb.Decision) -> dict[str, Any]:
    """A routing FALLBACK decision: its own wording and line, unless ESCALADE_FALLBACK_NUMBER overrides it."""
    try:
        destination = destination_json(decision, failed_message=settings.transfer_failed_message)
    except ValueError:
        return fallback_destination(settings)
    if settings.fallback_number:
        rest = {k: v for k, v in destination.items() if k not in ("type", "number", "sipUri", "extension")}
        destination = {"type": "number", "number": settings.fallback_number, **rest}
    destination.setdefault("message", spoken(settings.fallback_message))
    return destination


def describe_rpc_error(error: BaseException) -> dict[str, Any]:
    """Log fields for an exception, decoding gRPC status details when there are any."""
    if not isinstance(error, grpc.aio.AioRpcError):
        return {"cause": type(error).__name__, "detail": str(error)[:300]}
    fields: dict[str, Any] = {
        "cause": "grpc",
        "grpc_code": error.code().name,
        "grpc_details": (error.details() or "")[:300],
    }
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status

        status = rpc_status.from_call(error)  # AioRpcError exposes the sync Call accessors it needs
    except Exception:  # a malformed status detail must not break the fallback path
        return fields
    violations: list[str] = []
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [f"{v.field}: {v.description}" for v in bad.field_violations]
    if violations:
        fields["violations"] = violations
    return fields


def log_fallback(reason: str, error: BaseException | None = None, **extra: Any) -> None:
    """One warning line per fallback answer, with its cause."""
    EDGE_METRICS.fallback(reason, error)
    log_routing_failure("fallback_destination", reason, error, **extra)


def log_routing_failure(event: str, reason: str, error: BaseException | None = None, **extra: Any) -> None:
    """A warning line for a routing call that failed, with the decoded gRPC status when there is one."""
    details = describe_rpc_error(error) if error is not None else {}
    log.warning(event, reason=reason, **details, **extra)
