"""Who may call which RoutingService method: `METHOD_ROLES`, and the guard that enforces it per call.

A caller is identified by the bearer token in its `authorization` metadata, else (mutual TLS) by the names
of its client certificate (subject CN and subject alternative names); the settings map either to roles
(`RoutingSettings.routing_tokens`, `routing_cert_roles`). No credentials, an unknown token or a certificate
name without a role: UNAUTHENTICATED. A role that may not call the method: PERMISSION_DENIED. Tokens are
compared in constant time (SHA-256 digests through `hmac.compare_digest`, every configured token each call)
and never logged.

The guard wraps each method handler once, when the service is registered (`grpc.handlers`), like the decode
guard and the metrics: a grpc.aio server interceptor would run a coroutine and build a handler per call, and
it cannot see the peer's certificate (`context.auth_context()` exists only inside the handler). Health is not
guarded; reflection, when served with authorization on, answers any authenticated caller
(`guard_authenticated`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from escalade_platform.routing_channel import AUTHORIZATION_METADATA_KEY
from routing_service.settings import Role, RoutingSettings

__all__ = ["METHOD_ROLES", "Authorizer", "Refusal", "guard_authenticated", "guard_authorization"]

log = structlog.get_logger(__name__)

_EDGE, _WORKER, _AGENT, _ADMIN, _READER = Role.EDGE, Role.WORKER, Role.AGENT, Role.ADMIN, Role.READER

METHOD_ROLES: Mapping[str, frozenset[Role]] = {
    # the edge's call path
    "ResolveEscalation": frozenset({_EDGE}),
    "RecordCallEvent": frozenset({_EDGE}),
    "ReleaseAssignment": frozenset({_EDGE, _AGENT, _ADMIN}),
    "GetDecision": frozenset({_EDGE, _WORKER, _READER, _ADMIN}),
    # the agent desktop that picks a call up (and the edge, readers, administrators)
    "GetHandoffPacket": frozenset({_AGENT, _EDGE, _READER, _ADMIN}),
    # agent-side systems
    "CompleteAssignment": frozenset({_AGENT, _ADMIN}),
    "SetAgentStatus": frozenset({_AGENT, _ADMIN}),
    # administration
    "UpsertAgent": frozenset({_ADMIN}),
    "UpsertCustomer": frozenset({_ADMIN}),
    "GetCustomer": frozenset({_ADMIN}),
    # reading: status, lists, the availability stream
    "ListAgents": frozenset({_AGENT, _READER, _ADMIN}),
    "ListDecisions": frozenset({_READER, _ADMIN}),
    "GetQueueStatus": frozenset({_WORKER, _READER, _ADMIN}),
    "ListCallbacks": frozenset({_WORKER, _READER, _ADMIN}),
    "WatchAvailability": frozenset({_WORKER, _READER, _ADMIN}),
    # the worker's callbacks (an administrator may end one) and review outcomes
    "ClaimCallback": frozenset({_WORKER}),
    "FinishCallback": frozenset({_WORKER, _ADMIN}),
    "RecordEscalationOutcome": frozenset({_WORKER}),
    "RecordReviewOutcome": frozenset({_WORKER}),
    "GetReviewOutcomes": frozenset({_WORKER, _READER, _ADMIN}),
}
"""RoutingService method name -> the roles that may call it. Every method must be listed: registering the
service fails on one that is not (and a test checks the table against the proto descriptor)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    code: grpc.StatusCode
    message: str


