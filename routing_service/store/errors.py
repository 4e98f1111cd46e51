"""Translate driver failures into `routing_service.domain.errors.Unavailable`.

Connection refused, a dropped connection, a pool timeout or SQLite's "database is locked" after the busy
timeout all mean "the store cannot serve this right now": the gRPC layer maps that to UNAVAILABLE and the edge
falls back. Integrity errors and programming errors are not availability problems and pass through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc

from routing_service.domain.errors import Unavailable

__all__ = ["is_unavailable", "translate_errors", "unavailable_from"]


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database is unreachable, gone or too busy (not a bug, not bad data)."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    return isinstance(error, OSError | asyncio.TimeoutError | ConnectionError)


def unavailable_from(error: BaseException) -> Unavailable:
    """An `Unavailable` whose message names the failure without the statement or its parameters."""
    if isinstance(error, sa_exc.DBAPIError):
        cause = error.orig if error.orig is not None else error
        detail = f"{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}"
    else:
        detail = f"{type(error).__name__}: {error}"
    return Unavailable(f"the routing store is unavailable ({detail.strip()})")


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Re-raise availability failures inside the block as `Unavailable` (chained to the original)."""
    try:
        yield
    except Unavailable:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise unavailable_from(error) from error
        raise
