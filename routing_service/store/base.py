"""What every repository shares: the unit of work's link, error translation, dialect helpers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Executable

from routing_service.store.errors import is_unavailable, unavailable_from
from routing_service.store.statements import Result, shared

if TYPE_CHECKING:
    from routing_service.store.unit_of_work import Link

__all__ = ["SqlRepository", "insert_ignore"]

_INSERT_IGNORE: dict[tuple[str, bool], Executable] = {}


def insert_ignore(table: Table, *, postgres: bool) -> Executable:
    """`INSERT INTO table ... ON CONFLICT DO NOTHING` (both databases support it), built once per dialect;
    execute it with one dict of column values. Its rowcount is 0 when a unique constraint already held."""
    key = (table.name, postgres)
    statement = _INSERT_IGNORE.get(key)
    if statement is None:
        insert = postgresql.insert(table) if postgres else sqlite.insert(table)
        statement = _INSERT_IGNORE[key] = shared(insert.on_conflict_do_nothing())
    return statement


def _raise_unavailable(error: Exception) -> None:
    """Raise `Unavailable` for a driver error that means the database cannot be reached; else return."""
    if is_unavailable(error):
        raise unavailable_from(error) from error


class SqlRepository:
    """Base of the repositories: runs statements on the unit of work's link.

    Statements are SQLAlchemy Core, built once at import where they can be (`statements.shared`), compiled
    once per database and run by the database's driver path (`postgres`, `sqlite`); availability failures
    surface as `Unavailable`; rows never leave a repository (each maps to a domain dataclass).
    """

    def __init__(self, session: Link) -> None:
        self._session = session
        self._postgres = session.dialect_name == "postgresql"

    async def _execute(
        self, statement: Executable, params: Mapping[str, Any] | list[dict[str, Any]] | None = None
    ) -> Result:
        """Run `statement` once, or once per parameter set when `params` is a list (rows are not
        returned then; the row count is the total)."""
        try:
            if isinstance(params, list):
                total = 0
                for each in params:
                    total += (await self._session.execute(statement, each)).rowcount
                return Result([], total)
            return await self._session.execute(statement, params)
        except Exception as error:
            _raise_unavailable(error)
            raise

    async def _lock(self, key: str) -> None:
        """The link's transaction-scoped lock on `key` (`Link.lock`)."""
        try:
            await self._session.lock(key)
        except Exception as error:
            _raise_unavailable(error)
            raise

    async def _insert_ignore(self, table: Table, values: dict[str, Any]) -> bool:
        """Insert one row unless it violates a unique constraint; True when inserted."""
        result = await self._execute(insert_ignore(table, postgres=self._postgres), values)
        return result.rowcount == 1
