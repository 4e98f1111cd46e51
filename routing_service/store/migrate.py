"""The routing store's side of the database's migrations (`escalade_platform.migrations` holds the one
history of the database: these tables, the edge's outbox and the worker's tables).

`await upgrade(url)` brings an empty or older database to the newest revision and is a no-op when it is
already there; the store runs it when it opens (`Store.open`). It runs on a short-lived SQLAlchemy engine of
its own (SQLite: BEGIN IMMEDIATE; PostgreSQL: under the upgrade's advisory lock), in one transaction, so
replicas starting together migrate one after the other. A private in-memory SQLite database is migrated on
the store's own connection (`upgrade_sqlite_connection`). Either way the migration is the only one running
in the process (`escalade_platform.migrations.one_at_a_time`: Alembic's `context` and `op` are module
globals), so the edge, the worker and stores of one process may start together on different databases.
Driver failures become `Unavailable`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from escalade_platform import migrations
from escalade_platform.migrations import alembic_config, head_revision
from routing_service.store.errors import translate_errors
from routing_service.store.tables import metadata

__all__ = [
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_object_for",
    "upgrade",
    "upgrade_sqlite_connection",
]


def include_object_for(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook comparing the database with this store's tables only."""
    return migrations.include_object_for(dialect_name, metadata.tables.keys())


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the newest); `Unavailable` when unreachable."""
    async with translate_errors():
        await migrations.upgrade(url, revision)


async def upgrade_sqlite_connection(connection: sqlite3.Connection, revision: str = "head") -> None:
    """Upgrade the SQLite database behind an open `sqlite3` connection (a private in-memory one) to
    `revision`, once no other migration of the process runs. The connection stays open."""
    async with migrations.one_at_a_time():
        engine = create_engine("sqlite://", creator=lambda: connection, poolclass=StaticPool)
        with engine.connect() as sa_connection:
            migrations.upgrade_connection(sa_connection, revision)
            sa_connection.commit()


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None when never migrated); `Unavailable` when
    unreachable."""
    async with translate_errors():
        return await migrations.current_revision(url)
