"""The routing store on PostgreSQL: an asyncpg pool, and each unit of work's transaction on one connection.

This is the only way the store reaches PostgreSQL: every repository statement (compiled once from its
SQLAlchemy Core form, see `statements`) runs here with asyncpg's `fetch`/`execute`, which reuse asyncpg's
per-connection prepared-statement cache. SQLAlchemy is not on this path (migrations use their own
short-lived engine, `migrate`).

* **Pool.** Up to 30 connections, a 5 s connect timeout, a 30 s statement timeout (`command_timeout`),
  connections idle for 30 minutes closed. A pooled connection the server closed (restart, failover, an idle
  timeout) is replaced when it is acquired (asyncpg sees its socket end); one that breaks without its socket
  ending is caught by the first statement of the next unit of work, which then runs once more on a new
  connection (nothing of that unit of work ran on the dead one).
* **Transaction.** A unit of work takes a connection on its first statement and begins (plain `BEGIN`,
  `COMMIT`, `ROLLBACK`); `commit`/`rollback` end the transaction and the next statement begins another;
  `close` rolls back what is open and returns the connection, which the pool does not reset (the store
  keeps no session state). A lock taken first (`lock`) travels with the `BEGIN` in one round trip. A
  statement cancelled in flight (the caller went away) leaves the connection's protocol state unknown: the
  connection is closed rather than reused.
* **JSON.** `json` and `jsonb` columns travel as text: SQLAlchemy's JSON type serialises the parameters
  with `json_text.dumps` (orjson), and the codec installed on each new connection decodes fetched values
  with `json_text.loads`.
* **Types.** Result conversions are chosen by each column's type OID (a NUMERIC and a FLOAT column convert
  differently): the first run of a row-returning statement in the process prepares it explicitly to learn
  them.

When tracing is on, each statement's span is started here (`escalade_platform.tracing.statement_spans`): the
same statement on the same path, traced.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Self

import asyncpg  # type: ignore[import-untyped, unused-ignore]
from asyncpg.pool import PoolConnectionProxy  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import String, bindparam, func, select
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.sql import Executable

from escalade_platform.tracing import statement_spans
from routing_service.store import json_text
from routing_service.store.errors import is_unavailable
from routing_service.store.statements import CompiledStatement, Result, StatementCache, shared

__all__ = [
    "PG_COMMAND_TIMEOUT_S",
    "PG_CONNECT_TIMEOUT_S",
    "PostgresDatabase",
    "PostgresLink",
    "asyncpg_connect_args",
    "lock_sql",
]

PG_CONNECT_TIMEOUT_S = 5.0
PG_COMMAND_TIMEOUT_S = 30.0
PG_POOL_MAX = 30
PG_IDLE_LIFETIME_S = 1800.0

# The row count in a command tag ("UPDATE 3", "INSERT 0 1", "SELECT 5").
_ROWCOUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+|MERGE) (\d+)")


def asyncpg_connect_args(url: str | URL) -> dict[str, Any]:
    """asyncpg.connect() keyword arguments for a `postgresql[+asyncpg]://` URL (its query options, such
    as `ssl`, passed on)."""
    parsed = make_url(url)
    args: dict[str, Any] = parsed.translate_connect_args(username="user")
    args.update(parsed.query)
    return args


def _rowcount(status: str | None) -> int:
    match = _ROWCOUNT.match(status or "")
    return int(match.group(1)) if match else -1


async def _prepare_connection(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(
            name, encoder=_identity, decoder=json_text.loads, schema="pg_catalog", format="text"
        )


def _identity(value: Any) -> Any:
    return value


_LOCK = shared(select(func.pg_advisory_xact_lock(func.hashtext(bindparam("lock_key", type_=String())))))


def _literal(text: str) -> str:
    """`text` as a PostgreSQL escape-string literal (`E'...'`), whatever `standard_conforming_strings` says:
    backslashes and quotes doubled. NUL cannot be in a PostgreSQL string; callers keep such keys on the
    parameterised path, which reports it."""
    return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def lock_sql(key: str) -> str:
    """The simple-protocol statement that takes the transaction-scoped advisory lock on `key`."""
    return f"SELECT pg_advisory_xact_lock(hashtext({_literal(key)}))"


class _Connection(asyncpg.Connection):  # type: ignore[misc, unused-ignore]
    """Pooled connections reset by nothing but the rollback asyncpg does anyway: the store sets no session
    state (no `SET`, no `LISTEN`, no cursors; advisory locks are transaction-scoped), so asyncpg's default
    reset query on release (`pg_advisory_unlock_all`, `CLOSE ALL`, `UNLISTEN *`, `RESET ALL`) would be one
    more round trip per unit of work for nothing."""

    def get_reset_query(self) -> str:
        return ""


class PostgresDatabase:
    """An open asyncpg pool for one database, with the statements compiled for it."""

    dialect_name = "postgresql"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self.pool = pool
        self.url = url
        self.dialect: Dialect = asyncpg_dialect.dialect(  # type: ignore[no-untyped-call]
            json_serializer=json_text.dumps, json_deserializer=json_text.loads
        )
        self.statements: StatementCache[CompiledStatement] = StatementCache(
            lambda statement, keys: CompiledStatement(statement, keys, self.dialect)
        )

    @classmethod
    async def open(cls, url: str) -> Self:
        """Connect the pool (one connection at once, to fail early when the server is unreachable)."""
        pool = await asyncpg.create_pool(
            **asyncpg_connect_args(url),
            min_size=1,
            max_size=PG_POOL_MAX,
            max_inactive_connection_lifetime=PG_IDLE_LIFETIME_S,
            timeout=PG_CONNECT_TIMEOUT_S,
            command_timeout=PG_COMMAND_TIMEOUT_S,
            init=_prepare_connection,
            connection_class=_Connection,
        )
        return cls(pool, url)

    def link(self) -> PostgresLink:
        """A new unit of work's link (no connection taken yet)."""
        return PostgresLink(self)

    async def close(self) -> None:
        """Close the pool, waiting up to 10 s for connections in use, then closing them."""
        try:
            await asyncio.wait_for(self.pool.close(), 10)
        except (TimeoutError, asyncpg.InterfaceError):
            self.pool.terminate()


