"""FastAPI application of the webhook edge: `create_app(settings, ...)`.

    POST /webhook/vapi        Vapi server messages (alias POST /webhook/escalation, the seed's path)
    GET  /healthz             liveness
    GET  /readyz              routing reachable (grpc.health.v1), else 503

Order of checks on the webhook: content type (415) -> body read with a running limit (413) -> auth over the
raw bytes (401) -> tolerant parse (400) -> dispatch on the raw `type`. Every 4xx is
`{"error": {"code", "message", "fields": [...]}}`. A transfer request always gets a destination: routing
errors, timeouts and even unexpected exceptions in the handler answer the fallback line.

Body limits. The type of a body is not known before it is parsed, and parsing needs all of it, so the first
`max_body_bytes` (1 MiB) are read whatever the body is. When a body goes beyond that (or declares a longer
Content-Length), the bytes read are searched for `"type": "end-of-call-report"` or
`"type": "transfer-destination-request"` (a pair inside a JSON string has escaped quotes and cannot match):

    end-of-call-report            read on with `max_report_bytes` (16 MiB) as the running limit, then the
                                  usual path (reports carry whole transcripts; long calls pass 1 MB);
                                  beyond that 413 (nobody is waiting on a report's answer)
    transfer-destination-request  not read further; answered 200 with the fallback destination, because a
                                  4xx leaves the caller in silence. The signature covers bytes the edge
                                  refuses to buffer, so only header credentials are checked here: a shared
                                  secret or bearer token must match; an HMAC signature is accepted
                                  unverified; no credential is a 401. The answer carries only the fallback
                                  line (which any caller reaches when routing fails); nothing is routed
    anything else                 413, with at most `max_body_bytes` plus one chunk pulled

A body that was read on as a report but parses as another type is judged by `max_body_bytes` after all.
A transfer request that is not valid JSON (recognised by the same search) or lacks a usable call id is
answered with the fallback destination too, after the usual authentication.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from escalade_platform.generated.escalade.routing.v1 import routing_pb2 as pb
from escalade_platform.heap import freeze_startup_heap
from webhook_edge.auth import AuthError, verify_request
from webhook_edge.control import ControlClient
from webhook_edge.fallback import (
    fallback_destination,
    fallback_for_decision,
    log_fallback,
    log_routing_failure,
)
from webhook_edge.metrics import EDGE_METRICS, install_observability
from webhook_edge.openapi import (
    REQUEST_BODY,
    WEBHOOK_RESPONSES,
    ErrorResponse,
    ToolCallsResponse,
    TransferDestinationResponse,
)
from webhook_edge.outbox import Outbox, OutboxKind
from webhook_edge.relay import OutboxRelay, start_relay
from webhook_edge.routing_client import RoutingClient
from webhook_edge.settings import EdgeSettings
from webhook_edge.translate import (
    UnusableDecision,
    callback_payload,
    callback_result,
    complexity_name,
    destination_json,
    resolve_request,
    review_payload,
    spoken,
    tool_result,
    transfer_unavailable_result,
)
from webhook_edge.vapi_models import ESCALATION_TOOL, BadPayload, VapiMessage, parse_body

__all__ = ["EdgeState", "create_app", "error_response"]

log = structlog.get_logger(__name__)

_TRANSFER = "transfer-destination-request"
_REPORT = "end-of-call-report"
_MAX_REASON = 200
_DEFAULT_SENTENCE = "I'm transferring you to a specialist now. Please stay on the line."


@dataclass(slots=True)
class EdgeState:
    """The long-lived resources of one edge process (built in the lifespan)."""

    settings: EdgeSettings
    routing: RoutingClient
    outbox: Outbox | None
    control: ControlClient
    relay: OutboxRelay | None = None
    """Woken after each new outbox entry (None when this process does not relay)."""


LATE_RECORD_SECONDS = 3600.0
"""How long a failed outbox record is retried in the background before it is given up (and logged)."""


class BodyTooLarge(Exception):
    """The request body exceeds the limit that applies to it; `kind` is the message type its first bytes
    name (`message_kind`), or None."""

    def __init__(self, kind: str | None) -> None:
        super().__init__(kind or "unknown")
        self.kind = kind


_KIND = re.compile(rb'"type"\s*:\s*"(end-of-call-report|transfer-destination-request)"')


def message_kind(prefix: bytes) -> str | None:
    """`end-of-call-report` or `transfer-destination-request` when a `"type": "<that>"` pair appears in the
    bytes (inside a JSON string the quotes would be escaped, so transcript text cannot match), else None."""
    found = _KIND.search(prefix)
    return found.group(1).decode("ascii") if found else None


def error_response(
    status: int, code: str, message: str, fields: list[tuple[str, str]] | None = None
) -> JSONResponse:
    """`{"error": {"code", "message", "fields": [{"field", "description"}]}}` with `status`."""
    body = {
        "error": {
            "code": code,
            "message": message,
            "fields": [{"field": f, "description": d} for f, d in (fields or [])],
        }
    }
    return JSONResponse(body, status_code=status)


async def read_limited(request: Request, limit: int, report_limit: int | None = None) -> bytes:
    """The body, read with a running limit (see the module docstring, "Body limits").

    Up to `limit` bytes are read whatever the body is. A body that is longer (or declares a longer
    Content-Length) is classified by `message_kind` over what was read: an `end-of-call-report` declaring no
    more than `report_limit` is read on with `report_limit` as the running limit; anything else raises
    `BodyTooLarge` (at most `limit` plus one chunk pulled).
    """
    declared: int | None = None
    header = request.headers.get("content-length")
    if header is not None:
        try:
            declared = int(header)
        except ValueError:
            declared = None
    chunks: list[bytes] = []
    size = 0
    current = limit
    extended = False

    def too_large() -> None:
        nonlocal current, extended
        kind = message_kind(b"".join(chunks))
        fits = declared is None or report_limit is None or declared <= report_limit
        if kind == _REPORT and report_limit is not None and report_limit > limit and fits:
            current, extended = report_limit, True
            return
        raise BodyTooLarge(kind)

    async for chunk in request.stream():
        size += len(chunk)
        chunks.append(chunk)
        if size > current:
            if extended:
                raise BodyTooLarge(_REPORT)
            too_large()
            if size > current:
                raise BodyTooLarge(_REPORT)
    if not extended and declared is not None and declared > limit:
        too_large()  # the body ended early; what it declared still decides
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or media.endswith("+json")


class Webhook:
    """The webhook's message handlers over one `EdgeState`."""

    def __init__(self, state: EdgeState) -> None:
        self.state = state
        self.settings = state.settings
        self._hmac = state.settings.hmac_options()
        self._late_records: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Stop the background retries of failed outbox records (at shutdown)."""
        for task in self._late_records:
            task.cancel()
        await asyncio.gather(*self._late_records, return_exceptions=True)

    # --- routing -----------------------------------------------------------------------------------------
    async def decide(self, request: pb.ResolveEscalationRequest) -> tuple[dict[str, Any], pb.Decision | None]:
        """(Vapi destination, decision); the fallback destination whenever routing cannot be used."""
        budget = self.state.routing.deadline_seconds + 0.25
        try:
            async with asyncio.timeout(budget):
                decision = await self.state.routing.resolve(request)
        except grpc.aio.AioRpcError as exc:
            log_fallback("routing_error", exc)
            return fallback_destination(self.settings), None
        except TimeoutError as exc:
            log_fallback("routing_timeout", exc)
            return fallback_destination(self.settings), None
        if decision.kind == pb.DECISION_KIND_FALLBACK:
            log_fallback("routing_fallback_decision", reason_text=decision.reason[:300])
            return fallback_for_decision(self.settings, decision), decision
        try:
            destination = destination_json(decision, failed_message=self.settings.transfer_failed_message)
        except UnusableDecision as exc:
            log_fallback("unusable_decision", exc, decision_id=decision.decision_id)
            return fallback_destination(self.settings), decision
        if decision.kind == pb.DECISION_KIND_CALLBACK and not decision.dry_run:
            payload = callback_payload(decision, request)
            if payload["caller_number"]:
                await self.record("callback", f"callback-{request.call_id}", payload)
            else:  # a web call has no number to call back: the queue line is all it gets
                log.info("callback_not_recorded", reason="no caller number")
        # routing logs each decision at info; the edge's copy is for debugging only (it costs ~0.3 ms)
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

    async def record(self, kind: OutboxKind, workflow_id: str, payload: dict[str, Any]) -> None:
        """Record a workflow start in the outbox; failures are logged, never raised."""
        outbox = self.state.outbox
        if outbox is None:
            log.warning("outbox_unavailable", kind=kind, workflow_id=workflow_id)
            return
        try:
            created = await outbox.record(kind, workflow_id, payload)
        except Exception as exc:  # the caller's transfer matters more than the follow-up record
            log.error("outbox_record_failed", kind=kind, workflow_id=workflow_id, cause=type(exc).__name__)
            # Vapi will not redeliver (it got its answer): keep trying in the background until the database
            # is back. Should this process die first, the worker's reconciler starts the callback from
            # routing's ticket (workflows/reconcile.py), but only on its next pass after a grace period.
            task = asyncio.create_task(self._record_late(outbox, kind, workflow_id, payload))
            self._late_records.add(task)
            task.add_done_callback(self._late_records.discard)
            return
        log.info("outbox_recorded", kind=kind, workflow_id=workflow_id, created=created)
        if created and self.state.relay is not None:
            self.state.relay.nudge()

    async def _record_late(
        self, outbox: Outbox, kind: OutboxKind, workflow_id: str, payload: dict[str, Any]
    ) -> None:
        """Retry a failed record: 0.5 s doubling to 30 s between attempts, for up to an hour."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + LATE_RECORD_SECONDS
        delay = 0.5
        while loop.time() < give_up:
            await asyncio.sleep(delay)
            try:
                created = await outbox.record(kind, workflow_id, payload)
            except Exception:
                delay = min(delay * 2, 30.0)
                continue
            log.info("outbox_recorded_late", kind=kind, workflow_id=workflow_id, created=created)
            if created and self.state.relay is not None:
                self.state.relay.nudge()
            return
        log.error("outbox_record_abandoned", kind=kind, workflow_id=workflow_id)

    # --- message types -----------------------------------------------------------------------------------
    async def transfer_destination(self, message: VapiMessage) -> Response:
        arguments = message.escalation_arguments()
        request = resolve_request(message, arguments)
        with structlog.contextvars.bound_contextvars(tool_call_id=request.tool_call_id):
            if arguments.problem:
                log.info("tool_arguments_problem", problem=arguments.problem)
            destination, _ = await self.decide(request)
        return JSONResponse({"destination": destination})

    async def tool_calls(self, message: VapiMessage) -> Response:
        """Answer each tool call; for `escalateToSupport` decide, act, and say honestly what happened.

        The first escalation in the message is acted on before the reply (the transfer through Live Call
        Control, bounded by `control_timeout_seconds`); a further one in the same message is answered with an
        error entry and not routed (one call cannot be transferred twice at once)."""
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
            request = resolve_request(message, call.arguments, tool_call_id=call.id)
            with structlog.contextvars.bound_contextvars(tool_call_id=call.id):
                destination, decision = await self.decide(request)
                result = await self.escalation_result(message, request, destination, decision)
            results.append(tool_result(call.name, call.id, result))
        return JSONResponse({"results": results})

    async def escalation_result(
        self,
        message: VapiMessage,
        request: pb.ResolveEscalationRequest,
        destination: dict[str, Any],
        decision: pb.Decision | None,
    ) -> str:
        """Act on a decision on the function-tool path and return the tool result the assistant reads.

        CALLBACK with the callback queued: no transfer (the workflow is about to dial the caller, whose line
        must stay free); the result is routing's caller message (queue position, when to expect the call)
        plus the callback promise. Otherwise (a transfer, the fallback line, or a CALLBACK that could not be
        queued because the caller has no number: its queue line) the transfer is POSTed to the control URL
        first; the result is the caller's sentence only when the control URL accepted it, else it tells the
        assistant the transfer could not be started and to offer a callback or read out the fallback line.
        """
        if (
            decision is not None
            and decision.kind == pb.DECISION_KIND_CALLBACK
            and (decision.caller_number or request.caller_number)
        ):
            log.info("tool_callback_promised", queue_position=decision.callback.position or None)
            return callback_result(decision)
        sentence = spoken(str(destination.get("message") or _DEFAULT_SENTENCE))
        # the control message's content is the one sentence the caller hears; the destination stays silent
        silent = {**destination, "message": ""}
        outcome = await self.state.control.transfer(
            message.control_url, silent, sentence, key=(request.call_id, request.tool_call_id)
        )
        if outcome.started:
            return sentence
        EDGE_METRICS.fallback("control_transfer_failed")
        log.warning("tool_transfer_not_started", outcome=outcome.value)
        return transfer_unavailable_result(self.settings.effective_fallback_number)

    async def status_update(self, message: VapiMessage) -> Response:
        """`forwarding` -> FORWARDING, `ended` -> ENDED with its endedReason; other statuses are ignored.

        Nothing is freed here: `ended` with `assistant-forwarded-call` means the specialist has just started
        talking (PROTOCOL.md section 11). Routing decides what each event means for the assignment."""
        if message.status == "forwarding":
            await self.record_call_event(
                message, pb.RecordCallEventRequest(kind=pb.CALL_EVENT_KIND_FORWARDING)
            )
        elif message.status == "ended":
            event = pb.RecordCallEventRequest(
                kind=pb.CALL_EVENT_KIND_ENDED, ended_reason=message.ended_reason[:_MAX_REASON]
            )
            await self.record_call_event(message, event)
        return JSONResponse({})

    async def transfer_update(self, message: VapiMessage) -> Response:
        """TRANSFER_UPDATE with the latest transfer attempt's status (`artifact.transfers[-1].status`)."""
        event = pb.RecordCallEventRequest(
            kind=pb.CALL_EVENT_KIND_TRANSFER_UPDATE, transfer_status=message.transfer_status
        )
        await self.record_call_event(message, event)
        return JSONResponse({})

    async def record_call_event(self, message: VapiMessage, event: pb.RecordCallEventRequest) -> None:
        """Forward one call event to routing; failures are logged, never raised (Vapi gets `{}` anyway)."""
        event.call_id = message.call_id
        stamp = message.timestamp_ms
        if stamp is not None:
            event.occurred_at.FromMilliseconds(int(stamp))
        kind = pb.CallEventKind.Name(event.kind)
        try:
            async with asyncio.timeout(self.state.routing.deadline_seconds + 0.25):
                reply = await self.state.routing.record_call_event(event)
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

    async def end_of_call_report(self, message: VapiMessage) -> Response:
        call_id = message.call_id
        decision: pb.Decision | None
        try:
            decision = await self.state.routing.get_decision(call_id)
        except (grpc.aio.AioRpcError, TimeoutError) as exc:
            # routing unreachable: record anyway; the review workflow checks the decision itself
            log_routing_failure("decision_lookup_failed", "GetDecision failed; review recorded anyway", exc)
            await self.record("review", f"review-{call_id}", review_payload(message, None))
            return JSONResponse({})
        if decision is None:
            log.info("end_of_call_not_escalated")
            return JSONResponse({})
        await self.record("review", f"review-{call_id}", review_payload(message, decision))
        return JSONResponse({})

    async def dispatch(self, message: VapiMessage) -> Response:
        handlers: dict[str, Callable[[VapiMessage], Awaitable[Response]]] = {
            _TRANSFER: self.transfer_destination,
            "tool-calls": self.tool_calls,
            "status-update": self.status_update,
            "transfer-update": self.transfer_update,
            "end-of-call-report": self.end_of_call_report,
        }
        handler = handlers.get(message.type)
        if handler is None:
            log.info("message_ignored", message_type=message.type[:80])
            return JSONResponse({})
        return await handler(message)

    # --- the route -----------------------------------------------------------------------------------------
    def authenticate(self, request: Request, raw: bytes | None) -> Response | None:
        """None when the request is authenticated, else the 401 answer.

        `raw` None: the body was not read whole (a too-large transfer request), so only what the headers
        alone prove can be checked: a shared secret or bearer token is verified; an HMAC signature (over a
        body the edge refused to buffer) is accepted unverified; no credential at all is a 401.
        """
        secrets = self.settings.secrets()
        if not secrets and self.settings.insecure_dev:
            return None
        headers = request.headers
        try:
            if raw is not None:
                result = verify_request(
                    headers,
                    raw,
                    secrets,
                    window_seconds=self.settings.signature_window_seconds,
                    hmac_options=self._hmac,
                )
                if result.previous_secret:
                    log.info("webhook_previous_secret_used", form=result.form)
                return None
            if "x-vapi-secret" in headers or "authorization" in headers:
                verify_request(
                    {k: v for k, v in headers.items() if k in ("x-vapi-secret", "authorization")},
                    b"",
                    secrets,
                )
                return None
            if self._hmac.signature_header in headers or "x-vapi-signature" in headers:
                log.warning("webhook_signature_unverifiable", reason="body too large to buffer")
                return None
            if not secrets:
                raise AuthError("no webhook secret is configured")
            raise AuthError("missing credentials")
        except AuthError as exc:
            log.info("webhook_unauthorized", reason=exc.reason)
            EDGE_METRICS.auth_failure(exc.reason)
            return error_response(401, "unauthorized", exc.reason)

    def unreadable_transfer(self, request: Request, raw: bytes | None, why: str) -> Response:
        """A transfer request the edge cannot read (too large, not JSON, no call id): the fallback line,
        never a 4xx, which would leave the caller in silence. Nothing is routed or recorded."""
        if raw is None:
            unauthorized = self.authenticate(request, None)
            if unauthorized is not None:
                return unauthorized
        EDGE_METRICS.fallback("unreadable_request")
        log.warning("fallback_destination", reason="unreadable_request", detail=why[:200])
        return JSONResponse({"destination": fallback_destination(self.settings)})

    async def handle(self, request: Request) -> Response:
        if not _is_json(request.headers.get("content-type")):
            return error_response(415, "unsupported_media_type", "the body must be application/json")
        settings = self.settings
        try:
            raw = await read_limited(request, settings.max_body_bytes, settings.max_report_bytes)
        except BodyTooLarge as exc:
            if exc.kind == _TRANSFER:
                return self.unreadable_transfer(request, None, "the body exceeds max_body_bytes")
            limit = settings.max_report_bytes if exc.kind == _REPORT else settings.max_body_bytes
            return error_response(413, "payload_too_large", f"the body exceeds {limit} bytes")
        unauthorized = self.authenticate(request, raw)
        if unauthorized is not None:
            return unauthorized
        try:
            message = parse_body(raw)
        except BadPayload as exc:
            if message_kind(raw[: settings.max_body_bytes]) == _TRANSFER:
                return self.unreadable_transfer(request, raw, exc.message)
            return error_response(400, "invalid_request", exc.message, exc.fields)
        if message.type != _REPORT and len(raw) > settings.max_body_bytes:
            # read on because its first bytes named a report, but it is something else
            if message.type == _TRANSFER:
                return self.unreadable_transfer(request, raw, "the body exceeds max_body_bytes")
            return error_response(
                413, "payload_too_large", f"the body exceeds {settings.max_body_bytes} bytes"
            )
        with structlog.contextvars.bound_contextvars(
            call_id=message.call_id_or_empty, message_type=message.type[:80]
        ):
            try:
                return await self.dispatch(message)
            except BadPayload as exc:
                if message.type == _TRANSFER:
                    return self.unreadable_transfer(request, raw, exc.message)
                return error_response(400, "invalid_request", exc.message, exc.fields)
            except Exception as exc:
                log.error("webhook_handler_failed", exc_info=exc)
                if message.type == _TRANSFER:
                    EDGE_METRICS.fallback("internal", exc)
                    return JSONResponse({"destination": fallback_destination(self.settings)})
                return JSONResponse({})


