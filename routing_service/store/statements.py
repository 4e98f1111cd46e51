"""SQLAlchemy Core statements turned into driver SQL once, and run by the store's own driver path.

The repositories write their SQL as SQLAlchemy Core statements (the schema's types and both dialects in one
place); nothing of SQLAlchemy runs when a statement executes. `CompiledStatement` is a statement compiled,
through SQLAlchemy's public compiler API, for one database's driver (`$n` parameters and bind casts for
asyncpg, `?` for sqlite3): its SQL text, the order of its parameters, its constant parameters, the type
conversions SQLAlchemy's types define for its parameters and result columns, and a named-tuple row type.
The drivers (`postgres`, `sqlite`) execute that text on their connections and hand back a `Result`.

Statements built once at import (module constants) are compiled once per database and parameter shape and
kept in a `StatementCache`; a statement built per call (a list of ids in an IN clause, a page query) is
compiled for that call. `shared(statement)` marks a module constant: only marked statements are cached,
since the cache is keyed by identity.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "SHARED_STATEMENTS",
    "CompiledStatement",
    "NoResultFound",
    "Processor",
    "Result",
    "StatementCache",
    "shared",
]

_S = TypeVar("_S", bound=Executable)

SHARED_STATEMENTS: dict[int, Executable] = {}
"""id(statement) -> statement (kept alive, so an id is never reused)."""

Processor = Callable[[Any], Any]


def shared(statement: _S) -> _S:
    """Mark a statement that lives as long as the process (a module constant): its compiled forms are
    cached. Returns it, for use at module level."""
    SHARED_STATEMENTS[id(statement)] = statement
    return statement


class NoResultFound(LookupError):
    """`Result.scalar_one` found no row (or several)."""


def _parse_datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _utc(value: Any) -> Any:
    if value is None:
        return None
    value = _parse_datetime(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def result_processor(type_: TypeEngine[Any], dialect: Dialect, coltype: Any) -> Processor | None:
    """The conversion SQLAlchemy's type defines for a fetched value on `dialect` (public type API), except
    that datetimes stored as text by SQLite ('YYYY-MM-DD HH:MM:SS.ffffff') are parsed with the C
    `datetime.fromisoformat` instead of SQLAlchemy's regular expression; a `TypeDecorator` over a datetime
    (`tables.UtcDateTime`) then runs its own step."""
    if isinstance(type_, TypeDecorator) and isinstance(type_.impl_instance, DateTime):
        decorate = type_.process_result_value

        def decorated(value: Any) -> Any:
            return decorate(_parse_datetime(value), dialect)

        return decorated
    if isinstance(type_, DateTime):
        return _utc if type_.timezone else _parse_datetime
    processor: Processor | None = type_.dialect_impl(dialect).result_processor(dialect, coltype)
    return processor


class CompiledStatement:
    """One statement compiled for one driver and one set of parameter names (see the module docstring).

    `result_processors` are chosen by the driver (`use_result_types`): asyncpg's conversions depend on each
    column's type OID, which the driver learns the first time it prepares the statement."""

    __slots__ = (
        "_compiled",
        "column_types",
        "dialect",
        "expanding",
        "names",
        "processors",
        "result_processors",
        "row_type",
        "sql",
        "statics",
        "textual",
    )

    def __init__(self, statement: Executable, keys: tuple[str, ...], dialect: Dialect) -> None:
        compiled = cast(ClauseElement, statement).compile(dialect=dialect, column_keys=list(keys) or None)
        if not isinstance(compiled, SQLCompiler) or compiled.positiontup is None:
            raise TypeError(f"not a positional SQL statement for {dialect.name}: {statement!r}")
        self.dialect = dialect
        self._compiled = compiled
        self.sql: str = compiled.string
        self.names = tuple(compiled.positiontup)
        binds = compiled.bind_names  # BindParameter -> its name in the SQL
        self.statics = {name: bind.effective_value for bind, name in binds.items() if not bind.required}
        self.expanding = any(bind.expanding for bind in binds)
        processors: dict[str, Processor] = {}
        for bind, name in binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self.processors = processors
        columns = list(getattr(statement, "exported_columns", ()))
        self.textual = not isinstance(statement, ClauseElement) or not hasattr(statement, "exported_columns")
        """True for a textual statement (`text(...)`): whether it returns rows, and their names, are known
        only when it runs (`rows_named`)."""
        self.column_types: tuple[TypeEngine[Any], ...] = tuple(column.type for column in columns)
        self.result_processors: tuple[tuple[int, Processor], ...] | None = None
        self.row_type: Any = (
            namedtuple("Row", [str(column.key) for column in columns], rename=True) if columns else None
        )

    @property
    def returns_rows(self) -> bool:
        return self.row_type is not None

    def use_result_types(self, coltypes: list[Any] | None = None) -> None:
        """Choose the result conversions, given the driver's type code of each column (None: unknown)."""
        codes = coltypes if coltypes is not None else [None] * len(self.column_types)
        self.result_processors = tuple(
            (index, processor)
            for index, (type_, code) in enumerate(zip(self.column_types, codes, strict=True))
            if (processor := result_processor(type_, self.dialect, code)) is not None
        )

    def bound(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """The SQL and its positional parameters for `params` (constants filled in, conversions applied).
        A statement with an expanding parameter (`IN` over a list) is rendered for this list's length."""
        if self.expanding:
            return self._expanded(params)
        values = []
        processors, statics = self.processors, self.statics
        for name in self.names:
            value = params[name] if name in params else statics[name]
            processor = processors.get(name)
            values.append(value if processor is None else processor(value))
        return self.sql, values

    def _expanded(self, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        state = self._compiled.construct_expanded_state(dict(params))
        processors = {**self.processors, **state.processors}
        values = []
        for name in state.positiontup or ():
            value = state.parameters[name]
            processor = processors.get(name)
            values.append(value if processor is None else processor(value))
        return state.statement, values

    @staticmethod
    def rows_named(names: list[str], fetched: Any) -> list[Any]:
        """Named-tuple rows of a textual statement, named as the driver reports its columns (no type
        conversions: a textual statement declares no types)."""
        row_type: Any = namedtuple("Row", tuple(names), rename=True)  # type: ignore[misc]
        return [row_type._make(values) for values in fetched]

    def rows(self, fetched: Any) -> list[Any]:
        """Named-tuple rows from the driver's rows, result conversions applied."""
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
    """Compiled forms by (statement, parameter names) for shared statements; a statement that is not
    shared is compiled on each `get` (its identity may be reused once it is gone)."""

    def __init__(self, compile_: Callable[[Executable, tuple[str, ...]], _C]) -> None:
        self._compile = compile_
        self._compiled: dict[tuple[int, tuple[str, ...]], _C] = {}

    def __len__(self) -> int:
        return len(self._compiled)

    def get(self, statement: Executable, params: Mapping[str, Any] | None) -> _C:
        keys = tuple(params) if params else ()
        if id(statement) not in SHARED_STATEMENTS:
            return self._compile(statement, keys)
        cache_key = (id(statement), keys)
        compiled = self._compiled.get(cache_key, _MISSING)
        if compiled is _MISSING:
            compiled = self._compiled[cache_key] = self._compile(statement, keys)
        return cast(_C, compiled)

    def holds(self, statement: Executable) -> bool:
        """True when some compiled form of `statement` is cached."""
        return any(key[0] == id(statement) for key in self._compiled)


class Result:
    """A statement's rows (named tuples, already fetched) and row count: what the repositories read."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return self._rows

    def fetchall(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if len(self._rows) != 1:
            raise NoResultFound(f"expected exactly one row, got {len(self._rows)}")
        return self._rows[0][0]

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise NoResultFound(f"expected at most one row, got {len(self._rows)}")
        return self._rows[0][0] if self._rows else None
