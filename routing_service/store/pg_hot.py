"""Hot statements on PostgreSQL: compiled once, run straight on the asyncpg connection.

Through SQLAlchemy's asyncpg adapter every statement pays a greenlet switch, an execution context, a
result-metadata build and the adapter's own locking (profiled: most of the store's client CPU per decision).
A statement marked with `hot.hot` is compiled here once per dialect (numbered `$n` parameters, SQLAlchemy's
own SQL text, parameter order, constant parameters and bind/result processors) and run with asyncpg's
`fetch`/`execute`, which reuse asyncpg's per-connection prepared-statement cache. When tracing is on, the
statement's span is started here (`escalade_platform.tracing.statement_spans`): the same statement, traced.

Everything else stays SQLAlchemy's:

* **The transaction.** The unit of work's `AsyncConnection` is begun through SQLAlchemy and the adapter's
  asyncpg transaction is started the way its own cursor starts it, so `commit()`/`rollback()` through
  SQLAlchemy commit or roll back the hot statements with the rest.
* **Errors.** A driver error goes through the adapter's translation and `Connection._handle_dbapi_exception`,
  so callers see the same SQLAlchemy exceptions (IntegrityError, OperationalError, InterfaceError with
  `connection_invalidated`), and a broken connection is invalidated (with the pool) exactly as SQLAlchemy
  does it. A statement cancelled in flight invalidates the connection, as SQLAlchemy does.
* **Anything unusual** (a connection invalidated earlier, an inactive transaction, Python-side defaults,
  expanding parameters, positional parameters) takes SQLAlchemy's path.

The result is a `FastResult` over named tuples, as on SQLite. The first run of a row-returning statement in
the process prepares it explicitly to learn the column type OIDs SQLAlchemy's result processors are chosen by
(a NUMERIC and a FLOAT column convert differently).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Mapping
from typing import Any, NoReturn

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable
from sqlalchemy.util import greenlet_spawn

from escalade_platform.tracing import statement_spans
from routing_service.store.hot import CompiledStatement, FastResult, StatementCache

__all__ = ["PgHot", "learn_result_types", "pg_hot"]

# What SQLAlchemy's asyncpg cursor reads a row count from (the command tag).
_ROWCOUNT = re.compile(r"(?:SELECT|UPDATE|DELETE|INSERT \d+) (\d+)")

_BY_DIALECT: weakref.WeakKeyDictionary[Dialect, PgHot] = weakref.WeakKeyDictionary()


def pg_hot(dialect: Dialect) -> PgHot | None:
    """The hot-statement runner for an engine's dialect: one per dialect for asyncpg, None otherwise."""
    if dialect.name != "postgresql" or dialect.driver != "asyncpg":
        return None
    runner = _BY_DIALECT.get(dialect)
    if runner is None:
        runner = _BY_DIALECT[dialect] = PgHot(dialect)
    return runner


def learn_result_types(compiled: CompiledStatement, type_oids: list[int], dialect: Dialect) -> None:
    """Choose the result processors as SQLAlchemy does, by each column's type OID."""
    compiled.use_result_processors(
        [
            column.type._cached_result_processor(dialect, oid)
            for column, oid in zip(compiled.columns, type_oids, strict=True)
        ]
    )


class PgHot:
    """The compiled hot statements of one asyncpg dialect, and how to run one in a unit of work."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.compiled: StatementCache[CompiledStatement] = StatementCache(
            lambda statement, keys: CompiledStatement(statement, keys, dialect)
        )

    def statement(self, statement: Executable, params: Any) -> CompiledStatement | None:
        """The compiled form of hot `statement` for these parameter names; None when it must take
        SQLAlchemy's path."""
        return self.compiled.get(statement, params)

    async def execute(
        self, connection: AsyncConnection, compiled: CompiledStatement, params: Mapping[str, Any] | None
    ) -> FastResult | None:
        """Run `compiled` on `connection`'s asyncpg connection inside its transaction (begun if need be);
        None when the connection is in a state only SQLAlchemy's path handles (invalidated, or a
        transaction that is no longer active)."""
        try:
            values = compiled.parameters(params or {})
        except KeyError:
            return None  # a missing parameter: let SQLAlchemy report it
        except Exception as error:  # a bind processor refused a value, as SQLAlchemy would report it
            raise sa_exc.StatementError(str(error), compiled.sql, None, error) from error
        sync = connection.sync_connection
        if sync is None or sync.invalidated or sync.closed:
            return None
        transaction = sync.get_transaction()
        if transaction is None:
            await connection.begin()
        elif not transaction.is_active:
            return None
        fairy = sync._dbapi_connection
        if fairy is None:
            return None
        adapted: Any = fairy.dbapi_connection
        raw: Any = adapted._connection
        span = statement_spans.start(self.dialect.name, compiled.sql) if statement_spans.enabled else None
        try:
            if adapted._transaction is None:
                await adapted._start_transaction()
            if not compiled.returns_rows:
                status = await raw.execute(compiled.sql, *values)
                match = _ROWCOUNT.match(status or "")
                return FastResult([], int(match.group(1)) if match else -1)
            if compiled.result_processors is None:
                # First run in this process: learn the column types (SQLAlchemy picks processors by OID).
                prepared = await raw.prepare(compiled.sql)
                learn_result_types(
                    compiled, [attr.type.oid for attr in prepared.get_attributes()], self.dialect
                )
                records = await prepared.fetch(*values)
            else:
                records = await raw.fetch(compiled.sql, *values)
            rows = compiled.rows(records)
            return FastResult(rows, len(rows))
        except Exception as error:
            if span is not None:
                statement_spans.failed(span, error)
            await _raise_as_sqlalchemy(sync, adapted, error, compiled.sql, values)
        except BaseException:
            # Cancelled in flight: the connection's protocol state is unknown. SQLAlchemy treats an exit
            # exception the same way (a disconnect: the connection is invalidated, not reused).
            sync.invalidate()
            raise
        finally:
            if span is not None:
                span.end()


async def _raise_as_sqlalchemy(
    sync: Any, adapted: Any, error: Exception, sql: str, values: list[Any]
) -> NoReturn:
    """Raise what SQLAlchemy raises for `error` from its asyncpg cursor: the adapter's DBAPI translation,
    wrapped by `Connection._handle_dbapi_exception` (which also invalidates a disconnected connection and
    the pool)."""
    try:
        adapted._handle_exception(error)
    except Exception as dbapi_error:
        if not isinstance(dbapi_error, sync.dialect.loaded_dbapi.Error):
            raise  # not a driver error: SQLAlchemy re-raises it unwrapped as well
        await greenlet_spawn(sync._handle_dbapi_exception, dbapi_error, sql, tuple(values), None, None)
    raise AssertionError("unreachable: the adapter always raises")  # pragma: no cover
