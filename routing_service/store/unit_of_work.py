"""`ports.UnitOfWork` on SQLAlchemy: one AsyncSession (one transaction) per `async with` block.

Commit is explicit; leaving the block without `commit()` rolls back. Availability failures anywhere in the
block (connect, statements, commit) surface as `routing_service.domain.errors.Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from routing_service.app.ports import (
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

__all__ = ["SqlUnitOfWork", "SqlUnitOfWorkFactory", "session_factory", "sql_uow_factory"]


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for units of work (Core statements only; nothing to expire on commit)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def _end(session: AsyncSession) -> None:
    try:
        await session.rollback()
    finally:
        await session.close()


class SqlUnitOfWork:
    """One transaction over the five repositories."""

    # Typed as the ports (protocol attributes are invariant); the values are the Sql* repositories.
    customers: CustomerRepository
    agents: AgentRepository
    assignments: AssignmentRepository
    decisions: DecisionRepository
    callbacks: CallbackRepository

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        session = self._sessions()
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
            # the pool, which matters most with SQLite's single pooled connection.
            await asyncio.shield(_end(session))
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

    def _active(self) -> AsyncSession:
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


class SqlUnitOfWorkFactory:
    """`ports.UnitOfWorkFactory`: each call gives a fresh `SqlUnitOfWork` on the same engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = session_factory(engine)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._sessions)


def sql_uow_factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    """A unit-of-work factory over `engine` (typed as the port, so mypy checks the store conforms)."""
    return SqlUnitOfWorkFactory(engine)
