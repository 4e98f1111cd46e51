"""`Store`: the routing store in one object (engine + migrations + unit-of-work factory).

store = await Store.open("sqlite+aiosqlite:///.escalade/escalade.db")
async with store.uow() as uow:
    ...
    await uow.commit()
await store.close()

On PostgreSQL, `store.availability_listener(deliver)` gives the listener that hears the availability notices
of the other stores (routing processes) on the same database (see `notify`); None on SQLite.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from sqlalchemy.ext.asyncio import AsyncEngine

from routing_service.app.ports import AgentFreed
from routing_service.store.engine import (
    DEFAULT_DATABASE_URL,
    PG_CONNECT_TIMEOUT_S,
    create_engine,
    inline_sqlite,
)
from routing_service.store.migrate import upgrade_engine
from routing_service.store.notify import PgAvailabilityListener, new_origin
from routing_service.store.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = ["Store"]


class Store:
    """An open routing store. Use `await Store.open(url)`; close with `await store.close()`."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        self.inline = inline_sqlite(url)
        self.origin = new_origin()
        """Tags this store's availability notices, so its own listener skips them."""
        self.uow_factory = SqlUnitOfWorkFactory(engine, self.inline, origin=self.origin)

    @classmethod
    async def open(cls, url: str = DEFAULT_DATABASE_URL, *, migrate: bool = True) -> Self:
        """Create the engine and (by default) apply migrations. Raises `Unavailable` when unreachable."""
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade_engine(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine, url)

    def uow(self) -> SqlUnitOfWork:
        """A new unit of work (use with `async with`)."""
        return self.uow_factory()

    def availability_listener(self, deliver: Callable[[AgentFreed], None]) -> PgAvailabilityListener | None:
        """On PostgreSQL, a listener (not yet running) for the availability notices of other stores on
        this database, handing each to `deliver`; None on SQLite."""
        if self.engine.dialect.name != "postgresql":
            return None
        return PgAvailabilityListener(
            self.engine.url, origin=self.origin, deliver=deliver, connect_timeout=PG_CONNECT_TIMEOUT_S
        )

    async def close(self) -> None:
        """Dispose of the engine's connections."""
        if self.inline is not None:
            self.inline.close()
        await self.engine.dispose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
