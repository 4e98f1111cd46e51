"""The PRAGMAs every SQLite connection of the routing store runs when it connects, in one place.

The store's connection (`sqlite.SqliteDatabase`, whose module docstring tells why each is set) runs them
with a busy timeout of zero (it retries BEGIN IMMEDIATE on the loop instead) and leaves WAL checkpoints
to its `Checkpointer`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["prepare_sqlite_connection", "sqlite_pragmas"]


def sqlite_pragmas(*, busy_timeout_ms: int, auto_checkpoint: bool = True) -> list[str]:
    """The PRAGMA statements for a new connection, in the order they run."""
    pragmas = [
        f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA foreign_keys = ON",
    ]
    if not auto_checkpoint:
        pragmas.append("PRAGMA wal_autocheckpoint = 0")
    return pragmas


def prepare_sqlite_connection(
    dbapi_connection: Any, *, busy_timeout_ms: int, auto_checkpoint: bool = True
) -> None:
    """Turn off the driver's implicit BEGIN (the store issues BEGIN IMMEDIATE itself) and run the pragmas."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        for pragma in sqlite_pragmas(busy_timeout_ms=busy_timeout_ms, auto_checkpoint=auto_checkpoint):
            cursor.execute(pragma)
    finally:
        cursor.close()
