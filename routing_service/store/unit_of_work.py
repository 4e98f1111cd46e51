"""`ports.UnitOfWork` on the store's database: one transaction per `async with` block.

Commit is explicit; leaving the block without `commit()` rolls back. Availability failures anywhere in the
block (connect, statements, commit) surface as `routing_service.domain.errors.Unavailable`.

The database is chosen once, when the store opens: `postgres.PostgresDatabase` (asyncpg) or
`sqlite.SqliteDatabase` (stdlib sqlite3, inline). Each gives a unit of work a `Link`: its transaction on one
connection, taken on the first statement.

`announce` sends a freed slot to the other routing processes on PostgreSQL with NOTIFY in the unit of work's
transaction, tagged with the factory's `origin` (see `notify`); on SQLite it does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable

from routing_service.app.ports import (
    AgentFreed,
    AgentRepository,
    AssignmentRepository,
    CallbackRepository,
    CustomerRepository,
    DecisionRepository,
    ReviewOutcomeRepository,
)
from routing_service.domain.errors import Unavailable
from routing_service.store.agents import SqlAgentRepository
from routing_service.store.assignments import SqlAssignmentRepository
from routing_service.store.callbacks import SqlCallbackRepository, WaitRatioCache
from routing_service.store.customers import SqlCustomerRepository
from routing_service.store.decisions import SqlDecisionRepository
from routing_service.store.errors import is_unavailable, unavailable_from
from routing_service.store.notify import CHANNEL, encode_notices, new_origin
from routing_service.store.review_outcomes import SqlReviewOutcomeRepository
from routing_service.store.statements import Result

__all__ = ["Database", "Link", "SqlUnitOfWork", "SqlUnitOfWorkFactory"]


class Link(Protocol):
    """A unit of work's transaction on one connection: `postgres.PostgresLink` or `sqlite.SqliteLink`."""

    dialect_name: str
    close_suspends: bool
    """False when `close` never suspends (it then needs no shield against cancellation)."""

    async def execute(self, statement: Executable, params: Mapping[str, Any] | None = None) -> Result: ...
    async def lock(self, key: str) -> None:
        """Serialise this transaction with every other one that locks `key`, until it ends."""
        ...

    async def notify(self, channel: str, payload: str) -> None:
        """Tell other processes `payload` on `channel` if, and when, this transaction commits."""
        ...

    async def commit(self) -> None: ...
    async def rollback(self) -> None: ...
    async def close(self) -> None: ...
    async def invalidate(self) -> None: ...


class Database(Protocol):
    """An open database of the store: `postgres.PostgresDatabase` or `sqlite.SqliteDatabase`."""

    dialect_name: str
    dialect: Dialect
    """SQLAlchemy's dialect the statements are compiled for."""
    url: str

    def link(self) -> Link: ...
    async def close(self) -> None: ...


class SqlUnitOfWork:
    """One transaction over the five repositories."""

    # Typed as the ports (protocol attributes are invariant); the values are the Sql* repositories.
    customers: CustomerRepository
    agents: AgentRepository
    assignments: AssignmentRepository
    decisions: DecisionRepository
    callbacks: CallbackRepository
    review_outcomes: ReviewOutcomeRepository

    def __init__(
        self, database: Database, *, origin: str = "", wait_ratios: WaitRatioCache | None = None
    ) -> None:
        self._database = database
        self._origin = origin
        self._wait_ratios = wait_ratios
        self._session: Link | None = None

    async def __aenter__(self) -> Self:
        session = self._database.link()
        self._session = session
        self.customers = SqlCustomerRepository(session)
        self.agents = SqlAgentRepository(session)
        self.assignments = SqlAssignmentRepository(session)
        self.decisions = SqlDecisionRepository(session)
        self.callbacks = SqlCallbackRepository(session, wait_ratios=self._wait_ratios)
        self.review_outcomes = SqlReviewOutcomeRepository(session)
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
            await session.notify(CHANNEL, payload)


class SqlUnitOfWorkFactory:
    """`ports.UnitOfWorkFactory`: each call gives a fresh `SqlUnitOfWork` on the same database. `origin`
    tags its availability notices (a new id by default). Its units of work share one `WaitRatioCache`:
    each team's learned wait correction is read once per `WAIT_RATIO_TTL` per process, not per decision."""

    def __init__(self, database: Database, *, origin: str | None = None) -> None:
        self.database = database
        self.origin = origin or new_origin()
        self.wait_ratios = WaitRatioCache()

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.database, origin=self.origin, wait_ratios=self.wait_ratios)
