"""SQLite units of work that run their statements inline, on the event loop, with no thread hop.

A routing decision against a local SQLite file is about a dozen statements, each quick in SQLite itself.
Through aiosqlite every statement is a hop to the connection's thread and back (a queue put, a GIL hand-over,
a self-pipe wake-up of the loop), and SQLAlchemy's async adapter adds a greenlet switch on top: profiled, the
hops and switches cost several times the SQL. Here a unit of work holds one synchronous `sqlite3`
connection (through a synchronous SQLAlchemy engine, so the repositories' Core statements are unchanged) and
executes on the loop's own thread.

What keeps that safe:

* **One writer at a time, in order.** The process has a single inline connection, guarded by an
  `asyncio.Lock` taken when a unit of work runs its first statement and released when it ends. A unit of
  work that never awaits anything but its own statements (the decision path) takes the lock uncontended and
  finishes without yielding; one that does await something real still holds the connection exclusively.
* **Never block the loop on another process.** The connection's busy timeout is zero: `BEGIN IMMEDIATE` either
  takes the write lock at once or fails with "database is locked", and the unit of work then sleeps on the
  loop (exponential backoff from 1 ms) and tries again, up to `busy_timeout_ms` in all, after which the store
  reports `Unavailable`, exactly as the busy handler of a threaded connection would. Once `BEGIN IMMEDIATE`
  succeeded, no later statement of the transaction can wait for a lock in WAL mode.
* **Checkpoints off the loop.** SQLite's automatic WAL checkpoint would run inside a committing statement and
  fsync the database file on the loop; it is disabled on the inline connection and `Checkpointer` runs
  PASSIVE checkpoints from a thread with its own connection.

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
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, TypeDecorator, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql import Executable

from escalade_platform.tracing import statement_spans
from routing_service.store.errors import unavailable_from
from routing_service.store.hot import CompiledStatement, FastResult, StatementCache
from routing_service.store.sqlite_pragmas import prepare_sqlite_connection

__all__ = ["Checkpointer", "InlineSqlite", "InlineSqliteLink"]

CHECKPOINT_AFTER_COMMITS = 1000
CHECKPOINT_INTERVAL_S = 1.0
_FIRST_BACKOFF_S = 0.001
_MAX_BACKOFF_S = 0.05


def _is_locked(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and "locked" in str(error).lower()


class InlineSqlite:
    """The process's inline connection to one SQLite file: a synchronous engine whose single connection
    stays checked out (busy timeout zero, no automatic checkpoint), the lock that serialises units of work
    on it, the compiled forms of hot statements, and the checkpointer."""

    def __init__(self, url: URL, *, busy_timeout_ms: int) -> None:
        self.busy_timeout_s = busy_timeout_ms / 1000
        self.engine: Engine = create_sync_engine(
            url.set(drivername="sqlite+pysqlite"),
            pool_size=1,
            max_overflow=0,
            connect_args={"timeout": 0, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", _prepare_inline)
        self._lock: asyncio.Lock | None = None
        self._connection: Connection | None = None
        self.compiled: StatementCache[CompiledStatement] = StatementCache(_compile(self.engine.dialect))
        self.checkpointer = Checkpointer(url.database or "", busy_timeout_ms)

    @property
    def lock(self) -> asyncio.Lock:
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        return lock

    async def acquire(self) -> Connection:
        """Take the lock, then the connection (no transaction yet)."""
        await self.lock.acquire()
        try:
            connection = self._connection
            if connection is None or connection.closed or connection.invalidated:
                connection = self._connection = self.engine.connect()
            return connection
        except BaseException:
            self.lock.release()
            raise

    async def begin(self, connection: Connection) -> None:
        """`BEGIN IMMEDIATE` on `connection`, retrying a file locked by another process on the loop (never
        blocking it); `Unavailable` after the busy timeout."""
        raw = _dbapi(connection)
        deadline = time.monotonic() + self.busy_timeout_s
        delay = _FIRST_BACKOFF_S
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                if not _is_locked(error):
                    raise
                if time.monotonic() + delay > deadline:
                    raise unavailable_from(error) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    def execute(self, connection: Connection, statement: Executable, params: Any) -> Any:
        """Run `statement`: a hot one (see `store.hot`) straight on sqlite3 with its compiled form (its span
        started here when tracing is on), anything else through SQLAlchemy (whose events give it a span)."""
        compiled = self.compiled.get(statement, params)
        if compiled is not None:
            try:
                parameters = compiled.parameters(params or {})
            except Exception as error:  # a bind processor refused a value, as SQLAlchemy would report it
                raise sa_exc.StatementError(str(error), compiled.sql, None, error) from error
            cursor = _dbapi(connection).cursor()
            span = statement_spans.start("sqlite", compiled.sql) if statement_spans.enabled else None
            try:
                cursor.execute(compiled.sql, parameters)
                rows = compiled.rows(cursor.fetchall()) if cursor.description else []
                return FastResult(rows, cursor.rowcount)
            except sqlite3.Error as error:
                if span is not None:
                    statement_spans.failed(span, error)
                raise _translated(error, compiled.sql) from error
            finally:
                cursor.close()
                if span is not None:
                    span.end()
        return connection.execute(statement, params)

    def finish(self, connection: Connection, *, commit: bool) -> None:
        """Commit or roll back the open transaction, whichever layer began it."""
        if connection.in_transaction():
            if commit:
                connection.commit()
            else:
                connection.rollback()
        raw = _dbapi(connection)
        if raw.in_transaction:
            if commit:
                raw.commit()
            else:
                raw.rollback()
        if commit:
            self.checkpointer.note_commit()

    def end(self, connection: Connection) -> None:
        """Roll back whatever is still open and release the lock (the connection stays checked out)."""
        try:
            try:
                self.finish(connection, commit=False)
            except Exception:
                self._discard(connection)
        finally:
            self.lock.release()

    def invalidate(self, connection: Connection) -> None:
        """Discard a connection that failed, release the lock."""
        try:
            self._discard(connection)
        finally:
            self.lock.release()

    def _discard(self, connection: Connection) -> None:
        with contextlib.suppress(Exception):
            connection.invalidate()
        with contextlib.suppress(Exception):
            connection.close()
        if self._connection is connection:
            self._connection = None

    def close(self) -> None:
        """Close the inline connection and run a final checkpoint."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()
        self.engine.dispose()
        self.checkpointer.close()


