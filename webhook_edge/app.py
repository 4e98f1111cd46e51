"""The webhook edge's FastAPI application: `create_app(settings, ...)` wires the routes, the lifespan and
the dispatch of Vapi's messages to their handlers.

    POST /webhook/vapi        Vapi server messages (alias POST /webhook/escalation, the seed's path)
    GET  /healthz             liveness
    GET  /readyz              routing reachable (grpc.health.v1), else 503
    GET  /openapi.json, /docs, /redoc   only with `api_docs` (ESCALADE_API_DOCS); else 404

Prometheus `/metrics` is served on its own port (`edge_metrics_port`, `webhook_edge.metrics.
EdgeMetricsEndpoint`, started in the lifespan), so the public port answers Vapi and the health checks only.

Order of checks on the webhook: content type (415) -> body read with a running limit (413) -> auth over the
raw bytes (401) -> tolerant parse (400) -> dispatch on the raw `type` (`webhook_edge.decoding` has the
limits; `webhook_edge.auth.WebhookAuth` the credentials). Every 4xx is
`{"error": {"code", "message", "fields": [...]}}`. A transfer request always gets a destination: one the
edge cannot read, routing errors, timeouts and even unexpected exceptions in the handler answer the
fallback line.

One module per message family answers it:

    transfer-destination-request   webhook_edge.transfer_request   (routing: webhook_edge.escalation)
    tool-calls                     webhook_edge.tool_calls         (Live Call Control: webhook_edge.control)
    status-update, transfer-update webhook_edge.call_events        (RecordCallEvent)
    end-of-call-report             webhook_edge.end_of_call        (review start: webhook_edge.followups)
    any other type                 acknowledged with {}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from escalade_platform.heap import freeze_startup_heap
from webhook_edge.auth import AuthError, WebhookAuth
from webhook_edge.call_events import CallEvents
from webhook_edge.control import ControlClient
from webhook_edge.decoding import MessageDecoder, Refused, UnreadableTransfer
from webhook_edge.end_of_call import EndOfCallReports
from webhook_edge.escalation import Escalations
from webhook_edge.fallback import EdgeFallback
from webhook_edge.followups import FollowUps
from webhook_edge.metrics import EDGE_METRICS, EdgeMetricsEndpoint, install_observability
from webhook_edge.openapi import REQUEST_BODY, WEBHOOK_RESPONSES, custom_openapi
from webhook_edge.outbox import Outbox
from webhook_edge.relay import OutboxRelay, start_relay
from webhook_edge.routing_client import RoutingClient
from webhook_edge.settings import EdgeSettings
from webhook_edge.tool_calls import ToolCalls
from webhook_edge.transfer_request import TransferRequests
from webhook_edge.vapi_models import (
    END_OF_CALL_REPORT,
    STATUS_UPDATE,
    TOOL_CALLS,
    TRANSFER_DESTINATION_REQUEST,
    TRANSFER_UPDATE,
    BadPayload,
    VapiMessage,
)

__all__ = ["EdgeState", "Webhook", "create_app", "error_response"]

log = structlog.get_logger(__name__)

Handler = Callable[[VapiMessage], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class EdgeState:
    """The long-lived resources of one edge process (built in the lifespan)."""

    settings: EdgeSettings
    routing: RoutingClient
    outbox: Outbox | None
    control: ControlClient
    fallback: EdgeFallback
    """The fallback line (from the policy file, followed while the edge runs)."""
    relay: OutboxRelay | None = None
    """Woken after each new outbox entry (None when this process does not relay)."""


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


class Webhook:
    """The webhook route over one `EdgeState`: decode, authenticate, dispatch to the message's handler."""

    def __init__(self, state: EdgeState) -> None:
        self.state = state
        self.settings = settings = state.settings
        self.decoder = MessageDecoder(
            max_body_bytes=settings.max_body_bytes, max_report_bytes=settings.max_report_bytes
        )
        self.auth = WebhookAuth.from_settings(settings)
        self.followups = FollowUps(state.outbox, state.relay)
        self.fallback = state.fallback
        escalations = Escalations(settings, state.routing, state.fallback, self.followups)
        events = CallEvents(state.routing)
        self.handlers: dict[str, Handler] = {
            TRANSFER_DESTINATION_REQUEST: TransferRequests(escalations).handle,
            TOOL_CALLS: ToolCalls(escalations, state.control, state.fallback).handle,
            STATUS_UPDATE: events.status_update,
            TRANSFER_UPDATE: events.transfer_update,
            END_OF_CALL_REPORT: EndOfCallReports(state.routing, self.followups).handle,
        }

    async def close(self) -> None:
        """Stop the background retries of failed outbox records (at shutdown)."""
        await self.followups.close()

    async def handle(self, request: Request) -> Response:
        """Answer one webhook request (the order of checks is in the module docstring)."""
        try:
            raw = await self.decoder.read_body(request)
            self.auth.check(request.headers, raw)
            message = self.decoder.decode(raw)
        except Refused as exc:
            return error_response(exc.status, exc.code, exc.message, exc.fields)
        except AuthError as exc:
            return self.unauthorized(exc)
        except UnreadableTransfer as exc:
            return self.unreadable_transfer(request, exc.why, body_read=exc.body_read)
        with structlog.contextvars.bound_contextvars(
            call_id=message.call_id_or_empty, message_type=message.type[:80]
        ):
            try:
                return JSONResponse(await self.dispatch(message))
            except BadPayload as exc:
                if message.type == TRANSFER_DESTINATION_REQUEST:
                    return self.unreadable_transfer(request, exc.message, body_read=True)
                return error_response(400, "invalid_request", exc.message, exc.fields)
            except Exception as exc:
                log.error("webhook_handler_failed", exc_info=exc)
                if message.type == TRANSFER_DESTINATION_REQUEST:
                    EDGE_METRICS.fallback("internal", exc)
                    return JSONResponse({"destination": self.fallback.destination()})
                return JSONResponse({})

    async def dispatch(self, message: VapiMessage) -> dict[str, Any]:
        """The reply body of the message's handler; `{}` for a type the edge does not handle."""
        handler = self.handlers.get(message.type)
        if handler is None:
            log.info("message_ignored", message_type=message.type[:80])
            return {}
        return await handler(message)

    def unauthorized(self, exc: AuthError) -> Response:
        log.info("webhook_unauthorized", reason=exc.reason)
        EDGE_METRICS.auth_failure(exc.reason)
        return error_response(401, "unauthorized", exc.reason)

    def unreadable_transfer(self, request: Request, why: str, *, body_read: bool) -> Response:
        """A transfer request the edge cannot read (too large, not JSON, no call id): the fallback line,
        never a 4xx, which would leave the caller in silence. Nothing is routed or recorded. A body that was
        not read whole is authenticated here, by its header credentials alone."""
        if not body_read:
            try:
                self.auth.check(request.headers, None)
            except AuthError as exc:
                return self.unauthorized(exc)
        EDGE_METRICS.fallback("unreadable_request")
        log.warning("fallback_destination", reason="unreadable_request", detail=why[:200])
        return JSONResponse({"destination": self.fallback.destination()})


