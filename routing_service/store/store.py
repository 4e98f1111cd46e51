"""`Store`: the routing store in one object (database + migrations + unit-of-work factory).

store = await Store.open("sqlite+aiosqlite:///.escalade/escalade.db")
async with store.uow() as uow:
    ...
    await uow.commit()
await store.close()

The URL chooses the database once (`database.open_database`): SQLite through stdlib sqlite3, PostgreSQL
through asyncpg. On PostgreSQL, `store.availability_listener(deliver)` gives the listener that hears the
availability notices of the other stores (routing processes) on the same database (see `notify`); None on
SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from routing_service.app.ports import AgentFreed
from routing_service.store.database import DEFAULT_DATABASE_URL, open_database
from routing_service.store.errors import translate_errors
from routing_service.store.migrate import upgrade, upgrade_sqlite_connection
from routing_service.store.notify import PgAvailabilityListener, new_origin
from routing_service.store.postgres import PG_CONNECT_TIMEOUT_S
from routing_service.store.sqlite import SqliteDatabase
from routing_service.store.unit_of_work import Database, SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = ["Store"]


class Store:
    """An open routing store. Use `await Store.open(url)`; close with `await store.close()`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.url = database.url
        self.dialect_name = database.dialect_name
        self.origin = new_origin()
        """Tags this store's availability notices, so its own listener skips them."""
        self.uow_factory = SqlUnitOfWorkFactory(database, origin=self.origin)

    @classmethod
    async def open(cls, url: str = DEFAULT_DATABASE_URL, *, migrate: bool = True) -> Self:
        """Open the database and (by default) apply migrations. Raises `Unavailable` when unreachable."""
        async with translate_errors():
            database = await open_database(url)
        try:
            if migrate:
                if isinstance(database, SqliteDatabase) and database.path == ":memory:":
                    await upgrade_sqlite_connection(database.connection())
                else:
                    await upgrade(url)
        except BaseException:
            await database.close()
            raise
        return cls(database)

    def uow(self) -> SqlUnitOfWork:
        """A new unit of work (use with `async with`)."""
        return self.uow_factory()

    def availability_listener(self, deliver: Callable[[AgentFreed], None]) -> PgAvailabilityListener | None:
        """On PostgreSQL, a listener (not yet running) for the availability notices of other stores on
        this database, handing each to `deliver`; None on SQLite."""
        if self.dialect_name != "postgresql":
            return None
        return PgAvailabilityListener(
            self.url, origin=self.origin, deliver=deliver, connect_timeout=PG_CONNECT_TIMEOUT_S
        )

    async def close(self) -> None:
        """Close the database's connections."""
        await self.database.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