_NO_CREDENTIALS = Refusal(
    grpc.StatusCode.UNAUTHENTICATED,
    "no credentials: send 'authorization: Bearer <token>' metadata (ESCALADE_ROUTING_TOKEN) or a client "
    "certificate whose name has a role",
)
_MALFORMED = Refusal(grpc.StatusCode.UNAUTHENTICATED, "the authorization metadata must read 'Bearer <token>'")
_UNKNOWN_TOKEN = Refusal(grpc.StatusCode.UNAUTHENTICATED, "the bearer token is not one this server accepts")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Authorizer:
    """The roles the configured tokens and certificate names carry, and the per-call decision."""

    def __init__(
        self, tokens: Mapping[Role, list[str]], cert_names: Mapping[Role, list[str]] | None = None
    ) -> None:
        by_digest: dict[bytes, set[Role]] = {}
        for role, values in tokens.items():
            for token in values:
                by_digest.setdefault(_digest(token), set()).add(role)
        self._tokens = tuple((digest, frozenset(roles)) for digest, roles in by_digest.items())
        names: dict[str, set[Role]] = {}
        for role, listed in (cert_names or {}).items():
            for name in listed:
                names.setdefault(name, set()).add(role)
        self._cert_names = {name: frozenset(roles) for name, roles in names.items()}

    @classmethod
    def from_settings(cls, settings: RoutingSettings) -> Authorizer | None:
        """None when authorization is off (no token and no certificate role configured)."""
        if not settings.authorization_enabled:
            return None
        tokens = {
            Role(role): [token.get_secret_value() for token in values]
            for role, values in settings.routing_tokens.items()
        }
        names = {Role(role): list(values) for role, values in settings.routing_cert_roles.items()}
        return cls(tokens, names)

    def roles_of_token(self, token: str) -> frozenset[Role]:
        """The token's roles (empty when unknown); compares against every configured token."""
        digest = _digest(token)
        found: frozenset[Role] = frozenset()
        for known, roles in self._tokens:
            if hmac.compare_digest(known, digest):
                found = roles
        return found

    def identify(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[frozenset[Role], Refusal | None]:
        """(roles, None) for an authenticated caller, else (empty, why not)."""
        header = None
        for key, value in context.invocation_metadata() or ():
            if key == AUTHORIZATION_METADATA_KEY:
                header = value
        if header is not None:
            scheme, _, token = str(header).partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return frozenset(), _MALFORMED
            roles = self.roles_of_token(token.strip())
            return (roles, None) if roles else (roles, _UNKNOWN_TOKEN)
        if not self._cert_names:
            return frozenset(), _NO_CREDENTIALS
        names = _certificate_names(context)
        if not names:
            return frozenset(), _NO_CREDENTIALS
        roles = frozenset().union(*(self._cert_names.get(name, frozenset()) for name in names))
        if not roles:
            shown = ", ".join(sorted(names))[:200]
            return roles, Refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                f"the client certificate ({shown}) has no role on this server",
            )
        return roles, None

    def refusal(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> Refusal | None:
        """None when the caller may call RoutingService `method` (its bare name), else why not."""
        roles, refused = self.identify(context)
        if refused is not None:
            return refused
        allowed = METHOD_ROLES[method]
        if roles & allowed:
            return None
        held = ", ".join(sorted(roles))
        needed = ", ".join(sorted(allowed))
        return Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            f"role {held} may not call {method} (it needs one of: {needed})",
        )


def _certificate_names(context: grpc.aio.ServicerContext[Any, Any]) -> set[str]:
    auth = context.auth_context()
    names: set[str] = set()
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            name = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if name:
                names.add(name)
    return names


async def _refuse(method: str, refusal: Refusal, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    log.warning("routing_call_refused", method=method, code=refusal.code.name, reason=refusal.message)
    await context.abort(refusal.code, refusal.message)


def _wrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    check: Any,
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` with `await check(context)` before its behaviour, whatever its streaming kind."""
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary_unary: Any = handler.unary_unary

        async def checked_unary_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await check(context)
            return await unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(checked_unary_unary, **serializers)
    if handler.unary_stream is not None:
        unary_stream: Any = handler.unary_stream

        async def checked_unary_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await check(context)
            async for item in unary_stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(checked_unary_stream, **serializers)
    if handler.stream_unary is not None:
        stream_unary: Any = handler.stream_unary

        async def checked_stream_unary(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await check(context)
            return await stream_unary(requests, context)

        return grpc.stream_unary_rpc_method_handler(checked_stream_unary, **serializers)
    stream_stream: Any = handler.stream_stream

    async def checked_stream_stream(
        requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await check(context)
        async for item in stream_stream(requests, context):
            yield item

    return grpc.stream_stream_rpc_method_handler(checked_stream_stream, **serializers)


def guard_authorization(
    name: str, handler: grpc.RpcMethodHandler[Any, Any], authorizer: Authorizer
) -> grpc.RpcMethodHandler[Any, Any]:
    """RoutingService method `name`'s handler, refusing callers whose roles `METHOD_ROLES` does not allow.
    Raises LookupError for a method missing from the table (no method is served unguarded)."""
    if name not in METHOD_ROLES:
        raise LookupError(f"RoutingService method {name} has no entry in authorization.METHOD_ROLES")

    async def check(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        refusal = authorizer.refusal(name, context)
        if refusal is not None:
            await _refuse(name, refusal, context)

    return _wrap(handler, check)


def guard_authenticated(
    method: str, handler: grpc.RpcMethodHandler[Any, Any], authorizer: Authorizer
) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` answering only callers with a known token or certificate, whatever their role."""

    async def check(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        _, refusal = authorizer.identify(context)
        if refusal is not None:
            await _refuse(method, refusal, context)

    return _wrap(handler, check)
