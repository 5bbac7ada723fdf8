"""Set-based statements: a batch's loads and writes, a statement per table and kind.

* A load is one ``SELECT`` for every value at once: ``field = ANY(:values)``
  on PostgreSQL (one array parameter, so the SQL text never changes and the
  server prepares it once), ``field IN (SELECT value FROM json_each(:values))``
  on SQLite. Rows of tables the batch updates are read ``FOR UPDATE`` on
  PostgreSQL.
* A table's new rows go in one multi-row ``INSERT ... ON CONFLICT DO
  NOTHING`` (up to 500 rows a statement): the row count tells whether another
  transaction took a key first. Its text is the table's one-row insert with
  the ``VALUES`` group repeated, made by string work once per row count:
  compiling a statement per row count through SQLAlchemy cost more than the
  rows' own writes.
* Updates and deletes run one statement over many rows (``executemany``).

On PostgreSQL the statements of one step (a stage of loads, or all the
writes) go out in psycopg's pipeline mode: one round trip each. A multi-row
INSERT is written with PostgreSQL's own ``$n`` placeholders and run on a
``psycopg.RawCursor``: psycopg parses the placeholders of any other query,
on every execution for one with over 50 parameters (it keeps no cache of
those), which cost a quarter of a batch's CPU.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from commproc_core.ports import Load, TableChanges
from commproc_core.stores.sql.ops import TableOps
from commproc_core.stores.sql.statements import Compiled, Prepared

__all__ = ["MAX_ROWS", "BulkOps", "MultiRow", "Step", "conflict_detail"]

#: Rows per multi-row INSERT; more take several statements (parameters stay within every driver's limit).
MAX_ROWS = 500
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
#: Multi-row INSERT texts kept per row count up to this many rows (and for MAX_ROWS).
_CACHED_ROWS = 16

_LoadSignature = tuple[str, tuple[str, ...], bool]


class Step:
    """One statement of a pipelined step: the SQL, its parameters, and how to read its result."""

    __slots__ = ("expected", "many", "native", "ops", "params", "sql")

    def __init__(
        self,
        sql: str,
        params: Any,
        *,
        ops: TableOps,
        many: bool = False,
        expected: int | None = None,
        native: bool = False,
    ) -> None:
        self.sql = sql
        self.params = params
        self.ops = ops
        self.many = many
        #: The SQL has PostgreSQL's ``$n`` placeholders (run it on a psycopg RawCursor).
        self.native = native
        #: For writes: the rows the statement must change; fewer means a conflict.
        self.expected = expected


class BulkOps:
    """The set-based statements of one table, compiled once per shape for one dialect."""

    def __init__(self, ops: TableOps, dialect: Any) -> None:
        self.ops = ops
        self.dialect = dialect
        self.postgres = dialect.name == "postgresql"
        self._loads: dict[_LoadSignature, Prepared] = {}
        self._rows: MultiRow | None = None

    # -- loads ---------------------------------------------------------------------

    def load(self, load: Load) -> Step:
        where = tuple(f for f, _ in load.where)
        lock = load.lock and self.postgres
        signature = (load.field, where, lock)
        prepared = self._loads.get(signature)
        if prepared is None:
            prepared = self._loads[signature] = Prepared(self._load_statement(load.field, where, lock))
        values: Any = list(load.values) if self.postgres else json.dumps(list(load.values))
        params = {"_values": values, **{f"_w_{f}": v for f, v in load.where}}
        compiled = prepared.compiled(self.dialect)
        return Step(compiled.sql, compiled.params(params), ops=self.ops)

    def _load_statement(self, field: str, where: tuple[str, ...], lock: bool) -> sa.Select[Any]:
        table = self.ops.td.table
        column = table.c[field]
        if self.postgres:
            values = sa.bindparam("_values", type_=postgresql.ARRAY(column.type))
            condition = column == sa.any_(values)
        else:
            each = sa.func.json_each(sa.bindparam("_values", type_=sa.String())).table_valued("value")
            condition = column.in_(sa.select(each.c.value))
        conditions = [condition]
        conditions += [table.c[f] == sa.bindparam(f"_w_{f}", type_=table.c[f].type) for f in where]
        statement = sa.select(table).where(*conditions)
        if lock:
            # Locked in id order, as every worker does: two batches wanting the same
            # rows queue up instead of deadlocking.
            statement = statement.order_by(table.c.id).with_for_update()
        return statement

    # -- writes ----------------------------------------------------------------------

    def writes(self, change: TableChanges) -> list[Step]:
        ops = self.ops
        steps: list[Step] = []
        if change.inserts:
            compiled = ops.insert.compiled(self.dialect)
            rows = self._rows if self._rows is not None else self._multi_row(compiled)
            for start in range(0, len(change.inserts), MAX_ROWS):
                chunk = [compiled.params(ops.dump(r)) for r in change.inserts[start : start + MAX_ROWS]]
                steps.append(
                    Step(
                        rows.sql(len(chunk)),
                        rows.params(chunk),
                        ops=ops,
                        expected=len(chunk),
                        native=rows.native,
                    )
                )
        if change.updates:
            compiled = ops.update.compiled(self.dialect)
            updates = []
            for record in change.updates:
                values = ops.dump(record)
                values["_id"] = values.pop("id")
                updates.append(compiled.params(values))
            steps.append(Step(compiled.sql, updates, ops=ops, many=True, expected=len(updates)))
        if change.deletes:
            compiled = ops.delete.compiled(self.dialect)
            deletes = [compiled.params({"_id": record_id}) for record_id in change.deletes]
            steps.append(Step(compiled.sql, deletes, ops=ops, many=True))
        return steps

    def _multi_row(self, compiled: Compiled) -> MultiRow:
        self._rows = MultiRow(compiled, native=self.dialect.driver == "psycopg")
        return self._rows


class MultiRow:
    """A one-row ``INSERT ... VALUES (...) ON CONFLICT DO NOTHING`` made into an n-row one.

    ``native``: write it with PostgreSQL's ``$n`` placeholders, its parameters
    a tuple in their order (for a psycopg ``RawCursor``).
    """

    def __init__(self, compiled: Compiled, *, native: bool = False) -> None:
        head, values, rest = compiled.sql.partition(" VALUES ")
        end = rest.rindex(") ON CONFLICT") + 1
        self._head = head + values
        self._group = rest[:end]
        self._tail = rest[end:]
        self._positional = compiled.positional
        # Only the VALUES group may hold parameters, and only psycopg's named ones.
        self.native = native and not self._positional and not _PLACEHOLDER.search(self._head + self._tail)
        if self.native:
            self._head, self._tail = self._head.replace("%%", "%"), self._tail.replace("%%", "%")
            self._pieces = _PLACEHOLDER.split(self._group.replace("%%", "%"))
            self._names = self._pieces[1::2]
        self._texts: dict[int, str] = {}

    def sql(self, rows: int) -> str:
        text = self._texts.get(rows)
        if text is None:
            if self._positional:
                groups = ", ".join([self._group] * rows)
            elif self.native:
                groups = ", ".join(self._numbered(i * len(self._names)) for i in range(rows))
            else:
                # Named parameters (psycopg's %(name)s): each row's get a suffix of their own.
                groups = ", ".join(_PLACEHOLDER.sub(rf"%(\1_{i})s", self._group) for i in range(rows))
            text = f"{self._head}{groups}{self._tail}"
            if rows <= _CACHED_ROWS or rows == MAX_ROWS:
                # SQS batches are small; kept for every size, large texts would add up
                # to megabytes a table over a long run of varied Lambda or replay batches.
                self._texts[rows] = text
        return text

    def _numbered(self, before: int) -> str:
        pieces = list(self._pieces)
        for n in range(len(self._names)):
            pieces[2 * n + 1] = f"${before + n + 1}"
        return "".join(pieces)

    def params(self, rows: list[Any]) -> Any:
        """The rows' parameters (each as the one-row statement takes them) for the n-row statement."""
        if self._positional:
            return tuple(value for row in rows for value in row)
        if self.native:
            names = self._names
            return tuple(row[name] for row in rows for name in names)
        return {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()}


def conflict_detail(step: Step, changed: int) -> str:
    """Why a write changed fewer rows than it should have, without any row's values."""
    return (
        f"{step.ops.name}: {step.expected - changed if step.expected else 0} of {step.expected} rows "
        "were written by another transaction first"
    )
