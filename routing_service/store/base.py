"""What every SQL repository shares: one session per unit of work, error translation, dialect helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql import Executable

from routing_service.store.errors import is_unavailable, unavailable_from

__all__ = ["SqlRepository"]


class SqlRepository:
    """Base of the repositories: runs Core statements on the unit of work's connection.

    Availability failures surface as `Unavailable`; rows never leave a repository (each maps to a domain
    dataclass).
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def _connection(self) -> AsyncConnection:
        try:
            return await self._session.connection()
        except Exception as error:
            if is_unavailable(error):
                raise unavailable_from(error) from error
            raise

    async def _execute(self, statement: Executable, params: Any = None) -> CursorResult[Any]:
        try:
            connection = await self._session.connection()
            return await connection.execute(statement, params)
        except Exception as error:
            if is_unavailable(error):
                raise unavailable_from(error) from error
            raise

    async def _dialect(self) -> str:
        return (await self._connection()).dialect.name

    async def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """A dialect-specific INSERT (for ON CONFLICT clauses, which both back ends support)."""
        if await self._dialect() == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)
