"""Hot statements: the handful the decision path runs on every call, built once at import.

`hot(statement)` marks one (and returns it, for use at module level). The back ends give marked statements a
faster path: `sqlite_inline` runs them straight on `sqlite3` and `pg_hot` straight on asyncpg, skipping
SQLAlchemy's per-execution bookkeeping, which costs more than the SQL itself for these short statements. Only
statements that live as long as the process may be marked (the registry is keyed by identity). Traced or not,
a hot statement takes the same path: the back ends start its span themselves
(`escalade_platform.tracing.statement_spans`), since SQLAlchemy's execution events, which give every other
statement its span, do not fire for it.

This module also holds what both fast paths share: `CompiledStatement` (a statement compiled once per
parameter shape: SQL, parameter order, constants, bind processors, row type), `StatementCache` and
`FastResult` (the part of SQLAlchemy's result API the repositories read).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = [
    "HOT_STATEMENTS",
    "CompiledStatement",
    "FastResult",
    "NotFast",
    "StatementCache",
    "hot",
]

_S = TypeVar("_S", bound=Executable)

HOT_STATEMENTS: dict[int, Executable] = {}
"""id(statement) -> statement (kept alive, so an id is never reused)."""


Processor = Callable[[Any], Any]


def hot(statement: _S) -> _S:
    """Mark `statement` as hot (see the module docstring)."""
    HOT_STATEMENTS[id(statement)] = statement
    return statement


class NotFast(Exception):
    """The statement needs SQLAlchemy's full execution path (Python-side defaults, expanding parameters)."""


class CompiledStatement:
    """One hot statement compiled for a dialect: SQLAlchemy's own SQL text, the order of its parameters, the
    constant ones, the bind processors SQLAlchemy would apply, the result columns and a named-tuple row type.
    `result_processors` (index, processor) are set by the back end, which knows how to choose them."""

    __slots__ = ("columns", "names", "processors", "result_processors", "row_type", "sql", "statics")

    def __init__(self, statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> None:
        compiled = cast(ClauseElement, statement).compile(dialect=dialect, column_keys=list(keys) or None)
        if not isinstance(compiled, SQLCompiler) or (
            compiled.insert_prefetch
            or compiled.update_prefetch
            or compiled.literal_execute_params
            or compiled.post_compile_params
            or compiled.positiontup is None
        ):
            raise NotFast
        if not all(callable(processor) for processor in compiled._bind_processors.values()):
            raise NotFast  # tuple-valued parameters
        self.sql: str = compiled.string
        self.names = tuple(compiled.positiontup)
        self.statics = {
            name: bind.effective_value for bind, name in compiled.bind_names.items() if not bind.required
        }
        self.processors = cast(dict[str, Processor], dict(compiled._bind_processors))
        self.columns = tuple(compiled._result_columns)
        self.result_processors: tuple[tuple[int, Processor], ...] | None = None
        self.row_type: Any = (
            namedtuple("Row", [column.keyname for column in self.columns], rename=True)
            if self.columns
            else None
        )

    @property
    def returns_rows(self) -> bool:
        return bool(self.columns)

    def use_result_processors(self, processors: list[Processor | None]) -> None:
        """One processor (or None) per result column."""
        self.result_processors = tuple(
            (index, processor) for index, processor in enumerate(processors) if processor is not None
        )

    def parameters(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional parameters for `params` (constants filled in, bind processors applied)."""
        values = []
        processors, statics = self.processors, self.statics
        for name in self.names:
            value = params[name] if name in params else statics[name]
            processor = processors.get(name)
            values.append(value if processor is None else processor(value))
        return values

    def rows(self, fetched: list[Any]) -> list[Any]:
        """Named-tuple rows from the driver's rows, result processors applied."""
        row_type, processors = self.row_type, self.result_processors
        if row_type is None:
            return []
        if not processors:
            return [row_type._make(values) for values in fetched]
        rows = []
        for record in fetched:
            values = list(record)
            for index, processor in processors:
                values[index] = processor(values[index])
            rows.append(row_type._make(values))
        return rows


_C = TypeVar("_C", bound=CompiledStatement)
_MISSING: Any = object()


class StatementCache(Generic[_C]):
    """Compiled forms of hot statements by (statement, parameter names); None for a hot statement that must
    take SQLAlchemy's path (or for a statement that is not hot)."""

    def __init__(self, compile_: Callable[[Executable, tuple[str, ...]], _C]) -> None:
        self._compile = compile_
        self._compiled: dict[tuple[int, tuple[str, ...]], _C | None] = {}

    def __len__(self) -> int:
        return len(self._compiled)

    def get(self, statement: Executable, params: Any) -> _C | None:
        if id(statement) not in HOT_STATEMENTS:
            return None
        if params is not None and not isinstance(params, Mapping):
            return None
        keys = tuple(params) if params else ()
        cache_key = (id(statement), keys)
        compiled = self._compiled.get(cache_key, _MISSING)
        if compiled is _MISSING:
            try:
                compiled = self._compile(statement, keys)
            except NotFast:
                compiled = None
            self._compiled[cache_key] = compiled
        return cast(_C | None, compiled)

    def holds(self, statement: Executable) -> bool:
        """True when some compiled form of `statement` is cached."""
        return any(key[0] == id(statement) for key in self._compiled)


class FastResult:
    """The part of SQLAlchemy's `CursorResult` the repositories use, over rows already fetched."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if not self._rows:
            raise sa_exc.NoResultFound("expected exactly one row, got none")
        if len(self._rows) > 1:
            raise sa_exc.MultipleResultsFound("expected exactly one row, got several")
        return self._rows[0][0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise sa_exc.MultipleResultsFound("expected at most one row")
        return self._rows[0][0] if self._rows else None
