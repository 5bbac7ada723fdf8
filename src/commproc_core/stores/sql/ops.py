"""Each table's prebuilt statements and value codecs for one dialect (:class:`TableOps`)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from commproc_core.stores.spec import Range, UniqueKey
from commproc_core.stores.sql.schema import SQLSchema, TableDef
from commproc_core.stores.sql.statements import Prepared, RowCodec

__all__ = ["Conditions", "TableOps"]

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")
_FIND_CACHE_SIZE = 256

# (field, kind) pairs, kind one of "eq", "null", "range:<has low><has high>".
Conditions = tuple[tuple[str, str], ...]
# conditions, order_by, descending, limited: what shapes a find statement.
_Signature = tuple[Conditions, str | None, bool, bool]


class TableOps:
    """Prebuilt statements and value codecs of one table for one dialect."""

    def __init__(self, td: TableDef, schema: SQLSchema, dialect: str) -> None:
        table = td.table
        self.td = td
        self.schema = schema
        self.name: str = td.spec.name
        self.record: type[Any] = td.spec.record
        self.postgres = dialect == "postgresql"
        self.columns = {c.name: c for c in td.columns}
        self.names = tuple(self.columns)
        self.dumps = tuple((c.name, c.dump) for c in td.columns if c.dump is not None)
        self.loads = tuple((c.name, c.load) for c in td.columns if c.load is not None)
        self.json_fields = frozenset(c.name for c in td.columns if c.is_json)
        self.loads_by_name = dict(self.loads)
        insert = postgresql.insert(table) if self.postgres else sqlite.insert(table)
        # The row count tells inserted from conflicting.
        self.insert = Prepared(insert.on_conflict_do_nothing(), column_keys=self.names)
        by_id = table.c.id == sa.bindparam("_id", type_=table.c.id.type)
        self.get = Prepared(sa.select(table).where(by_id))
        self.exists = Prepared(sa.select(sa.literal(1)).select_from(table).where(by_id))
        update = table.update().where(by_id)
        # Every column but the id is SET, as SQLAlchemy did from the parameters given.
        changed = tuple(n for n in self.names if n != "id")
        self.update = Prepared(update, column_keys=changed)
        self.delete = Prepared(table.delete().where(by_id))
        # PostgreSQL aborts the whole transaction on a failed statement, so there an
        # update checks its unique keys itself (NOT EXISTS) instead of failing.
        self.checked_update = (
            Prepared(self._checked_update(update), column_keys=changed)
            if self.postgres and td.spec.unique
            else None
        )
        self.key_params = tuple(
            sorted({f for k in td.spec.unique for f in (*k.fields, *(w for w, _ in k.where))})
        )
        self.by_key = {key.name: Prepared(self._key_lookup(key)) for key in td.spec.unique}
        # On PostgreSQL every statement is a round trip to the server, so get_or_create
        # looks up and (when that finds nothing) inserts in one.
        self.lookup_or_insert = (
            {key.name: Prepared(self._lookup_or_insert(key)) for key in td.spec.unique}
            if self.postgres
            else {}
        )
        self._finds: dict[_Signature, Prepared] = {}
        self._counts: dict[_Signature, Prepared] = {}
        self._rows: RowCodec | None = None

    def _checked_update(self, statement: sa.Update) -> sa.Update:
        table = self.td.table
        other = table.alias("other")
        for key in self.td.spec.unique:
            clash = [other.c.id != sa.bindparam("_id", type_=table.c.id.type)]
            clash += [other.c[f] == sa.bindparam(f"_u_{f}", type_=table.c[f].type) for f in key.fields]
            for field, value in key.where:
                # Partial key: only rows inside it clash, and only if the new row is inside it too.
                clash.append(other.c[field] == value)
                clash.append(sa.bindparam(f"_u_{field}", type_=table.c[field].type) == value)
            statement = statement.where(~sa.exists().where(*clash))
        return statement

    def _key_lookup(self, key: UniqueKey) -> sa.Select[Any]:
        table = self.td.table
        conditions = [table.c[f] == sa.bindparam(f"_k_{f}", type_=table.c[f].type) for f in key.fields]
        conditions += [table.c[f] == v for f, v in key.where]
        return sa.select(table).where(*conditions).limit(1)

    def _lookup_or_insert(self, key: UniqueKey) -> sa.CompoundSelect[Any]:
        """Rows ``(False, <the row found>)``, or ``(True, NULL...)`` when it inserted the candidate.

        No row at all means neither: the insert met a conflict (a concurrent commit of
        the key, or a clash on another key). One snapshot serves lookup and insert.
        """
        table = self.td.table
        found = self._key_lookup(key).cte("found")
        # Named as the columns, so the parameters are those of a plain insert.
        candidate = sa.select(*(sa.bindparam(n, type_=table.c[n].type) for n in self.names))
        insert = (
            postgresql.insert(table)
            .from_select(list(self.names), candidate.where(~sa.exists().select_from(found)))
            .on_conflict_do_nothing()
            .returning(table.c.id)
            .cte("inserted")
        )
        return sa.union_all(
            sa.select(sa.false().label("created"), *found.c),
            sa.select(sa.true(), *(sa.null() for _ in self.names)).select_from(insert),
        )

    def dump(self, record: Any) -> dict[str, Any]:
        values = {name: getattr(record, name) for name in self.names}
        for name, dump in self.dumps:
            values[name] = dump(values[name])
        return values

    def load_all(self, rows: Sequence[Any], dialect: Dialect, cursor: Any, skip: int = 0) -> list[Any]:
        """Records from rows just fetched from ``cursor``: the table's columns after ``skip`` others."""
        if not rows:
            return []
        codec = self._rows
        if codec is None:
            # The driver's type codes are known only from a result; they never change.
            description = cursor.description[skip:]
            codec = RowCodec(self.td.table, self.record, self.loads_by_name, dialect, description)
            self._rows = codec
        if skip:
            rows = [row[skip:] for row in rows]
        return [codec.load(row) for row in rows]

    def split_where(self, where: Mapping[str, Any]) -> tuple[Conditions, dict[str, Any], dict[str, Any]]:
        """SQL conditions as a signature with its parameters, and the conditions left for Python."""
        signature: list[tuple[str, str]] = []
        params: dict[str, Any] = {}
        in_python: dict[str, Any] = {}
        for field, wanted in where.items():
            self.check_field(field)
            if field in self.json_fields:
                in_python[field] = wanted
            elif isinstance(wanted, Range):
                signature.append((field, f"range:{wanted.low is not None:d}{wanted.high is not None:d}"))
                if wanted.low is not None:
                    params[f"_lo_{field}"] = wanted.low
                if wanted.high is not None:
                    params[f"_hi_{field}"] = wanted.high
            elif wanted is None:
                signature.append((field, "null"))
            else:
                signature.append((field, "eq"))
                params[f"_eq_{field}"] = wanted
        return tuple(sorted(signature)), params, in_python

    def check_field(self, field: str) -> None:
        if field not in self.columns:
            raise ValueError(f"{self.name} has no field {field!r}")

    def _conditions(self, signature: Conditions) -> list[sa.ColumnElement[bool]]:
        table = self.td.table
        out: list[sa.ColumnElement[bool]] = []
        for field, kind in signature:
            col = table.c[field]
            if kind == "eq":
                out.append(col == sa.bindparam(f"_eq_{field}", type_=col.type))
            elif kind == "null":
                out.append(col.is_(None))
            else:
                low, high = kind[-2] == "1", kind[-1] == "1"
                if low:
                    out.append(col >= sa.bindparam(f"_lo_{field}", type_=col.type))
                if high:
                    out.append(col < sa.bindparam(f"_hi_{field}", type_=col.type))
                if not (low or high):
                    out.append(col.is_not(None))
        return out

    def find_statement(self, signature: _Signature) -> Prepared:
        prepared = self._finds.get(signature)
        if prepared is None:
            conditions, order_by, descending, limited = signature
            table = self.td.table
            statement = sa.select(table).where(*self._conditions(conditions))
            if order_by is not None:
                col = table.c[order_by]
                # Rows without a value come last either way, as in the memory store.
                if not self.columns[order_by].nullable:
                    statement = statement.order_by(col.desc() if descending else col)
                elif self.postgres:
                    statement = statement.order_by((col.desc() if descending else col.asc()).nulls_last())
                else:
                    statement = statement.order_by(col.is_(None), col.desc() if descending else col)
            if limited:
                statement = statement.limit(sa.bindparam("_limit", type_=sa.Integer()))
            if len(self._finds) >= _FIND_CACHE_SIZE:
                self._finds.clear()
            prepared = self._finds[signature] = Prepared(statement)
        return prepared

    def count_statement(self, signature: _Signature) -> Prepared:
        prepared = self._counts.get(signature)
        if prepared is None:
            conditions = self._conditions(signature[0])
            statement = sa.select(sa.func.count()).select_from(self.td.table).where(*conditions)
            if len(self._counts) >= _FIND_CACHE_SIZE:
                self._counts.clear()
            prepared = self._counts[signature] = Prepared(statement)
        return prepared

    def violated_key(self, error: sa_exc.IntegrityError) -> str:
        """The unique key a database error names (PostgreSQL: constraint; SQLite: columns)."""
        diag = getattr(error.orig, "diag", None)
        constraint = getattr(diag, "constraint_name", None)
        columns: tuple[str, ...] = ()
        match = _SQLITE_UNIQUE.search(str(error.orig))
        if match:
            columns = tuple(part.strip().rsplit(".", 1)[-1] for part in match.group(1).split(","))
        return self.schema.key_for_constraint(self.name, constraint, columns)
