"""Hot statements: the handful the decision path runs on every call, built once at import.

`hot(statement)` marks one (and returns it, for use at module level). A back end may give marked statements
a faster path: `sqlite_inline` compiles each once and runs it straight on `sqlite3`, skipping SQLAlchemy's
per-execution bookkeeping (about 100 µs a statement, profiled, against 5-60 µs of SQL). Only statements that
live as long as the process may be marked (the registry is keyed by identity).
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.sql import Executable

__all__ = ["HOT_STATEMENTS", "hot"]

_S = TypeVar("_S", bound=Executable)

HOT_STATEMENTS: dict[int, Executable] = {}
"""id(statement) -> statement (kept alive, so an id is never reused)."""


def hot(statement: _S) -> _S:
    """Mark `statement` as hot (see the module docstring)."""
    HOT_STATEMENTS[id(statement)] = statement
    return statement
