"""`ports.UnitOfWork` on SQLAlchemy Core: one pooled connection (one transaction) per `async with` block.

Commit is explicit; leaving the block without `commit()` rolls back. Availability failures anywhere in the
block (connect, statements, commit) surface as `routing_service.domain.errors.Unavailable`.

The repositories run Core statements only, so the unit of work holds an `AsyncConnection` (checked out
on the first statement, "commit as you go") rather than an ORM `AsyncSession`: the session's transaction
bookkeeping was a large share of the store's CPU per decision (profiled: `Session.connection`, `commit`,
`close` and one extra greenlet switch per statement) and bought nothing here.

`announce` sends a freed slot to the other routing processes on PostgreSQL with NOTIFY in the unit of work's
transaction, tagged with the factory's `origin` (see `notify`); on SQLite it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import Executable

from routing_service.app.ports import (
    AgentFreed,
    AgentRepository,
    AssignmentRepository,
    CallbackRepository,
    CustomerRepository,
    DecisionRepository,
    UnitOfWorkFactory,
)
from routing_service.domain.errors import Unavailable
from routing_service.store.agents import SqlAgentRepository
from routing_service.store.assignments import SqlAssignmentRepository
from routing_service.store.callbacks import SqlCallbackRepository
from routing_service.store.customers import SqlCustomerRepository
from routing_service.store.decisions import SqlDecisionRepository
from routing_service.store.errors import is_unavailable, unavailable_from
from routing_service.store.hot import HOT_STATEMENTS
from routing_service.store.notify import NOTIFY_STATEMENT, encode_notices, new_origin
from routing_service.store.pg_hot import pg_hot
from routing_service.store.sqlite_inline import InlineSqlite, InlineSqliteLink

__all__ = ["ConnectionLink", "SqlUnitOfWork", "SqlUnitOfWorkFactory", "sql_uow_factory"]


class ConnectionLink:
    """The unit of work's connection, checked out of the engine's pool on first use (a unit of work that
    runs no statement never takes SQLite's single pooled connection). On asyncpg, hot statements (see
    `hot`) run straight on the driver connection, in the same transaction (see `pg_hot`).

    PostgreSQL connections are not pinged at checkout (`engine`): when the first statement on a freshly
    checked-out connection finds it dead (the server closed it while it sat in the pool, before the loop saw
    the socket end), nothing has run on it yet, so the statement runs once more on a new connection.
    """

    close_suspends = True

    def __init__(self, engine: AsyncEngine) -> None:
        self.bind = engine
        self.dialect_name = engine.dialect.name
        self._hot = pg_hot(engine.dialect)
        self._retry_dead = self.dialect_name == "postgresql"
        self._connection: AsyncConnection | None = None
        self._untouched = False
        """True from checkout until the first statement is tried on the connection."""

    async def execute(self, statement: Executable, params: Any = None) -> Any:
        """Run one statement in the unit of work's transaction (a `CursorResult`, or for a hot statement on
        asyncpg a `FastResult` with the same reading methods)."""
        connection = self._connection
        if connection is None:
            connection = await self.connection()
        if not self._untouched:
            return await self._run(connection, statement, params)
        self._untouched = False
        try:
            return await self._run(connection, statement, params)
        except sa_exc.DBAPIError as error:
            if not (self._retry_dead and error.connection_invalidated):
                raise
        # Dead before this unit of work used it: no statement of ours ran (nor can commit) on it.
        self._connection = None
        with contextlib.suppress(Exception):
            await connection.close()
        connection = await self.connection()
        self._untouched = False
        return await self._run(connection, statement, params)

    async def _run(self, connection: AsyncConnection, statement: Executable, params: Any) -> Any:
        hot = self._hot
        if hot is not None and id(statement) in HOT_STATEMENTS:
            compiled = hot.statement(statement, params)
            if compiled is not None:
                result = await hot.execute(connection, compiled, params)
                if result is not None:
                    return result
        return await connection.execute(statement, params)

    async def connection(self) -> AsyncConnection:
        """The connection, in a transaction once a statement ran (SQLAlchemy's autobegin)."""
        connection = self._connection
        if connection is None:
            connection = self._connection = await self.bind.connect()
            self._untouched = True
        return connection

    async def commit(self) -> None:
        """Commit the open transaction, if any."""
        if self._connection is not None:
            await self._connection.commit()

    async def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        if self._connection is not None:
            await self._connection.rollback()

    async def close(self) -> None:
        """Roll back and return the connection to the pool."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            await connection.rollback()
        finally:
            await connection.close()

    async def invalidate(self) -> None:
        """Discard a connection whose link is broken."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.invalidate()


class Link(Protocol):
    """What the repositories need from a unit of work's connection: `ConnectionLink` (async drivers) or
    `sqlite_inline.InlineSqliteLink` (SQLite files, statements run on the loop)."""

    dialect_name: str
    close_suspends: bool
    """False when `close` never suspends (it then needs no shield against cancellation)."""

    async def execute(self, statement: Executable, params: Any = None) -> CursorResult[Any]: ...
    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def close(self) -> None: ...
    async def invalidate(self) -> None: ...


class SqlUnitOfWork:
    """One transaction over the five repositories."""

    # Typed as the ports (protocol attributes are invariant); the values are the Sql* repositories.
    customers: CustomerRepository
    agents: AgentRepository
    assignments: AssignmentRepository
    decisions: DecisionRepository
    callbacks: CallbackRepository

    def __init__(self, engine: AsyncEngine, inline: InlineSqlite | None = None, *, origin: str = "") -> None:
        self._engine = engine
        self._inline = inline
        self._origin = origin
        self._session: Link | None = None

    async def __aenter__(self) -> Self:
        session: Link = (
            ConnectionLink(self._engine) if self._inline is None else InlineSqliteLink(self._inline)
        )
        self._session = session
        self.customers = SqlCustomerRepository(session)
        self.agents = SqlAgentRepository(session)
        self.assignments = SqlAssignmentRepository(session)
        self.decisions = SqlDecisionRepository(session)
        self.callbacks = SqlCallbackRepository(session)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        try:
            # Shielded: a cancelled request (client gone) still rolls back and returns its connection to
            # the pool. An inline SQLite link closes without suspending, so nothing can interrupt it.
            if session.close_suspends:
                await asyncio.shield(session.close())
            else:
                await session.close()
        except Exception as error:
            if exc is None:
                if is_unavailable(error):
                    raise unavailable_from(error) from error
                raise
            # Already failing: the original error matters more than a failed rollback on a dead link.
            with contextlib.suppress(Exception):
                await session.invalidate()
        if exc is not None and not isinstance(exc, Unavailable) and is_unavailable(exc):
            raise unavailable_from(exc) from exc

    def _active(self) -> Link:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `async with`")
        return self._session

    async def commit(self) -> None:
        """Commit the transaction (the unit of work can go on with a new one)."""
        try:
            await self._active().commit()
        except Exception as error:
            if is_unavailable(error):
                raise unavailable_from(error) from error
            raise

    async def rollback(self) -> None:
        """Roll back the transaction (the unit of work can go on with a new one)."""
        try:
            await self._active().rollback()
        except Exception as error:
            if is_unavailable(error):
                raise unavailable_from(error) from error
            raise

    async def announce(self, freed: AgentFreed) -> None:
        """PostgreSQL: NOTIFY the other routing processes in this transaction (delivered if it commits).
        SQLite: nothing (one routing process per file)."""
        session = self._active()
        if session.dialect_name != "postgresql" or freed.free_slots <= 0:
            return
        for payload in encode_notices(self._origin, freed):
            await session.execute(NOTIFY_STATEMENT, {"payload": payload})


class SqlUnitOfWorkFactory:
    """`ports.UnitOfWorkFactory`: each call gives a fresh `SqlUnitOfWork` on the same engine (and, for a
    SQLite file, the same inline connection). `origin` tags its availability notices (a new id by default)."""

    def __init__(
        self, engine: AsyncEngine, inline: InlineSqlite | None = None, *, origin: str | None = None
    ) -> None:
        self.engine = engine
        self.inline = inline
        self.origin = origin or new_origin()

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.inline, origin=self.origin)


def sql_uow_factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    """A unit-of-work factory over `engine` (typed as the port, so mypy checks the store conforms)."""
    return SqlUnitOfWorkFactory(engine)
