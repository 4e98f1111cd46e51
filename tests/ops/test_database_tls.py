"""The database URL's TLS options reach every path to PostgreSQL: the store's asyncpg pool, the availability
listener's connection, the migrations' engine, the edge's outbox and the worker's engine (SQLAlchemy's
asyncpg dialect). The test server speaks no TLS, so `?ssl=require` must make each of them fail with the
driver's "rejected SSL upgrade", while the same URL without it connects: proof the option arrived."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from routing_service.store import Store
from routing_service.store.postgres import PostgresDatabase, asyncpg_connect_args
from tests.conftest import create_pg_database, drop_pg_database, pg_url
from webhook_edge.outbox import Outbox
from workflows.worker import open_engine

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]


def _chain(error: BaseException | None) -> str:
    """The messages of an exception and its causes."""
    messages = []
    while error is not None:
        messages.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " <- ".join(messages)


async def _store_pool(url: str) -> None:
    database = await PostgresDatabase.open(url)
    await database.close()


async def _listener_connection(url: str) -> None:
    connection = await asyncpg.connect(**asyncpg_connect_args(url), timeout=5)
    await connection.close()


async def _store(url: str) -> None:
    store = await Store.open(url)
    await store.close()


async def _outbox(url: str) -> None:
    outbox = await Outbox.open(url)
    await outbox.close()


async def _worker_engine(url: str) -> None:
    engine = await open_engine(url)
    await engine.dispose()


PATHS: dict[str, Callable[[str], Awaitable[Any]]] = {
    "store pool (asyncpg)": _store_pool,
    "availability listener (asyncpg)": _listener_connection,
    "store open: migrations (SQLAlchemy)": _store,
    "edge outbox (SQLAlchemy)": _outbox,
    "worker engine (SQLAlchemy)": _worker_engine,
}


@pytest.mark.parametrize("path", list(PATHS))
async def test_the_urls_tls_option_reaches_the_driver(path: str) -> None:
    connect = PATHS[path]
    database = await create_pg_database()  # its own: the migrating paths leave their schema behind
    try:
        plain = pg_url(database)
        await connect(plain)  # the path works without the option
        with pytest.raises(Exception) as caught:  # each path wraps the driver error its own way
            await connect(plain + "?ssl=require")
    finally:
        await drop_pg_database(database)
    assert "rejected SSL upgrade" in _chain(caught.value), _chain(caught.value)
