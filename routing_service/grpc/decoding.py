"""Requests whose bytes are not a valid protobuf message answer INVALID_ARGUMENT, not UNKNOWN.

gRPC runs the generated deserializer before any servicer code, and a `DecodeError` raised there reaches the
caller as UNKNOWN carrying the parser's text. `guard_decoding` swaps in a deserializer that returns a marker
instead of raising, and answers the marker with INVALID_ARGUMENT and a google.rpc.BadRequest before the
servicer sees it. Only the RoutingService's unary-request methods are wrapped (`grpc.handlers`, once at
registration); health and reflection keep their own handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from routing_service.grpc.errors import bad_request

__all__ = ["guard_decoding"]

_PREFIX = "/escalade.routing.v1.RoutingService/"


class _Undecodable:
    """Stands in for a request whose bytes did not parse."""


_UNDECODABLE = _Undecodable()


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError:
            return _UNDECODABLE

    return parse


def _refusal(method: str) -> grpc.Status:
    name = method.removeprefix(_PREFIX)
    return bad_request(
        "malformed request", [("request", f"the bytes sent are not a valid {name} request message")]
    )


def guard_decoding(method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """`handler` of RoutingService `method` ("/escalade.routing.v1.RoutingService/Name") with a deserializer
    that cannot raise, answering undecodable requests with INVALID_ARGUMENT (see the module docstring).
    Applied once, when the service is registered; handlers with streaming requests pass unchanged."""
    if handler.request_streaming or handler.request_deserializer is None:
        return handler
    parse = _tolerant(handler.request_deserializer)
    if handler.unary_unary is not None:
        unary: Any = handler.unary_unary  # an async behaviour on a grpc.aio server

        async def guarded_unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if request is _UNDECODABLE:
                await context.abort_with_status(_refusal(method))
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded_unary, request_deserializer=parse, response_serializer=handler.response_serializer
        )
    if handler.unary_stream is not None:
        stream: Any = handler.unary_stream

        async def guarded_stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            if request is _UNDECODABLE:
                await context.abort_with_status(_refusal(method))
            async for item in stream(request, context):
                yield item

        return grpc.unary_stream_rpc_method_handler(
            guarded_stream, request_deserializer=parse, response_serializer=handler.response_serializer
        )
    return handler
