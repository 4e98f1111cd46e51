"""SQLAlchemy implementation of `routing_service.app.ports`: SQLite by default, PostgreSQL via asyncpg.

Modules: `engine` (engine setup), `tables` (schema), `migrate` (applies the database's one Alembic history,
`escalade_platform.migrations`, when the store opens; `python -m escalade_platform.migrations
upgrade|current [URL]` by hand, or its old name `python -m routing_service.store`), one module per repository
(`customers`, `agents`, `assignments`, `decisions`, `callbacks`) over `base`, `errors` (driver failures ->
`Unavailable`), `unit_of_work` and the `Store` convenience in `store`; `notify` carries availability
events between routing processes on PostgreSQL (NOTIFY in the transaction, one listener per server). The
decision path's speed: `hot` (statements marked hot, compiled once), `sqlite_inline` (SQLite units of work
run on the event loop, hot statements straight on sqlite3) and `pg_hot` (hot statements straight on
asyncpg).
"""

from __future__ import annotations

from routing_service.store.engine import DEFAULT_DATABASE_URL, create_engine
from routing_service.store.migrate import upgrade
from routing_service.store.store import Store
from routing_service.store.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory, sql_uow_factory

__all__ = [
    "DEFAULT_DATABASE_URL",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "Store",
    "create_engine",
    "sql_uow_factory",
    "upgrade",
]
