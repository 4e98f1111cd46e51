"""Apply the routing store's Alembic migrations programmatically (no alembic.ini needed).

`await upgrade(url)` brings an empty or older database to the newest revision and is a no-op when it is
already there. It runs on one async connection whose sync facade is handed to Alembic (`run_sync`), inside
one transaction: on SQLite that transaction begins IMMEDIATE, and on PostgreSQL it first takes an advisory
lock, so replicas starting together migrate one after the other instead of racing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from routing_service.store.engine import create_engine
from routing_service.store.errors import translate_errors
from routing_service.store.tables import VERSION_TABLE, metadata

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "include_object_for",
    "upgrade",
    "upgrade_engine",
]

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x65_73_63_61_6C_61  # "escala": the advisory lock serialising concurrent upgrades


def alembic_config(url: str | None = None) -> Config:
    """An in-memory Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision shipped with this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def include_object_for(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic `include_object` hook for autogenerate comparisons.

    Only this schema's tables are compared (other components may share the database), and indexes declared
    with `.ddl_if(dialect=...)` for another dialect are ignored, as `metadata.create_all` would skip them.
    """

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "table":
            return name in metadata.tables
        if type_ == "index" and not reflected:
            condition = getattr(obj, "_ddl_if", None)
            wanted = getattr(condition, "dialect", None)
            if isinstance(wanted, str):
                return wanted == dialect_name
            if isinstance(wanted, tuple | list | set):
                return dialect_name in wanted
        return True

    return include_object


def _upgrade_sync(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_sync(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


async def upgrade_engine(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision` (default: the newest; idempotent)."""
    async with translate_errors(), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        await connection.run_sync(_upgrade_sync, alembic_config(), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the newest); `Unavailable` when unreachable."""
    engine = create_engine(url)
    try:
        await upgrade_engine(engine, revision)
    finally:
        await engine.dispose()


async def current_revision(url: str) -> str | None:
    """The revision the database at `url` is at (None when never migrated)."""
    engine = create_engine(url)
    try:
        async with translate_errors(), engine.connect() as connection:
            return await connection.run_sync(_current_sync)
    finally:
        await engine.dispose()
