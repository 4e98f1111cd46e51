"""Alembic environment for the routing store.

Run through `routing_service.store.migrate`, which opens an async connection, hands its sync facade to
Alembic in `config.attributes["connection"]` (Alembic's "sharing a connection" recipe, via `run_sync`), and
needs no alembic.ini. Offline (`--sql`) mode renders SQL for the configured `sqlalchemy.url`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection, make_url

from routing_service.store.migrate import include_object_for
from routing_service.store.tables import VERSION_TABLE, metadata

config = context.config


def run_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(
        url=url,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_object=include_object_for(make_url(url).get_backend_name()),
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    shared = config.attributes.get("connection")
    if shared is None:
        raise RuntimeError("run migrations through routing_service.store.migrate.upgrade(url)")
    run_online(shared)
