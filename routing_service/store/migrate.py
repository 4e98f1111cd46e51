"""The routing store's side of the database's migrations (`escalade_platform.migrations` holds the one
history of the database: these tables, the edge's outbox and the worker's tables).

`await upgrade(url)` brings an empty or older database to the newest revision and is a no-op when it is
already there; the store runs it when it opens (`Store.open`). It runs on the store's own engine, whose
SQLite transactions begin IMMEDIATE, in one transaction (PostgreSQL: under the upgrade's advisory lock), so
replicas starting together migrate one after the other. Driver failures become `Unavailable`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from escalade_platform import migrations
from escalade_platform.migrations import alembic_config, head_revision
from routing_service.store.engine import create_engine
from routing_service.store.errors import translate_errors
from routing_service.store.tables import metadata

__all__ = [
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_object_for",
    "upgrade",
    "upgrade_engine",
]


def include_object_for(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook comparing the database with this store's tables only."""
    return migrations.include_object_for(dialect_name, metadata.tables.keys())


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision` (default: the newest; idempotent)."""
    async with translate_errors():
        await migrations.upgrade_engine(engine, revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the newest); `Unavailable` when unreachable."""
    engine = create_engine(url)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None when never migrated); `Unavailable` when
    unreachable."""
    async with translate_errors():
        return await migrations.current_revision(url)
