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

from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from commproc_core.errors import RecordNotFound, StoreUnavailable, UniqueViolation
from commproc_core.stores.indexed import matches
from commproc_core.stores.spec import UniqueKey
from commproc_core.stores.sql.ops import TableOps
from commproc_core.stores.sql.statements import Prepared

__all__ = ["SQLRepository", "StatementRunner"]

R = TypeVar("R")

# A conflicting row can vanish (deleted by another transaction) between our
# failed write and the lookup that names it; then the write is simply retried.
_ATTEMPTS = 3


class StatementRunner(Protocol):
    """What a repository needs of its unit of work: run prepared statements in its transaction."""

    @property
    def dialect(self) -> Dialect: ...

    def query(self, statement: Prepared, values: Mapping[str, Any]) -> tuple[list[Any], Any]: ...

    def write(self, statement: Prepared, values: Mapping[str, Any]) -> int: ...

    def lost(self, error: BaseException, why: str | None = None) -> StoreUnavailable: ...


class SQLRepository(Generic[R]):
    """Records of one table through a :class:`~commproc_core.stores.sql.store.SQLUnitOfWork`."""

    def __init__(self, uow: StatementRunner, ops: TableOps) -> None:
        self._uow = uow
        self._ops = ops

    def _violation(self, key: str) -> UniqueViolation:
        spec = self._ops.td.spec
        fields = ("id",) if key == "id" else next((k.fields for k in spec.unique if k.name == key), ())
        return UniqueViolation(self._ops.name, key, fields)

    def _select(self, statement: Prepared, params: Mapping[str, Any]) -> list[R]:
        rows, cursor = self._uow.query(statement, params)
        return self._ops.load_all(rows, self._uow.dialect, cursor)

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
        rows, cursor = self._uow.query(ops.lookup_or_insert[key.name], params)
        if not rows:
            return False, None
        if rows[0][0]:
            return True, None
        found: list[R] = ops.load_all(rows, self._uow.dialect, cursor, skip=1)
        return False, found[0]

    def _exists(self, record_id: str) -> bool:
        rows, _ = self._uow.query(self._ops.exists, {"_id": record_id})
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
        return self._uow.write(self._ops.insert, self._ops.dump(record)) == 1

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
                changed = self._uow.write(ops.update, params)
            except sa_exc.IntegrityError as error:
                raise self._violation(ops.violated_key(error)) from None
            if changed == 0:
                raise RecordNotFound(ops.name, record_id)
            return record
        params.update({f"_u_{f}": params[f] for f in ops.key_params})
        for _ in range(_ATTEMPTS):
            try:
                changed = self._uow.write(ops.checked_update, params)
            except sa_exc.IntegrityError as error:
                # A concurrent transaction took the key after our check and committed;
                # this transaction is aborted now, and a retry will see the clash.
                why = f"{ops.name}: lost a race for unique key {ops.violated_key(error)!r}; retry"
                raise self._uow.lost(error, why) from error
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
            records = [r for r in records if matches(r, in_python)]
            if limit is not None:
                records = records[:limit]
        return records

    def count(self, **where: Any) -> int:
        conditions, params, in_python = self._ops.split_where(where)
        if in_python:
            return len(self.find(**where))
        statement = self._ops.count_statement((conditions, None, False, False))
        rows, _ = self._uow.query(statement, params)
        return int(rows[0][0])

    def delete(self, record_id: str) -> bool:
        return self._uow.write(self._ops.delete, {"_id": record_id}) > 0