class PostgresLink:
    """A unit of work's transaction on one pooled connection (see the module docstring)."""

    dialect_name = "postgresql"
    close_suspends = True

    __slots__ = ("_at_commit", "_connection", "_database", "_in_transaction", "_untouched")

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database
        self._connection: PoolConnectionProxy[Any] | None = None
        self._in_transaction = False
        self._at_commit: list[str] = []
        """Simple-protocol statements sent with the `COMMIT` (`notify`), in order."""
        self._untouched = False
        """True from checkout until the first statement ran on the connection."""

    async def _begin(self, first: str = "") -> PoolConnectionProxy[Any]:
        """Take a connection if need be and begin; `first` (simple-protocol SQL with no parameters) travels in
        the same round trip as the `BEGIN`."""
        query = f"BEGIN; {first}" if first else "BEGIN"
        connection = self._connection
        if connection is None:
            connection = await self._database.pool.acquire()
            self._connection = connection
            self._untouched = True
        if not self._untouched:
            await connection.execute(query)
            self._in_transaction = True
            return connection
        self._untouched = False
        try:
            await connection.execute(query)
        except Exception as error:
            if not is_unavailable(error):
                raise
            # Dead before this unit of work used it: nothing of ours ran on it. Once more, on a new one.
            self._connection = None
            await self._release(connection, broken=True)
            connection = await self._database.pool.acquire()
            self._connection = connection
            await connection.execute(query)
        self._in_transaction = True
        return connection

    async def lock(self, key: str) -> None:
        """A transaction-scoped advisory lock on `key` (hashed to 32 bits by `hashtext`: a rare collision only
        serialises two unrelated keys), held until the transaction ends. When no transaction is open yet the
        lock rides with the `BEGIN`: one round trip for both (the key as an escaped literal, since the simple
        protocol that allows two statements takes no parameters)."""
        if self._in_transaction or "\x00" in key:
            await self.execute(_LOCK, {"lock_key": key})
            return
        sql = lock_sql(key)
        span = statement_spans.start("postgresql", sql) if statement_spans.enabled else None
        try:
            await self._begin(sql)
        except BaseException as error:
            self._failed(error, () if span is None else (span,))
            raise
        finally:
            if span is not None:
                span.end()

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result:
        """Run one statement in the unit of work's transaction (begun if need be)."""
        compiled = self._database.statements.get(statement, params)
        sql, values = compiled.bound(params or {})
        connection = self._connection
        if connection is None or not self._in_transaction:
            connection = await self._begin()
        span = statement_spans.start("postgresql", sql) if statement_spans.enabled else None
        try:
            if compiled.textual:
                prepared = await connection.prepare(sql)
                records = await prepared.fetch(*values)
                names = [attr.name for attr in prepared.get_attributes()]
                if not names:
                    return Result([], _rowcount(prepared.get_statusmsg()))
                rows = compiled.rows_named(names, records)
                return Result(rows, len(rows))
            if not compiled.returns_rows:
                status = await connection.execute(sql, *values)
                return Result([], _rowcount(status))
            if compiled.result_processors is None:
                # First run in this process: learn the column types (conversions are chosen by OID).
                prepared = await connection.prepare(sql)
                compiled.use_result_types([attr.type.oid for attr in prepared.get_attributes()])
                records = await prepared.fetch(*values)
            else:
                records = await connection.fetch(sql, *values)
            rows = compiled.rows(records)
            return Result(rows, len(rows))
        except BaseException as error:
            self._failed(error, () if span is None else (span,))
            raise
        finally:
            if span is not None:
                span.end()

    def _failed(self, error: BaseException, spans: Sequence[Any]) -> None:
        """A statement failed: its spans say why, and a connection the database dropped (not reused: the pool
        replaces it) or a statement cancelled in flight (its protocol state unknown) is not used again."""
        if isinstance(error, Exception):
            for span in spans:
                statement_spans.failed(span, error)
            if not is_unavailable(error):
                return
        self._broken()

    def _broken(self) -> None:
        connection = self._connection
        if connection is not None:
            _terminate(connection)

    async def notify(self, channel: str, payload: str) -> None:
        """`pg_notify(channel, payload)` in this transaction, sent with its `COMMIT` in the same round trip
        (PostgreSQL delivers a notification at commit only, so nothing is lost by waiting: a rollback drops
        it, as it would have dropped the notification). Begins the transaction if none is open."""
        if not self._in_transaction:
            await self._begin()
        self._at_commit.append(f"SELECT pg_notify({_literal(channel)}, {_literal(payload)})")

    async def commit(self) -> None:
        """Commit the open transaction, if any, with the notifications queued for it."""
        pending, self._at_commit = self._at_commit, []
        await self._end("; ".join([*pending, "COMMIT"]), pending)

    async def rollback(self) -> None:
        """Roll back the open transaction, if any (its queued notifications are dropped)."""
        self._at_commit = []
        await self._end("ROLLBACK")

    async def _end(self, query: str, traced: list[str] | None = None) -> None:
        connection = self._connection
        if connection is None or not self._in_transaction:
            return
        self._in_transaction = False
        spans = (
            [statement_spans.start("postgresql", sql) for sql in traced]
            if traced and statement_spans.enabled
            else []
        )
        try:
            await connection.execute(query)
        except BaseException as error:
            self._failed(error, spans)
            raise
        finally:
            for span in spans:
                span.end()

    async def close(self) -> None:
        """Roll back what is open and return the connection to the pool."""
        connection, self._connection = self._connection, None
        open_transaction, self._in_transaction = self._in_transaction, False
        self._at_commit = []
        if connection is None:
            return
        broken = _gone(connection)
        try:
            if open_transaction and not broken:
                await connection.execute("ROLLBACK")
        except BaseException:
            broken = True
            raise
        finally:
            await self._release(connection, broken=broken)

    async def invalidate(self) -> None:
        """Discard a connection whose link is broken."""
        connection, self._connection = self._connection, None
        self._in_transaction = False
        self._at_commit = []
        if connection is not None:
            await self._release(connection, broken=True)

    async def _release(self, connection: PoolConnectionProxy[Any], *, broken: bool) -> None:
        if broken:
            _terminate(connection)
        with contextlib.suppress(Exception):
            await self._database.pool.release(connection)


def _gone(connection: PoolConnectionProxy[Any]) -> bool:
    """True when the connection is closed, or asyncpg already took it back into the pool (it does so when
    it sees a connection lost, detaching the proxy the unit of work holds)."""
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:
        return True


def _terminate(connection: PoolConnectionProxy[Any]) -> None:
    with contextlib.suppress(asyncpg.InterfaceError):  # already detached: asyncpg has dealt with it
        connection.terminate()
