"""The one Alembic history of Escalade's database, and the functions that apply it.

Every table of the database is created and changed here, whichever service owns it: the routing store's
(`routing_service.store.tables`, revisions 0001-0007), the edge's outbox (`webhook_edge.outbox`, 0008) and
the worker's dial ledger and review records (`workflows.ledger`, `workflows.review_store`, 0009). The three
services share one database by default (`ESCALADE_DATABASE_URL`), so one history, one version table, one
command:

    python -m escalade_platform.migrations upgrade [URL]     # or `current`; URL defaults to
                                                             # $ESCALADE_DATABASE_URL, then the SQLite file

Each service also brings the database to the newest revision when it starts (the routing store when it
opens, the edge with its outbox, the worker with its engine), so a fresh database needs no step by hand. A
database whose edge or worker tables were made by earlier versions (which ran SQLAlchemy's `create_all`)
upgrades in place: 0008 and 0009 create a table only when it is missing, with the very DDL `create_all`
emitted.

Upgrades are serialised across processes: on PostgreSQL by an advisory lock taken in the upgrade's
transaction, on SQLite by a transaction that begins IMMEDIATE (the engine `upgrade(url)` builds does so; the
routing store's engine begins every transaction that way). Within one process they are also serialised
whatever their database (`one_at_a_time`): Alembic's `context` and `op` are module globals that each
running migration installs and removes, so two of them interleaving on one event loop (the edge and the
worker of one process, on different databases) would run DDL on each other's connection or lose their
context (`KeyError: 'config'`). Revisions are written by hand in
`migrations/versions/`; a test compares the migrated database with each service's table definitions on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, NullPool

__all__ = [
    "NAMING_CONVENTION",
    "SCRIPT_DIR",
    "VERSION_TABLE",
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_object_for",
    "is_private_memory",
    "one_at_a_time",
    "upgrade",
    "upgrade_connection",
    "upgrade_database",
    "upgrade_engine",
]

log = logging.getLogger(__name__)

SCRIPT_DIR = Path(__file__).parent
"""Alembic's script location: `env.py`, `script.py.mako` and `versions/`."""
VERSION_TABLE = "escalade_routing_version"
"""Alembic's version table (named when the history held the routing store's tables only; renaming it would
make every existing database look unmigrated)."""
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names of the routing store's tables. Revisions 0001-0007 ran under it (names given
to `op.create_table` pass through it), so it must never change."""

SQLITE_BUSY_TIMEOUT_S = 15.0
"""How long an upgrade on SQLite waits for another process's write lock (another upgrade, or the store)."""
PG_CONNECT_TIMEOUT_S = 5.0
_PG_LOCK_KEY = 0x65_73_63_61_6C_61  # "escala": the advisory lock serialising concurrent upgrades

_IN_PROCESS = threading.Lock()
"""Held by the one migration of this process that may use Alembic's module-global `context` and `op` (a
thread lock, so migrations on other threads' event loops wait too)."""
_IN_PROCESS_POLL_S = 0.01
"""How often a migration waiting for `_IN_PROCESS` tries again. It never blocks the event loop: the holder
may be a task of the same loop, suspended on its database."""


@asynccontextmanager
async def one_at_a_time() -> AsyncIterator[None]:
    """Run the block as this process's only migration (see the module's docstring): every upgrade goes
    through it, and a caller of the synchronous `upgrade_connection` wraps the call in it."""
    # Polled, not awaited on an asyncio.Event: the holder may run on another thread's event loop.
    while not _IN_PROCESS.acquire(blocking=False):  # noqa: ASYNC110
        await asyncio.sleep(_IN_PROCESS_POLL_S)
    try:
        yield
    finally:
        _IN_PROCESS.release()


def alembic_config(url: str | None = None) -> Config:
    """An in-memory Alembic config pointing at this history (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def include_object_for(
    dialect_name: str, tables: Collection[str]
) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook for comparing the database with one service's table definitions.

    Only `tables` are compared (the other services' tables share the database), and indexes declared with
    `.ddl_if(dialect=...)` for another dialect are ignored, as `create_all` would skip them.
    """

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in tables
        if type_ == "index" and not reflected:
            condition = getattr(obj, "_ddl_if", None)
            wanted = getattr(condition, "dialect", None)
            if isinstance(wanted, str):
                return wanted == dialect_name
            if isinstance(wanted, tuple | list | set):
                return dialect_name in wanted
        return True

    return include_object


