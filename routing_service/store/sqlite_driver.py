"""aiosqlite connections that cost one thread hop per statement instead of four.

aiosqlite runs every sqlite3 call on the connection's own thread; SQLAlchemy's aiosqlite adapter makes four
such calls per statement (create a cursor, execute, fetch all rows, close the cursor), and each hop is a
queue put, a GIL hand-over and a self-pipe wake-up of the event loop. Profiled on the decision path
(ResolveEscalation + ReleaseAssignment, 11 statements with BEGIN and COMMIT): about 40 hops per decision, and
`SimpleQueue.put_nowait` (the hand-over) was the largest single item of the server's CPU profile.

`OneHopCursor` does the four steps in one call on the connection's thread (the statement is executed, its
rows fetched and the sqlite3 cursor closed there) and keeps what SQLAlchemy reads afterwards (description,
rowcount, lastrowid, rows). Everything else (transactions, pragmas, busy timeout, errors) is plain
aiosqlite/sqlite3 behaviour.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager

__all__ = ["OneHopConnection", "OneHopCursor", "one_hop_connector"]

_Outcome = tuple[Any, int, int | None, list[Any]]


def _run(connection: sqlite3.Connection, sql: str, parameters: Any, many: bool) -> _Outcome:
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description is not None else []
        return cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()


class OneHopCursor(aiosqlite.Cursor):
    """An aiosqlite cursor whose `execute` also fetches every row and closes the sqlite3 cursor (one hop)."""

    def __init__(self, conn: OneHopConnection) -> None:
        self.iter_chunk_size = conn._iter_chunk_size
        self._conn = conn
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._rows: list[Any] = []
        self._arraysize = 1

    async def _run(self, sql: str, parameters: Any, many: bool) -> OneHopCursor:
        outcome: _Outcome = await self._conn._execute(  # type: ignore[no-untyped-call]
            _run, self._conn._conn, sql, parameters, many
        )
        self._description, self._rowcount, self._lastrowid, self._rows = outcome
        return self

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> OneHopCursor:
        """Execute `sql` and buffer its rows."""
        return await self._run(sql, () if parameters is None else parameters, False)

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> OneHopCursor:
        """Execute `sql` once per parameter set."""
        return await self._run(sql, parameters, True)

    async def executescript(self, sql_script: str) -> OneHopCursor:
        """Run a script (no rows)."""
        await self._conn._execute(self._conn._conn.executescript, sql_script)  # type: ignore[no-untyped-call]
        self._description, self._rowcount, self._rows = None, -1, []
        return self

    async def fetchone(self) -> Any:
        """The next buffered row, or None."""
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        """Up to `size` (default `arraysize`) buffered rows."""
        count = self._arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> Sequence[Any]:
        """The remaining buffered rows."""
        taken, self._rows = self._rows, []
        return taken

    async def close(self) -> None:
        """Nothing to do: the sqlite3 cursor was closed on the connection's thread."""
        self._rows = []

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    @property
    def description(self) -> Any:
        return self._description

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value


class OneHopConnection(aiosqlite.Connection):
    """An aiosqlite connection whose cursors are `OneHopCursor`s (creating one costs no hop)."""

    @contextmanager
    async def cursor(self) -> OneHopCursor:  # type: ignore[override]
        return OneHopCursor(self)


def one_hop_connector(
    connect_args: Callable[[], tuple[Sequence[Any], dict[str, Any]]],
) -> Callable[[], Awaitable[OneHopConnection]]:
    """An `async_creator` for `create_async_engine`: `connect_args()` gives sqlite3.connect's arguments."""

    async def connect() -> OneHopConnection:
        args, kwargs = connect_args()

        def connector() -> sqlite3.Connection:
            connection: sqlite3.Connection = sqlite3.connect(*args, **kwargs)
            return connection

        connection = OneHopConnection(connector, 64)
        connection._thread.daemon = True  # as SQLAlchemy does for its own aiosqlite connections
        await connection
        return connection

    return connect
