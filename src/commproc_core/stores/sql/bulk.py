"""Set-based statements: a batch's loads and writes, a statement per table and kind.

* A load is one ``SELECT`` for every value at once: ``field = ANY(:values)``
  on PostgreSQL (one array parameter, so the SQL text never changes and the
  server prepares it once), ``field IN (SELECT value FROM json_each(:values))``
  on SQLite. Rows of tables the batch updates are read ``FOR UPDATE`` on
  PostgreSQL.
* Inserts are multi-row ``INSERT ... ON CONFLICT DO NOTHING``: the row count
  tells whether another transaction took a key first.
* Updates and deletes run one statement over many rows (``executemany``).

On PostgreSQL the statements of one step (a stage of loads, or all the
writes) go out in psycopg's pipeline mode: one round trip each.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from commproc_core.ports import Load, TableChanges
from commproc_core.stores.sql.ops import TableOps
from commproc_core.stores.sql.statements import Prepared

__all__ = ["MAX_ROWS", "BulkOps", "Step", "conflict_detail"]

#: Rows per multi-row INSERT; larger batches take several statements.
MAX_ROWS = 200

_LoadSignature = tuple[str, tuple[str, ...], bool]


class Step:
    """One statement of a pipelined step: the SQL, its parameters, and how to read its result."""

    __slots__ = ("expected", "many", "ops", "params", "sql")

    def __init__(
        self, sql: str, params: Any, *, ops: TableOps, many: bool = False, expected: int | None = None
    ) -> None:
        self.sql = sql
        self.params = params
        self.ops = ops
        self.many = many
        #: For writes: the rows the statement must change; fewer means a conflict.
        self.expected = expected


class BulkOps:
    """The set-based statements of one table, compiled once per shape for one dialect."""

    def __init__(self, ops: TableOps, dialect: Any) -> None:
        self.ops = ops
        self.dialect = dialect
        self.postgres = dialect.name == "postgresql"
        self._loads: dict[_LoadSignature, Prepared] = {}
        self._inserts: dict[int, Prepared] = {}

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
        for start in range(0, len(change.inserts), MAX_ROWS):
            chunk = change.inserts[start : start + MAX_ROWS]
            compiled = self._insert(len(chunk)).compiled(self.dialect)
            params: dict[str, Any] = {}
            for position, record in enumerate(chunk):
                for name, value in ops.dump(record).items():
                    params[f"{name}_{position}"] = value
            steps.append(Step(compiled.sql, compiled.params(params), ops=ops, expected=len(chunk)))
        if change.updates:
            compiled = ops.update.compiled(self.dialect)
            rows = []
            for record in change.updates:
                values = ops.dump(record)
                values["_id"] = values.pop("id")
                rows.append(compiled.params(values))
            steps.append(Step(compiled.sql, rows, ops=ops, many=True, expected=len(rows)))
        if change.deletes:
            compiled = ops.delete.compiled(self.dialect)
            rows = [compiled.params({"_id": record_id}) for record_id in change.deletes]
            steps.append(Step(compiled.sql, rows, ops=ops, many=True))
        return steps

    def _insert(self, rows: int) -> Prepared:
        prepared = self._inserts.get(rows)
        if prepared is None:
            table = self.ops.td.table
            insert = postgresql.insert(table) if self.postgres else sqlite.insert(table)
            values = [
                {name: sa.bindparam(f"{name}_{i}", type_=table.c[name].type) for name in self.ops.names}
                for i in range(rows)
            ]
            prepared = self._inserts[rows] = Prepared(insert.values(values).on_conflict_do_nothing())
        return prepared


def conflict_detail(step: Step, changed: int) -> str:
    """Why a write changed fewer rows than it should have, without any row's values."""
    return (
        f"{step.ops.name}: {step.expected - changed if step.expected else 0} of {step.expected} rows "
        "were written by another transaction first"
    )
