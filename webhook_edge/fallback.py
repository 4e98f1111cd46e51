"""The edge's fallback: where a caller goes when routing cannot be used, and what they hear.

Used on any routing error, missed deadline, unreachable service, unusable decision and for a transfer
request the edge cannot read, so the caller is always transferred somewhere. Each use is logged with its
cause and, for gRPC errors, the decoded status (code, details, google.rpc.BadRequest field violations).

Where the fallback line comes from, the first that applies:

    ESCALADE_FALLBACK_NUMBER   an operator's override; it also replaces the line of routing's own FALLBACK
                               decisions
    the policy file            `fallback.destination` of ESCALADE_POLICY: the line routing itself falls
                               back to (a number, with its extension, or a SIP URI)
    DEFAULT_FALLBACK_NUMBER    built in; used only with neither, and a start-up warning says so

What the caller hears (`message`) and what the receiving side hears (`transferPlan.message`, the transfer
being a warm transfer that says it): ESCALADE_FALLBACK_MESSAGE and ESCALADE_FALLBACK_HANDOFF_MESSAGE, else
the policy's `fallback.transfer.caller_message` and `handoff_message`, else built-in sentences. A policy
sentence with a `{name}` placeholder is not used: only routing knows the call's values to fill it.

The policy file is read at start-up and again whenever its modification time or size changes (checked
every `POLICY_POLL_SECONDS`, as routing does, and read off the event loop); a file that no longer loads
keeps the last good line, and says why in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import grpc
import structlog

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from routing_service.domain.decision import placeholders
from routing_service.domain.models import Policy
from routing_service.policy.loader import file_stamp
from webhook_edge.metrics import EDGE_METRICS
from webhook_edge.settings import (
    DEFAULT_FALLBACK_HANDOFF,
    DEFAULT_FALLBACK_MESSAGE,
    DEFAULT_FALLBACK_NUMBER,
    EdgeSettings,
)
from webhook_edge.translate import UnusableDecision, destination_json, spoken

__all__ = [
    "POLICY_POLL_SECONDS",
    "EdgeFallback",
    "FallbackLine",
    "LineOrigin",
    "describe_rpc_error",
    "fallback_line",
    "log_fallback",
    "log_routing_failure",
]

log = structlog.get_logger(__name__)

_TARGET_KEYS = frozenset({"type", "number", "sipUri", "sipHeaders", "extension"})
POLICY_POLL_SECONDS = 2.0
"""How often the policy file is checked for a change (routing's default `policy_poll_seconds`)."""


class LineOrigin(StrEnum):
    """Where the fallback line was configured."""

    SETTING = "setting"
    """ESCALADE_FALLBACK_NUMBER."""
    POLICY = "policy"
    """The policy file's `fallback.destination`."""
    BUILT_IN = "built-in"
    """DEFAULT_FALLBACK_NUMBER."""


@dataclass(frozen=True, slots=True)
class FallbackLine:
    """The edge's fallback line and the two sentences of its warm transfer."""

    number: str
    """E.164; empty for a SIP line."""
    caller_message: str
    handoff_message: str
    origin: LineOrigin
    extension: str = ""
    sip_uri: str = ""

    def as_decision(self) -> pb.Decision:
        """The line as a routing decision, so the one Vapi mapping (`translate.destination_json`) renders
        it: a warm transfer that says the handoff sentence."""
        if self.sip_uri:
            destination = pb.Destination(sip_uri=self.sip_uri)
        else:
            destination = pb.Destination(number=self.number, extension=self.extension)
        return pb.Decision(
            kind=pb.DECISION_KIND_FALLBACK,
            destination=destination,
            caller_message=self.caller_message,
            handoff_message=self.handoff_message,
            transfer_mode=pb.TRANSFER_MODE_WARM_TRANSFER_SAY_MESSAGE,
        )


def _policy_sentence(text: str, field: str) -> str | None:
    """The policy's sentence when the edge can say it as written (no `{name}` placeholder to fill)."""
    if not text.strip():
        return None
    names = placeholders(text)
    if names:
        log.warning(
            "fallback_policy_message_unused",
            field=field,
            reason=f"uses {{{names[0]}}}, which only routing can fill; the edge says its own sentence",
        )
        return None
    return text


def fallback_line(settings: EdgeSettings, policy: Policy | None) -> FallbackLine:
    """The fallback line from the settings' overrides, the policy's `fallback` section and the built-ins
    (see the module docstring for the order)."""
    caller = settings.fallback_message
    handoff = settings.fallback_handoff_message
    if policy is not None:
        transfer = policy.fallback.transfer
        if caller is None:
            caller = _policy_sentence(transfer.caller_message, "fallback.transfer.caller_message")
        if handoff is None:
            handoff = _policy_sentence(transfer.handoff_message, "fallback.transfer.handoff_message")
    caller = caller or DEFAULT_FALLBACK_MESSAGE
    handoff = handoff or DEFAULT_FALLBACK_HANDOFF
    if settings.fallback_number:
        return FallbackLine(settings.fallback_number, caller, handoff, LineOrigin.SETTING)
    if policy is not None:
        target = policy.fallback.destination
        line = FallbackLine(
            target.number or "",
            caller,
            handoff,
            LineOrigin.POLICY,
            extension=target.extension or "",
            sip_uri=target.sip_uri or "",
        )
        try:
            destination_json(line.as_decision())
        except UnusableDecision as exc:
            log.warning("fallback_policy_line_unusable", reason=str(exc), source=policy.source or None)
        else:
            return line
    return FallbackLine(DEFAULT_FALLBACK_NUMBER, caller, handoff, LineOrigin.BUILT_IN)


def _read_policy(path: Path) -> Policy | None:
    """The policy at `path`, or None (logged) when it cannot be loaded."""
    from routing_service.policy.loader import load_policy

    try:
        return load_policy(path)
    except Exception as exc:  # PolicyError, OSError: the edge keeps answering with what it has
        reason = str(exc)[:300]
        log.error("fallback_policy_unreadable", path=str(path), cause=type(exc).__name__, error=reason)
        return None


class EdgeFallback:
    """The edge's fallback answers, from the current `FallbackLine`; follows the policy file."""

    def __init__(self, settings: EdgeSettings, policy: Policy | None = None) -> None:
        self.settings = settings
        self.path = settings.policy
        self._stamp: tuple[int, int] | None = None
        self._line = fallback_line(settings, policy)
        self._decision = self._line.as_decision()
        self.reloads = 0

    @classmethod
    def load(cls, settings: EdgeSettings) -> EdgeFallback:
        """Read the policy file (`settings.policy`, when set) and log where the fallback line comes from;
        a warning when it is the built-in one."""
        path = settings.policy
        stamp = file_stamp(path) if path is not None else None
        policy = _read_policy(path) if path is not None else None
        fallback = cls(settings, policy)
        fallback._stamp = stamp
        line = fallback.line
        if line.origin is LineOrigin.BUILT_IN:
            log.warning(
                "fallback_line_built_in",
                number=line.number,
                reason="no policy file (ESCALADE_POLICY) and no ESCALADE_FALLBACK_NUMBER"
                if path is None
                else "the policy file gives no usable fallback line and ESCALADE_FALLBACK_NUMBER is unset",
                path=str(path) if path is not None else None,
            )
        else:
            log.info("fallback_line", origin=line.origin.value, number=line.number or None, path=str(path))
        return fallback

    @property
    def line(self) -> FallbackLine:
        return self._line

    def destination(self) -> dict[str, Any]:
        """The fallback line as a Vapi `destination`: a warm transfer with the handoff sentence; should the
        fallback line not answer either, the assistant stays on the call (`fallbackPlan`)."""
        return destination_json(self._decision, failed_message=self.settings.transfer_failed_message)

    def for_decision(self, decision: pb.Decision) -> dict[str, Any]:
        """A routing FALLBACK decision: its own wording and line, unless ESCALADE_FALLBACK_NUMBER overrides
        the line."""
        settings = self.settings
        try:
            destination = destination_json(decision, failed_message=settings.transfer_failed_message)
        except UnusableDecision:
            return self.destination()
        if settings.fallback_number:
            rest = {k: v for k, v in destination.items() if k not in _TARGET_KEYS}
            destination = {"type": "number", "number": settings.fallback_number, **rest}
        destination.setdefault("message", spoken(self._line.caller_message))
        return destination

    async def refresh(self) -> bool:
        """Re-read the policy file when its modification time or size changed; True when the line or its
        sentences changed. A file that no longer loads keeps the current line."""
        path = self.path
        if path is None:
            return False
        stamp = file_stamp(path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        policy = await asyncio.to_thread(_read_policy, path)
        if policy is None:
            return False
        line = fallback_line(self.settings, policy)
        if line == self._line:
            return False
        self._line, self._decision = line, line.as_decision()
        self.reloads += 1
        log.info(
            "fallback_line_reloaded", origin=line.origin.value, number=line.number or None, path=str(path)
        )
        return True

    async def follow(self, poll_seconds: float | None = None) -> None:
        """Refresh every `poll_seconds` (default `POLICY_POLL_SECONDS`) until cancelled."""
        interval = POLICY_POLL_SECONDS if poll_seconds is None else poll_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:  # never let a reload error end the watch
                log.exception("fallback_policy_refresh_failed")

    @contextlib.asynccontextmanager
    async def following(self, poll_seconds: float | None = None) -> AsyncIterator[None]:
        """Follow the policy file for the duration of the block (nothing to follow without one)."""
        if self.path is None:
            yield
            return
        task = asyncio.create_task(self.follow(poll_seconds), name="fallback-policy")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


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
