"""The routing store: `routing_service.app.ports` on SQLite (default) or PostgreSQL.

Modules: `store` (`Store`: open, migrate, units of work), `database` (the URL chooses the database once),
one driver path per database (`sqlite`: stdlib sqlite3, statements inline on the event loop; `postgres`: an
asyncpg pool), `statements` (the repositories' SQLAlchemy Core statements compiled once into each driver's
SQL), `tables` (schema), `migrate` (applies the database's one Alembic history,
`escalade_platform.migrations`, when the store opens; `python -m escalade_platform.migrations
upgrade|current [URL]` by hand, or its old name `python -m routing_service.store`), one module per repository
(`customers`, `agents`, `assignments`, `decisions`, `callbacks`) over `base`, `errors` (driver failures ->
`Unavailable`), `unit_of_work`; `notify` carries availability events between routing processes on
PostgreSQL (NOTIFY in the transaction, one listener per server).
"""

from __future__ import annotations

from routing_service.store.database import DEFAULT_DATABASE_URL, open_database
from routing_service.store.migrate import upgrade
from routing_service.store.store import Store
from routing_service.store.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "Store",
    "open_database",
    "upgrade",
]
