"""Translate driver failures into `routing_service.domain.errors.Unavailable`.

Connection refused, a dropped connection, a pool or statement timeout, a server shutting down or SQLite's
"database is locked" after the busy timeout all mean "the store cannot serve this right now": the gRPC layer
maps that to UNAVAILABLE and the edge falls back. Integrity errors and programming errors are not
availability problems and pass through. The drivers are asyncpg and sqlite3 (the store's paths) and
SQLAlchemy (migrations).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import exc as sa_exc

from routing_service.domain.errors import Unavailable

__all__ = ["is_unavailable", "translate_errors", "unavailable_from"]

_PG_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: connection exceptions
    asyncpg.InterfaceError,  # the connection is closed or in use by a cancelled operation
    asyncpg.exceptions.InternalClientError,  # the connection's protocol state broke (a server-side kill)
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin shutdown, statement timeout
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, out of memory
)


def is_unavailable(error: BaseException) -> bool:
    """True when `error` means the database is unreachable, gone or too busy (not a bug, not bad data)."""
    if isinstance(error, _PG_UNAVAILABLE):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, sa_exc.OperationalError | sa_exc.InterfaceError)
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    return isinstance(error, OSError | asyncio.TimeoutError | ConnectionError)


def unavailable_from(error: BaseException) -> Unavailable:
    """An `Unavailable` whose message names the failure without the statement or its parameters."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) and error.orig is not None else error
    text = str(cause)
    detail = f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"
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