def is_private_memory(url: str | URL) -> bool:
    """True for an in-memory SQLite URL: that database exists only inside the engine that opened it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    return parsed.database in (None, "", ":memory:") or "mode=memory" in str(parsed)


def _upgrade_sync(connection: Connection, config: Config, revision: str, newer_is_fine: bool) -> None:
    if newer_is_fine:
        current = _current_sync(connection)
        if current is not None and not _known(config, current):
            log.warning(
                "the database is at revision %s, which this version does not know (a newer version"
                " migrated it): leaving it as it is",
                current,
            )
            return
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Upgrade the database behind a synchronous SQLAlchemy `connection` to `revision`, in the connection's
    transaction (for a private in-memory SQLite database, which only its own connection can reach). Call it
    inside `one_at_a_time()` when other migrations may run in the process."""
    _upgrade_sync(connection, alembic_config(), revision, False)


def _known(config: Config, revision: str) -> bool:
    try:
        ScriptDirectory.from_config(config).get_revision(revision)
    except CommandError:
        return False
    return True


def _current_sync(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def upgrade_engine(engine: AsyncEngine, revision: str = "head", *, newer_is_fine: bool = False) -> None:
    """Upgrade the database behind `engine` to `revision` (default: the newest; idempotent), in one
    transaction of `engine`. On PostgreSQL the transaction first takes the upgrade lock. On SQLite the
    engine must begin its transactions IMMEDIATE (as the routing store's and `upgrade`'s engines do), or
    concurrent upgrades may collide; a private in-memory database has no one to collide with.

    A database at a revision this history does not know (a newer version migrated it) makes Alembic fail;
    with `newer_is_fine` it is left as it is, with a warning. One at a time in the process, whatever the
    database (`one_at_a_time`)."""
    async with one_at_a_time(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        await connection.run_sync(_upgrade_sync, alembic_config(), revision, newer_is_fine)


def _sqlite_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # The driver's own (deferred) BEGIN is turned off; `_sqlite_begin` emits BEGIN IMMEDIATE instead, so a
    # second upgrade waits for the first one's write lock rather than failing to upgrade a read lock.
    # WAL, as the routing store sets it: the first process to open a new file switches it before taking the
    # write lock. Switching needs the file to itself, so a store connecting while an upgrade held the lock
    # of a file still in rollback mode would fail ("database is locked"); on a WAL file it is a no-op.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _migration_engine(url: str | URL) -> AsyncEngine:
    """A short-lived engine for migrating (one connection at a time, nothing pooled). SQLite: creates the
    file's folder and begins IMMEDIATE. PostgreSQL: a connect timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and not is_private_memory(parsed) and not parsed.database.startswith("file:"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            parsed, poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(parsed, poolclass=NullPool, connect_args={"timeout": PG_CONNECT_TIMEOUT_S})
    return create_async_engine(parsed, poolclass=NullPool)


async def upgrade(url: str | URL, revision: str = "head", *, newer_is_fine: bool = False) -> None:
    """Upgrade the database at `url` to `revision` (default: the newest; idempotent) on an engine of its
    own, serialised with other processes doing the same. Driver errors (unreachable, locked) propagate;
    `newer_is_fine` as in `upgrade_engine`."""
    engine = _migration_engine(url)
    try:
        await upgrade_engine(engine, revision, newer_is_fine=newer_is_fine)
    finally:
        await engine.dispose()


async def upgrade_database(engine: AsyncEngine) -> None:
    """Bring the database behind the edge's or the worker's `engine` to the newest revision: through
    `upgrade(url)` for a file or a server (serialised), on `engine` itself for a private in-memory SQLite
    database. A database a newer version already migrated is left as it is (during a rolling upgrade the
    edge and the worker keep starting, as they did when they only created their own tables if missing)."""
    if is_private_memory(engine.url):
        await upgrade_engine(engine, newer_is_fine=True)
    else:
        await upgrade(engine.url, newer_is_fine=True)


async def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at (None when never migrated)."""
    engine = _migration_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current_sync)
    finally:
        await engine.dispose()
