"""The one place where errors become gRPC statuses.

    InvalidRequest  -> INVALID_ARGUMENT (google.rpc.BadRequest with one field violation per problem)
    NotFound        -> NOT_FOUND
    Conflict        -> FAILED_PRECONDITION
    Unavailable     -> UNAVAILABLE
    anything else   -> INTERNAL "internal error" (traceback logged, never sent)

`map_errors` decorates servicer methods (unary and server-streaming alike).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast, overload

import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from routing_service.app.failures import looks_unavailable
from routing_service.domain.errors import (
    Conflict,
    EscalationError,
    InvalidRequest,
    NotFound,
    Unavailable,
)
from routing_service.grpc.mapping import nul_violations

__all__ = ["bad_request", "map_errors", "reject_nul", "status_for"]

log = structlog.get_logger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])


# Status messages and details travel as trailing metadata, which clients refuse beyond 16 KiB ("metadata size
# exceeds hard limit" -> RESOURCE_EXHAUSTED instead of the real status): text echoing a caller's input is
# clipped, and at most this many violations are sent.
MAX_TEXT = 512
MAX_VIOLATIONS = 20


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else f"{text[: MAX_TEXT - 1]}…"


def bad_request(message: str, violations: Sequence[tuple[str, str]]) -> grpc.Status:
    """INVALID_ARGUMENT carrying a google.rpc.BadRequest detail."""
    detail = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=_clip(f), description=_clip(d))
            for f, d in violations[:MAX_VIOLATIONS]
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(detail)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=_clip(message), details=[packed])
    return cast(grpc.Status, rpc_status.to_status(status))


def _simple(code: int, message: str) -> grpc.Status:
    return cast(grpc.Status, rpc_status.to_status(status_pb2.Status(code=code, message=_clip(message))))


def status_for(exc: BaseException, *, method: str = "") -> grpc.Status:
    """The status a caller sees for `exc`; unexpected exceptions are logged with their traceback."""
    if isinstance(exc, InvalidRequest):
        return bad_request(exc.message, exc.violations)
    if isinstance(exc, NotFound):
        return _simple(code_pb2.NOT_FOUND, exc.message)
    if isinstance(exc, Conflict):
        return _simple(code_pb2.FAILED_PRECONDITION, exc.message)
    if isinstance(exc, Unavailable):
        return _simple(code_pb2.UNAVAILABLE, exc.message)
    if isinstance(exc, EscalationError):
        return _simple(code_pb2.FAILED_PRECONDITION, exc.message)
    if looks_unavailable(exc):
        log.warning("rpc_store_unavailable", method=method, error=str(exc))
        return _simple(code_pb2.UNAVAILABLE, "the routing store is unavailable")
    log.error("rpc_failed", method=method, exc_info=exc)
    return _simple(code_pb2.INTERNAL, "internal error")


def reject_nul(request: Message) -> None:
    """InvalidRequest naming every string field that holds a NUL character (no store accepts one)."""
    violations = nul_violations(request)
    if violations:
        raise InvalidRequest("text fields must not contain NUL characters", violations)


@overload
def map_errors(func: _F) -> _F: ...
@overload
def map_errors(*, strict_text: bool) -> Callable[[_F], _F]: ...


def map_errors(func: _F | None = None, *, strict_text: bool = True) -> Any:
    """Wrap a servicer method so every exception is turned into a status by `status_for`; with
    `strict_text` (the default) requests with NUL characters in any string are INVALID_ARGUMENT."""
    if func is None:
        return functools.partial(map_errors, strict_text=strict_text)
    name = func.__name__
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                if strict_text:
                    reject_nul(request)
                agen = cast(AsyncIterator[Any], func(self, request, context))
                async for item in agen:
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await context.abort_with_status(status_for(exc, method=name))

        return cast(_F, stream_wrapper)

    @functools.wraps(func)
    async def unary_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            if strict_text:
                reject_nul(request)
            return await cast(Awaitable[Any], func(self, request, context))
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await context.abort_with_status(status_for(exc, method=name))

    return cast(_F, unary_wrapper)