_MISSING: Any = object()


def _dbapi(connection: Connection) -> sqlite3.Connection:
    raw: sqlite3.Connection = connection.connection.dbapi_connection  # type: ignore[assignment]
    return raw


def _translated(error: sqlite3.Error, sql: str) -> sa_exc.DBAPIError:
    """The SQLAlchemy exception SQLAlchemy itself would raise (IntegrityError, OperationalError, ...), so
    callers and `errors.is_unavailable` see the same types on both paths."""
    wrapped = sa_exc.DBAPIError.instance(sql, None, error, sqlite3.Error)
    assert isinstance(wrapped, sa_exc.DBAPIError)
    return wrapped


def _prepare_inline(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # BEGIN IMMEDIATE is issued explicitly (`InlineSqlite.begin`), retried on the loop: no busy timeout.
    prepare_sqlite_connection(dbapi_connection, busy_timeout_ms=0, auto_checkpoint=False)


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


def _result_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """What SQLAlchemy applies to a fetched value of `type_`, except that SQLite DATETIME text as SQLAlchemy
    writes it ('YYYY-MM-DD HH:MM:SS[.ffffff]') is parsed by `datetime.fromisoformat` (C) instead of
    SQLAlchemy's regular expression; a `TypeDecorator` (such as `tables.UtcDateTime`) still runs its own
    step on the parsed value."""
    if isinstance(type_, TypeDecorator) and isinstance(type_.impl_instance, DateTime):
        decorate = type_.process_result_value

        def decorated(value: Any) -> Any:
            return decorate(_parse_datetime(value), dialect)

        return decorated
    if isinstance(type_, DateTime):
        return _parse_datetime
    processor: Callable[[Any], Any] | None = type_._cached_result_processor(dialect, None)
    return processor


def _parse_datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _compile(dialect: Dialect) -> Callable[[Executable, tuple[str, ...]], CompiledStatement]:
    def compile_(statement: Executable, keys: tuple[str, ...]) -> CompiledStatement:
        compiled = CompiledStatement(statement, keys, dialect)
        compiled.use_result_processors(
            [_result_processor(column.type, dialect) for column in compiled.columns]
        )
        return compiled

    return compile_


class InlineSqliteLink:
    """A unit of work's connection on `InlineSqlite` (the interface of `unit_of_work.ConnectionLink`):
    statements run synchronously; the first one takes the lock and begins, a commit or rollback ends the
    transaction and the next statement begins another under the same lock; `close` gives the lock back."""

    dialect_name = "sqlite"
    close_suspends = False

    def __init__(self, inline: InlineSqlite) -> None:
        self.inline = inline
        self._connection: Connection | None = None
        self._in_transaction = False

    async def execute(self, statement: Executable, params: Any = None) -> Any:
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

    async def invalidate(self) -> None:
        connection, self._connection = self._connection, None
        self._in_transaction = False
        if connection is not None:
            self.inline.invalidate(connection)
