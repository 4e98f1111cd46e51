"""Which database the store runs on, chosen once when it opens: `open_database(url)`.

A `sqlite[+driver]:///path` URL (or `sqlite:///:memory:`) opens `sqlite.SqliteDatabase` (stdlib sqlite3,
statements inline on the event loop); a `postgresql[+asyncpg]://` URL opens `postgres.PostgresDatabase`
(an asyncpg pool). Nothing else selects a path later: tracing wraps whichever one runs.
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url

from routing_service.store.postgres import PostgresDatabase
from routing_service.store.sqlite import SQLITE_BUSY_TIMEOUT_MS, SqliteDatabase
from routing_service.store.unit_of_work import Database

__all__ = ["DEFAULT_DATABASE_URL", "SQLITE_BUSY_TIMEOUT_MS", "is_sqlite", "open_database"]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.escalade/escalade.db"


def is_sqlite(url: str | URL) -> bool:
    """True for any `sqlite` URL (whatever the driver named in it)."""
    return make_url(url).get_backend_name() == "sqlite"


async def open_database(url: str, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> Database:
    """The store's database at `url`. Raises ValueError for a database other than SQLite or PostgreSQL;
    driver errors (unreachable) propagate."""
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        database = SqliteDatabase(url, busy_timeout_ms=sqlite_busy_timeout_ms)
        database.connection()
        return database
    if backend == "postgresql":
        return await PostgresDatabase.open(url)
    raise ValueError(f"the routing store runs on SQLite or PostgreSQL, not {backend!r}")