def create_app(
    settings: EdgeSettings,
    *,
    routing: RoutingClient | None = None,
    outbox: Outbox | None = None,
    control: ControlClient | None = None,
    freeze_heap: bool = False,
) -> FastAPI:
    """The edge application. Resources not given are created in the lifespan from `settings`, and so is
    the metrics endpoint on `settings.edge_metrics_port` (when not 0; `app.state.metrics_endpoint`, None when
    off or when its port could not be bound).

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
                    settings,
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
            fallback = EdgeFallback.load(settings)
            await stack.enter_async_context(fallback.following())
            relay = await stack.enter_async_context(start_relay(settings, store))
            state = EdgeState(
                settings=settings,
                routing=client,
                outbox=store,
                control=controller,
                fallback=fallback,
                relay=relay,
            )
            app.state.webhook = Webhook(state)
            stack.push_async_callback(app.state.webhook.close)
            app.state.metrics_endpoint = None
            if settings.edge_metrics_port:
                endpoint = EdgeMetricsEndpoint(store)
                try:
                    await endpoint.start(settings.host, settings.edge_metrics_port)
                except OSError as exc:  # answering Vapi matters more than the edge's metrics
                    log.warning(
                        "edge_metrics_unavailable", port=settings.edge_metrics_port, cause=str(exc)[:200]
                    )
                else:
                    stack.push_async_callback(endpoint.stop)
                    app.state.metrics_endpoint = endpoint
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
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
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
    app.openapi = custom_openapi(app)  # type: ignore[method-assign]
    return app
