"""The PRAGMAs every SQLite connection of the routing store runs when it connects, in one place.

Both kinds of connection use them: the pooled aiosqlite connections of `engine.create_engine` and the
inline connection of `sqlite.SqliteDatabase` (this module imports neither, so both can import it).
Why each is set is told in `engine`'s module docstring; the inline connection differs only in its busy
timeout (zero: it retries on the loop instead) and in leaving WAL checkpoints to its `Checkpointer`.
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
