"""One table seen through a SQL unit of work.

Statements are built once per store (:class:`TableOps`), compiled once per
dialect and run on the unit of work's DBAPI cursor (see :mod:`.statements`).

A unique violation never aborts the transaction (PostgreSQL aborts the
whole transaction on any failed statement), and costs no savepoint:

* inserts are ``INSERT ... ON CONFLICT DO NOTHING`` with no conflict target,
  so every unique index counts, the partial one included; a row count of 0
  is followed by lookups that name the key, raised as UniqueViolation;
* on PostgreSQL an update carries ``NOT EXISTS`` conditions for the keys it
  could break; on SQLite, where a failed statement undoes only itself, it
  runs as is and the database's error names the key.

The one case left is an update racing a concurrent, not yet committed
write of the same key: PostgreSQL then fails the statement, and the unit of
work reports StoreUnavailable (retry) instead of a half-usable transaction.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite

from commproc_core.errors import RecordNotFound, UniqueViolation
from commproc_core.stores.spec import Range, UniqueKey
from commproc_core.stores.sql.schema import SQLSchema, TableDef
from commproc_core.stores.sql.statements import Prepared, RowCodec

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Dialect

    from commproc_core.stores.sql.store import SQLUnitOfWork

__all__ = ["SQLRepository", "TableOps"]

R = TypeVar("R")

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")
_FIND_CACHE_SIZE = 256
# A conflicting row can vanish (deleted by another transaction) between our
# failed write and the lookup that names it; then the write is simply retried.
_ATTEMPTS = 3

# (field, kind) pairs, kind one of "eq", "null", "range:<has low><has high>".
_Conditions = tuple[tuple[str, str], ...]
# conditions, order_by, descending, limited: what shapes a find statement.
_Signature = tuple[_Conditions, str | None, bool, bool]


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

    def split_where(self, where: Mapping[str, Any]) -> tuple[_Conditions, dict[str, Any], dict[str, Any]]:
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

    def _conditions(self, signature: _Conditions) -> list[sa.ColumnElement[bool]]:
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


def _matches(record: object, where: Mapping[str, Any]) -> bool:
    for field, wanted in where.items():
        value = getattr(record, field)
        if not (wanted.matches(value) if isinstance(wanted, Range) else value == wanted):
            return False
    return True


class SQLRepository(Generic[R]):
    """Records of one table through a :class:`~commproc_core.stores.sql.store.SQLUnitOfWork`."""

    def __init__(self, uow: SQLUnitOfWork, ops: TableOps) -> None:
        self._uow = uow
        self._ops = ops

    def _violation(self, key: str) -> UniqueViolation:
        spec = self._ops.td.spec
        fields = ("id",) if key == "id" else next((k.fields for k in spec.unique if k.name == key), ())
        return UniqueViolation(self._ops.name, key, fields)

    def _select(self, statement: Prepared, params: Mapping[str, Any]) -> list[R]:
        rows, cursor = self._uow._query(statement, params)
        return self._ops.load_all(rows, self._uow._dialect, cursor)

    def get(self, record_id: str) -> R | None:
        found = self._select(self._ops.get, {"_id": record_id})
        return found[0] if found else None

    def _lookup(self, key: UniqueKey, record: Any) -> R | None:
        params = {f"_k_{f}": getattr(record, f) for f in key.fields}
        found = self._select(self._ops.by_key[key.name], params)
        return found[0] if found else None

    def _lookup_or_insert(self, key: UniqueKey, record: Any) -> tuple[bool, R | None]:
        ops = self._ops
        params = ops.dump(record)
        for f in key.fields:
            params[f"_k_{f}"] = getattr(record, f)
        rows, cursor = self._uow._query(ops.lookup_or_insert[key.name], params)
        if not rows:
            return False, None
        if rows[0][0]:
            return True, None
        found: list[R] = ops.load_all(rows, self._uow._dialect, cursor, skip=1)
        return False, found[0]

    def _exists(self, record_id: str) -> bool:
        rows, _ = self._uow._query(self._ops.exists, {"_id": record_id})
        return bool(rows)

    def _conflict(self, record: Any, *, updating: bool = False) -> str | None:
        """The unique key (or "id") another stored row holds ``record``'s value of."""
        if not updating and self._exists(record.id):
            return "id"
        for key in self._ops.td.spec.unique:
            if key.applies_to(record):
                found: Any = self._lookup(key, record)
                if found is not None and found.id != record.id:
                    return str(key.name)
        return None

    def _insert(self, record: R) -> bool:
        return self._uow._write(self._ops.insert, self._ops.dump(record)) == 1

    def add(self, record: R) -> R:
        for _ in range(_ATTEMPTS):
            if self._insert(record):
                return record
            key = self._conflict(record)
            if key is not None:
                raise self._violation(key)
        raise self._violation("unknown")

    def update(self, record: R) -> R:
        ops = self._ops
        params = ops.dump(record)
        record_id = params["_id"] = params.pop("id")
        if ops.checked_update is None:
            try:
                changed = self._uow._write(ops.update, params)
            except sa_exc.IntegrityError as error:
                raise self._violation(ops.violated_key(error)) from None
            if changed == 0:
                raise RecordNotFound(ops.name, record_id)
            return record
        params.update({f"_u_{f}": params[f] for f in ops.key_params})
        for _ in range(_ATTEMPTS):
            try:
                changed = self._uow._write(ops.checked_update, params)
            except sa_exc.IntegrityError as error:
                # A concurrent transaction took the key after our check and committed;
                # this transaction is aborted now, and a retry will see the clash.
                why = f"{ops.name}: lost a race for unique key {ops.violated_key(error)!r}; retry"
                raise self._uow._lost(error, why) from error
            if changed:
                return record
            if not self._exists(record_id):
                raise RecordNotFound(ops.name, record_id)
            key = self._conflict(record, updating=True)
            if key is not None:
                raise self._violation(key)
        raise self._violation("unknown")

    def get_or_create(self, record: R, *, key: str) -> tuple[R, bool]:
        unique = self._ops.td.spec.key(key)
        if not unique.applies_to(record):
            raise ValueError(f"{self._ops.name}: record has no value for unique key {key!r}")
        # Look first: most calls find the row, and a lookup is one round trip (on
        # PostgreSQL, insert in the same one when it finds nothing).
        for _ in range(_ATTEMPTS):
            if self._ops.postgres:
                created, found = self._lookup_or_insert(unique, record)
                if created:
                    return record, True
                if found is not None:
                    return found, False
            else:
                found = self._lookup(unique, record)
                if found is not None:
                    return found, False
                if self._insert(record):
                    # The row is the candidate itself: no read back.
                    return record, True
            # Another transaction inserted the key first (its commit made our insert
            # do nothing), or the record clashes on another key.
            found = self._lookup(unique, record)
            if found is not None:
                return found, False
            other = self._conflict(record)
            if other is not None:
                raise self._violation(other)
        raise self._violation("unknown")

    def find_one(self, **where: Any) -> R | None:
        found = self.find(limit=1, **where)
        return found[0] if found else None

    def find(
        self,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        **where: Any,
    ) -> list[R]:
        ops = self._ops
        conditions, params, in_python = ops.split_where(where)
        if order_by is not None:
            ops.check_field(order_by)
        # JSON values are compared in Python, so the limit must wait until then.
        limited = limit is not None and not in_python
        statement = ops.find_statement((conditions, order_by, descending, limited))
        if limited:
            params["_limit"] = limit
        records: list[R] = self._select(statement, params)
        if in_python:
            records = [r for r in records if _matches(r, in_python)]
            if limit is not None:
                records = records[:limit]
        return records

    def count(self, **where: Any) -> int:
        conditions, params, in_python = self._ops.split_where(where)
        if in_python:
            return len(self.find(**where))
        statement = self._ops.count_statement((conditions, None, False, False))
        rows, _ = self._uow._query(statement, params)
        return int(rows[0][0])

    def delete(self, record_id: str) -> bool:
        return self._uow._write(self._ops.delete, {"_id": record_id}) > 0
