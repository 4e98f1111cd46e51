"""Engine construction for the routing store: SQLite (default) or PostgreSQL, both through asyncio drivers.

SQLite is tuned for many short concurrent transactions from one process:

* WAL journal, so readers never block the writer and the writer never blocks readers;
* `synchronous=NORMAL` (durable at checkpoints, safe with WAL), `foreign_keys=ON`;
* a busy timeout, so a writer waiting for the lock queues instead of failing at once;
* one pooled connection per engine: SQLite has a single writer anyway, and units of work queueing
  in-process for the pool (FIFO, no polling) beat several connections polling the file lock, whose
  busy-handler backoff starves waiters under load (measured: a few concurrent writers ran slower than one,
  and many hit the busy timeout). Other processes on the same file still queue through
  the busy timeout;
* every transaction starts with `BEGIN IMMEDIATE` (SQLAlchemy's documented recipe: the driver's own BEGIN is
  disabled with `isolation_level = None` and SQLAlchemy's "begin" event emits ours). A deferred BEGIN would
  take a read snapshot first and fail with SQLITE_BUSY when it later tries to upgrade to a write lock, and the
  busy handler cannot help there; an immediate BEGIN takes the write lock up front and waits in the handler.

This engine's aiosqlite connections (SQLAlchemy's own adapter) serve migrations and direct engine use only:
the store's units of work on a SQLite file run inline on the event loop (`inline_sqlite`, `sqlite_inline`).

PostgreSQL uses asyncpg with a bounded pool and a connect timeout. A pooled connection the server closed
(restart, failover, a dropped link, an idle timeout that closed the socket) is replaced at checkout without
a round trip: asyncpg marks a connection closed as soon as the loop sees its socket end, and the checkout
hook hands the pool a `DisconnectionError` for it. SQLAlchemy's `pool_pre_ping` would find the same
connections with three round trips per checkout (BEGIN, an empty query, ROLLBACK); a connection that breaks
without its socket ending is caught by the first statement instead (a disconnect error invalidates it and
every connection pooled before it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from routing_service.store.sqlite_inline import InlineSqlite
from routing_service.store.sqlite_pragmas import prepare_sqlite_connection

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SQLITE_BUSY_TIMEOUT_MS",
    "create_engine",
    "inline_sqlite",
    "is_sqlite",
]

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///.escalade/escalade.db"
SQLITE_BUSY_TIMEOUT_MS = 5_000
SQLITE_POOL_TIMEOUT_S = 30.0
PG_CONNECT_TIMEOUT_S = 5.0
PG_COMMAND_TIMEOUT_S = 30.0


def is_sqlite(url: str | URL) -> bool:
    """True for any `sqlite` URL (whatever the driver)."""
    return make_url(url).get_backend_name() == "sqlite"


def _ensure_sqlite_parent(url: URL) -> None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_connect_hook(busy_timeout_ms: int) -> Callable[[Any, ConnectionPoolEntry], None]:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # This turns off the driver's implicit BEGIN; `_on_sqlite_begin` emits BEGIN IMMEDIATE instead.
        prepare_sqlite_connection(dbapi_connection, busy_timeout_ms=busy_timeout_ms)

    return on_connect


def _on_sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _replace_closed_on_checkout(
    _dbapi_connection: Any, _record: ConnectionPoolEntry, proxy: PoolProxiedConnection
) -> None:
    """Checkout hook (PostgreSQL): a connection whose socket the server closed is swapped for a new one by
    the pool, at no round trip."""
    driver = proxy.driver_connection
    if driver is not None and driver.is_closed():
        raise sa_exc.DisconnectionError("the server closed this pooled connection")


def inline_sqlite(url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> InlineSqlite | None:
    """The inline connection for a SQLite file URL (see `sqlite_inline`); None for PostgreSQL and for
    in-memory SQLite (a second connection would see another, empty database)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed):
        return None
    _ensure_sqlite_parent(parsed)
    return InlineSqlite(parsed, busy_timeout_ms=busy_timeout_ms)


def create_engine(url: str, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> AsyncEngine:
    """An `AsyncEngine` for `url` (`sqlite+aiosqlite:///path` or `postgresql+asyncpg://...`).

    SQLite: creates the file's parent directory and installs the pragmas and BEGIN IMMEDIATE hooks described
    in the module docstring (`sqlite_busy_timeout_ms`: how long a writer waits for another process's lock
    before the store reports `Unavailable`). PostgreSQL: a pool of 10 (+20 overflow) connections checked
    for a closed socket at checkout (see the module docstring), a 5 s connect timeout and a 30 s statement
    timeout.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _ensure_sqlite_parent(parsed)
        # In-memory databases get SQLAlchemy's StaticPool (one shared connection) and take no pool sizing.
        in_memory = parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed)
        pooling: dict[str, Any] = (
            {} if in_memory else {"pool_size": 1, "max_overflow": 0, "pool_timeout": SQLITE_POOL_TIMEOUT_S}
        )
        connect_args = {"timeout": sqlite_busy_timeout_ms / 1000}
        engine = create_async_engine(parsed, connect_args=connect_args, **pooling)
        event.listen(engine.sync_engine, "connect", _sqlite_connect_hook(sqlite_busy_timeout_ms))
        event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        engine = create_async_engine(
            parsed,
            pool_size=10,
            max_overflow=20,
            pool_recycle=1800,
            connect_args={"timeout": PG_CONNECT_TIMEOUT_S, "command_timeout": PG_COMMAND_TIMEOUT_S},
        )
        event.listen(engine.sync_engine, "checkout", _replace_closed_on_checkout)
        return engine
    return create_async_engine(parsed)
