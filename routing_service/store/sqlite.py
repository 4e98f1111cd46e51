"""The routing store on SQLite: one stdlib `sqlite3` connection, statements run inline on the event loop.

This is the only way the store reaches a SQLite database: every repository statement (compiled once from
its SQLAlchemy Core form, see `statements`) runs here on `sqlite3`, on the loop's own thread, with no thread
hop (a decision is about a dozen statements, each quick in SQLite itself; a hop to a driver thread per
statement cost several times the SQL). SQLAlchemy is not on this path (migrations use their own short-lived
engine, `migrate`).

What keeps that safe:

* **One writer at a time, in order.** The process has a single connection, guarded by an `asyncio.Lock`
  taken when a unit of work runs its first statement and released when it ends. A unit of work that never
  awaits anything but its own statements (the decision path) takes the lock uncontended and finishes
  without yielding; one that does await something real still holds the connection exclusively.
* **Never block the loop on another process.** The connection's busy timeout is zero: `BEGIN IMMEDIATE`
  either takes the write lock at once or fails with "database is locked", and the unit of work then sleeps on
  the loop (exponential backoff from 1 ms) and tries again, up to `busy_timeout_ms` in all, after which the
  store reports `Unavailable`, as the busy handler of a threaded connection would. `BEGIN IMMEDIATE` (not
  the default deferred BEGIN) because a deferred transaction that reads first fails with SQLITE_BUSY when it
  later tries to write, and no waiting helps there. Once it succeeded, no later statement of the
  transaction can wait for a lock in WAL mode.
* **Checkpoints off the loop.** SQLite's automatic WAL checkpoint would run inside a committing statement and
  fsync the database file on the loop; it is disabled on this connection and `Checkpointer` runs PASSIVE
  checkpoints from a thread with its own connection.

The connection runs in WAL mode with `synchronous=NORMAL` and foreign keys on (`sqlite_pragmas`). A private
in-memory database (`sqlite:///:memory:`) is this one connection: it lives until the store closes.

Statements that are slow in SQLite itself (a page of 1,000 callbacks) stall the loop for their duration; with
a single SQLite connection they would have held up every other unit of work anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.dialects.sqlite import pysqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.sql import Executable

from escalade_platform.migrations import is_private_memory
from escalade_platform.tracing import statement_spans
from routing_service.store import json_text
from routing_service.store.errors import unavailable_from
from routing_service.store.sqlite_pragmas import prepare_sqlite_connection
from routing_service.store.statements import CompiledStatement, Result, StatementCache

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "Checkpointer", "SqliteDatabase", "SqliteLink", "sqlite_path"]

SQLITE_BUSY_TIMEOUT_MS = 5_000
CHECKPOINT_AFTER_COMMITS = 1000
CHECKPOINT_INTERVAL_S = 1.0
_FIRST_BACKOFF_S = 0.001
_MAX_BACKOFF_S = 0.05


def _is_locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error).lower()


class SqliteDatabase:
    """The process's inline connection to one SQLite file (or private in-memory database): one `sqlite3`
    connection (busy timeout zero, no automatic checkpoint), the lock that serialises units of work on it,
    the statements compiled for it, and the checkpointer."""

    dialect_name = "sqlite"

    def __init__(self, url: str, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.busy_timeout_s = busy_timeout_ms / 1000
        self.dialect: Dialect = pysqlite.dialect(
            json_serializer=json_text.dumps, json_deserializer=json_text.loads
        )
        self._lock: asyncio.Lock | None = None
        self._connection: sqlite3.Connection | None = None
        self.statements: StatementCache[CompiledStatement] = StatementCache(_compile(self.dialect))
        self.checkpointer = Checkpointer(self.path, busy_timeout_ms) if self.path != ":memory:" else None

    @property
    def lock(self) -> asyncio.Lock:
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return lock

    def connection(self) -> sqlite3.Connection:
        """The inline connection (opened on first use; a private in-memory database lives as long as it)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = sqlite3.connect(
                self.path,
                timeout=0,
                check_same_thread=False,
                isolation_level=None,
                uri=self.path.startswith("file:"),
            )
            # BEGIN IMMEDIATE is issued explicitly (`begin`), retried on the loop: no busy timeout.
            prepare_sqlite_connection(connection, busy_timeout_ms=0, auto_checkpoint=False)
        return connection

    def link(self) -> SqliteLink:
        """A new unit of work's link (the lock is taken on its first statement)."""
        return SqliteLink(self)

    async def acquire(self) -> sqlite3.Connection:
        """Take the lock, then the connection (no transaction yet)."""
        await self.lock.acquire()
        try:
            return self.connection()
        except BaseException:
            self.lock.release()
            raise

    async def begin(self, connection: sqlite3.Connection) -> None:
        """`BEGIN IMMEDIATE` on `connection`, retrying a file locked by another process on the loop (never
        blocking it); `Unavailable` after the busy timeout."""
        deadline = time.monotonic() + self.busy_timeout_s
        delay = _FIRST_BACKOFF_S
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not _is_locked(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise unavailable_from(error) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    def execute(
        self, connection: sqlite3.Connection, statement: Executable, params: Mapping[str, Any] | None
    ) -> Result:
        """Run `statement` (compiled once if it is shared, see `statements`), its span started here when
        tracing is on."""
        compiled = self.statements.get(statement, params)
        sql, values = compiled.bound(params or {})
        cursor = connection.cursor()
        span = statement_spans.start("sqlite", sql) if statement_spans.enabled else None
        try:
            cursor.execute(sql, values)
            if compiled.textual:
                if cursor.description is None:
                    return Result([], cursor.rowcount)
                names = [str(column[0]) for column in cursor.description]
                rows = compiled.rows_named(names, cursor.fetchall())
                return Result(rows, len(rows))
            if not compiled.returns_rows:
                return Result([], cursor.rowcount)
            rows = compiled.rows(cursor.fetchall())
            return Result(rows, len(rows))
        except sqlite3.Error as error:
            if span is not None:
                statement_spans.failed(span, error)
            raise
        finally:
            cursor.close()
            if span is not None:
                span.end()

    def finish(self, connection: sqlite3.Connection, *, commit: bool) -> None:
        """Commit or roll back the open transaction."""
        if connection.in_transaction:
            if commit:
                connection.commit()
            else:
                connection.rollback()
        if commit and self.checkpointer is not None:
            self.checkpointer.note_commit()

    def end(self, connection: sqlite3.Connection) -> None:
        """Roll back whatever is still open and release the lock (the connection stays open)."""
        try:
            try:
                self.finish(connection, commit=False)
            except Exception:
                self._discard(connection)
        finally:
            self.lock.release()

    def invalidate(self, connection: sqlite3.Connection) -> None:
        """Discard a connection that failed, release the lock."""
        try:
            self._discard(connection)
        finally:
            self.lock.release()

    def _discard(self, connection: sqlite3.Connection) -> None:
        if self.path == ":memory:":
            return  # the database is the connection: keep it
        with contextlib.suppress(Exception):
            connection.close()
        if self._connection is connection:
            self._connection = None

    async def close(self) -> None:
        """Close the inline connection and run a final checkpoint."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
        if self.checkpointer is not None:
            self.checkpointer.close()


CHECKPOINT_NICE = 10
"""CPU priority (Linux nice) of the checkpoint thread."""


def _lower_priority(native_id: int) -> None:
    """Run the calling thread at `CHECKPOINT_NICE` (Linux, where each thread has its own nice value). A
    checkpoint copies a second's worth of WAL pages into the database file: at normal priority, on a machine
    whose few cores the server's loop and its clients share, it delays the decisions it lands on several-fold
    (the routing benchmark's tail latency at concurrency 1 shows it). Nice 10 rather than 19 so a saturated
    machine still checkpoints."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, native_id, CHECKPOINT_NICE)


class Checkpointer:
    """PASSIVE WAL checkpoints on a background thread at low CPU priority (its own connection), so no commit
    on the loop runs one: every `CHECKPOINT_INTERVAL_S` while there were commits, sooner after
    `CHECKPOINT_AFTER_COMMITS` commits, and a TRUNCATE checkpoint on close. A PASSIVE checkpoint neither
    waits for nor blocks the writer."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._commits = 0
        self.checkpoints = 0
        self.native_id: int | None = None
        """The checkpoint thread's OS thread id, once it runs."""

    def note_commit(self) -> None:
        """Count a commit (called on the loop; cheap)."""
        self._commits += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
            self._thread.start()
        if self._commits >= CHECKPOINT_AFTER_COMMITS:
            self._wake.set()

    def _run(self) -> None:
        self.native_id = threading.get_native_id()
        _lower_priority(self.native_id)
        connection = sqlite3.connect(self._path, timeout=self._busy_timeout_ms / 1000)
        try:
            while not self._stop:
                self._wake.wait(CHECKPOINT_INTERVAL_S)
                self._wake.clear()
                if self._stop or self._commits == 0:
                    continue
                self._commits = 0
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
        finally:
            connection.close()

    def close(self) -> None:
        """Stop the thread and checkpoint the whole WAL into the database file."""
        self._stop = True
        if self._thread is not None:
            self._wake.set()
            self._thread.join(10)
            self._thread = None
        with contextlib.suppress(sqlite3.Error):
            connection = sqlite3.connect(self._path, timeout=self._busy_timeout_ms / 1000)
            try:
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                connection.close()


def _compile(dialect: Dialect) -> Callable[[Executable, tuple[str, ...]], CompiledStatement]:
    def compile_(statement: Executable, keys: tuple[str, ...]) -> CompiledStatement:
        compiled = CompiledStatement(statement, keys, dialect)
        compiled.use_result_types()  # sqlite3 reports no column types: SQLAlchemy's types decide
        return compiled

    return compile_


def sqlite_path(url: str) -> str:
    """The file a `sqlite[+driver]:///path` URL names (its folder created), or ':memory:' for a private
    in-memory database."""
    parsed = make_url(url)
    database = parsed.database
    if is_private_memory(parsed) or not database:
        return ":memory:"
    if database.startswith("file:"):
        return database  # a URI: sqlite3 opens it as given
    path = Path(database).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


class SqliteLink:
    """A unit of work's connection on `SqliteDatabase` (the interface of `unit_of_work.Link`):
    statements run synchronously; the first one takes the lock and begins, a commit or rollback ends the
    transaction and the next statement begins another under the same lock; `close` gives the lock back."""

    dialect_name = "sqlite"
    close_suspends = False

    def __init__(self, database: SqliteDatabase) -> None:
        self.inline = database
        self._connection: sqlite3.Connection | None = None
        self._in_transaction = False

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result:
        connection = self._connection
        if connection is None:
            connection = self._connection = await self.inline.acquire()
        if not self._in_transaction:
            await self.inline.begin(connection)
            self._in_transaction = True
        return self.inline.execute(connection, statement, params)

    async def commit(self) -> None:
        if self._connection is None or not self._in_transaction:
            return
        self._in_transaction = False
        self.inline.finish(self._connection, commit=True)

    async def rollback(self) -> None:
        if self._connection is None or not self._in_transaction:
            return
        self._in_transaction = False
        self.inline.finish(self._connection, commit=False)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._in_transaction = False
        if connection is not None:
            self.inline.end(connection)

    async def lock(self, key: str) -> None:
        """Nothing to take: SQLite's writers are serialised by `BEGIN IMMEDIATE` already."""

    async def notify(self, channel: str, payload: str) -> None:
        """Nothing to send: one routing process per SQLite file, whose in-process broadcaster hears all."""

    async def invalidate(self) -> None:
        connection, self._connection = self._connection, None
        self._in_transaction = False
        if connection is not None:
            self.inline.invalidate(connection)
