"""Alembic environment of Escalade's database (see `escalade_platform.migrations`).

Run through `escalade_platform.migrations.upgrade_engine`, which opens an async connection and hands its
sync facade to Alembic in `config.attributes["connection"]` (Alembic's "sharing a connection" recipe, via
`run_sync`); no alembic.ini. Offline (`--sql`) mode renders SQL for the configured `sqlalchemy.url`.

Revisions are written by hand (no autogenerate), so the target metadata only carries the naming convention
that `op.create_table` and friends apply to the names they are given.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from escalade_platform.migrations import NAMING_CONVENTION, VERSION_TABLE

config = context.config
target_metadata = MetaData(naming_convention=NAMING_CONVENTION)


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url") or "",
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    shared = config.attributes.get("connection")
    if shared is None:
        raise RuntimeError("run migrations through escalade_platform.migrations.upgrade(url)")
    run_online(shared)
