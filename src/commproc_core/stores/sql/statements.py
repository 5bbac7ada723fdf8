"""Statements compiled once and run on the DBAPI cursor, past SQLAlchemy's execute path.

SQLAlchemy's ``Connection.execute`` costs 100-200 microseconds a statement
even with its compiled cache (context setup, parameter processing, events,
result wrapping): more than SQLite's own execute, and about 19 statements
make one event of a typical channel. The store's statements never change,
so each is compiled once per dialect here, its parameters laid out in the
driver's paramstyle, and the column types' own bind and result processors
applied, exactly the conversions SQLAlchemy would make.

SQLAlchemy still owns the connection, the pool and the transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter

__all__ = ["Compiled", "Prepared", "RowCodec"]

Codec = Callable[[Any], Any]


class Compiled:
    """One statement's SQL for one dialect, and how its parameters are laid out."""

    __slots__ = ("_fixed", "_names", "_slots", "positional", "sql")

    def __init__(
        self, statement: sa.ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> None:
        keys = list(column_keys) if column_keys is not None else None
        # A SELECT, INSERT, UPDATE or DELETE always compiles with the SQL compiler.
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=keys))
        if compiled.post_compile_params or compiled.literal_execute_params:
            # Their SQL is rendered per call; none of the store's statements has any.
            raise NotImplementedError(f"statement needs per-call rendering: {compiled.string}")
        self.sql: str = compiled.string
        self.positional = bool(dialect.positional)
        names: Sequence[str]
        if self.positional:
            names = compiled.positiontup or ()
        else:
            # A name bound twice (``_id`` in a checked update) is one dict entry.
            names = list(dict.fromkeys(compiled.bind_names.values()))
        escaped = compiled.escaped_bind_names
        self._names = tuple(escaped.get(n, n) for n in names)
        fixed: list[Any] = []
        slots: list[tuple[int, str, Codec | None]] = []
        for position, name in enumerate(names):
            bind: BindParameter[Any] = compiled.binds[name]
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.required:
                # Given by the caller under its key on each call.
                fixed.append(None)
                slots.append((position, bind.key, process))
            else:
                # A literal of the statement (``status = 'open'``, ``LIMIT 1``).
                value = bind.effective_value
                fixed.append(value if process is None else process(value))
        self._fixed = fixed
        self._slots = tuple(slots)

    def params(self, values: Mapping[str, Any]) -> Any:
        """``values`` (by bind key) as the driver takes them, converted by the column types."""
        out = self._fixed.copy()
        for position, key, process in self._slots:
            value = values[key]
            # Called for None too, as SQLAlchemy does: a JSON column stores None as JSON null.
            out[position] = value if process is None else process(value)
        if self.positional:
            return tuple(out)
        return dict(zip(self._names, out, strict=True))


class Prepared:
    """A statement compiled on first use, for the dialect of the connection that runs it."""

    __slots__ = ("_column_keys", "_compiled", "statement")

    def __init__(self, statement: sa.ClauseElement, *, column_keys: Sequence[str] | None = None) -> None:
        self.statement = statement
        # INSERT and UPDATE: the columns given values (else SQLAlchemy would take every column).
        self._column_keys = column_keys
        self._compiled: Compiled | None = None

    def compiled(self, dialect: Dialect) -> Compiled:
        # Compiled lazily: the dialect is fully initialized only once it has connected.
        compiled = self._compiled
        if compiled is None:
            compiled = self._compiled = Compiled(self.statement, dialect, self._column_keys)
        return compiled


class RowCodec:
    """Turns a table's rows into records: the column types' result processors, then field codecs."""

    __slots__ = ("_codecs", "_names", "_record")

    def __init__(
        self,
        table: sa.Table,
        record: type[Any],
        loads: Mapping[str, Codec],
        dialect: Dialect,
        description: Sequence[Sequence[Any]],
    ) -> None:
        names = tuple(c.name for c in table.c)
        codecs: list[tuple[int, Codec]] = []
        for position, (column, entry) in enumerate(zip(table.c, description, strict=True)):
            # The driver's type code picks the processor, as in SQLAlchemy's result setup.
            process = column.type.dialect_impl(dialect).result_processor(dialect, entry[1])
            codec = _chain(process, loads.get(column.name))
            if codec is not None:
                codecs.append((position, codec))
        self._names = names
        self._codecs = tuple(codecs)
        self._record = record

    def load(self, row: Sequence[Any]) -> Any:
        values = list(row)
        for position, codec in self._codecs:
            values[position] = codec(values[position])
        return self._record(**dict(zip(self._names, values, strict=True)))


def _chain(first: Codec | None, then: Codec | None) -> Codec | None:
    if first is None or then is None:
        return first or then

    def both(value: Any) -> Any:
        return then(first(value))

    return both
