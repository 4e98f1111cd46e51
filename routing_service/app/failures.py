"""Telling "the store cannot be reached" apart from bugs, without importing the store's driver.

The store may raise `Unavailable` itself; driver errors (connection refused, pool timeout, SQLite locked
beyond its busy timeout) are recognised by type name along the exception chain, so the use cases stay free
of SQLAlchemy imports.
"""

from __future__ import annotations

from routing_service.domain.errors import Unavailable

__all__ = ["looks_unavailable"]

_UNAVAILABLE_NAMES = frozenset(
    {
        "OperationalError",
        "InterfaceError",
        "DisconnectionError",
        "CannotConnectNowError",
        "ConnectionDoesNotExistError",
        "TooManyConnectionsError",
        "PostgresConnectionError",
        "InternalClientError",
    }
)


def looks_unavailable(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database is unreachable or overloaded right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Unavailable | ConnectionError | TimeoutError):
            return True
        if isinstance(current, OSError) and current.errno is not None:
            return True
        names = {cls.__name__ for cls in type(current).__mro__}
        if names & _UNAVAILABLE_NAMES or "PoolTimeout" in names or "TimeoutError" in names:
            return True
        current = current.__cause__ or current.__context__
    return False