def _custom_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (TransferDestinationResponse, ToolCallsResponse, ErrorResponse):
            doc = model.model_json_schema(ref_template="#/components/schemas/{model}", by_alias=True)
            components.update(doc.pop("$defs", {}))
            components[model.__name__] = doc
        app.openapi_schema = schema
        return schema

    return build


def create_app(
    settings: EdgeSettings,
    *,
    routing: RoutingClient | None = None,
    outbox: Outbox | None = None,
    control: ControlClient | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The edge application. Resources not given are created in the lifespan from `settings`.

    `freeze_heap`: once started, `escalade_platform.heap.freeze_startup_heap()` (for a process that serves
    only this app, as `escalade edge serve` does).

    Raises ValueError when no secret is configured and `settings.insecure_dev` is off.
    """
    if not settings.secrets() and not settings.insecure_dev:
        raise ValueError("no webhook secret: set ESCALADE_VAPI_SECRET (or run with --insecure-dev)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            client = routing
            if client is None:
                client = RoutingClient.connect(
                    settings.routing_address,
                    deadline_seconds=settings.routing_deadline_ms / 1000,
                    health_deadline_seconds=settings.routing_health_deadline_ms / 1000,
                )
                stack.push_async_callback(client.close)
            store = outbox
            if store is None:
                store = await Outbox.open(settings.database_url)
                stack.push_async_callback(store.close)
            controller = control
            if controller is None:
                controller = ControlClient(timeout_seconds=settings.control_timeout_seconds)
                stack.push_async_callback(controller.close)
            relay = await stack.enter_async_context(start_relay(settings, store))
            app.state.webhook = Webhook(EdgeState(settings, client, store, controller, relay))
            stack.push_async_callback(app.state.webhook.close)
            log.info("edge_started", routing=settings.routing_address)
            if freeze_heap:
                freeze_startup_heap()
            yield

    app = FastAPI(
        title="Escalade webhook edge",
        version="0.1.0",
        description="Answers Vapi's server messages: routes escalated calls to the right human through the "
        "routing service, always with a destination (the fallback line when routing cannot answer).",
        lifespan=lifespan,
    )

    async def webhook(request: Request) -> Response:
        handler: Webhook | None = getattr(request.app.state, "webhook", None)
        if handler is None:
            return error_response(503, "not_started", "the edge is starting")
        return await handler.handle(request)

    for path, name in (("/webhook/vapi", "vapi_webhook"), ("/webhook/escalation", "escalation_webhook")):
        app.add_api_route(
            path,
            webhook,
            methods=["POST"],
            name=name,
            summary="Vapi server message" if name == "vapi_webhook" else "Vapi server message (seed path)",
            response_class=JSONResponse,
            responses=WEBHOOK_RESPONSES,
            openapi_extra={"requestBody": REQUEST_BODY},
        )

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: the routing service answers its health check",
        responses={503: {"description": "Routing not reachable or not serving."}},
    )
    async def readyz(request: Request) -> Response:
        handler: Webhook | None = getattr(request.app.state, "webhook", None)
        if handler is None:
            return JSONResponse({"status": "not_ready", "routing": "not started"}, status_code=503)
        ready, detail = await handler.state.routing.ready()
        body = {"status": "ready" if ready else "not_ready", "routing": detail}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", ""))) for e in exc.errors()]
        return error_response(400, "invalid_request", "invalid request", fields)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        response = error_response(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected_error", exc_info=exc)
        return JSONResponse(
            jsonable_encoder(
                {"error": {"code": "internal_error", "message": "internal error", "fields": []}}
            ),
            status_code=503,
        )

    install_observability(app)
    app.openapi = _custom_openapi(app)  # type: ignore[method-assign]
    return app
