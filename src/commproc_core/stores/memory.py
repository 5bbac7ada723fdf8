"""An in-memory store with real transaction semantics.

Units of work run one at a time (a store-wide re-entrant lock is held from
``__enter__`` to ``__exit__``), writes apply at once and are recorded in an
undo log, and rollback (of the whole unit or of a savepoint) replays that log
backwards. Unique keys from :mod:`commproc_core.stores.spec` are enforced on
every write, exactly as the SQL store's constraints are. It is meant for
tests, demos and benchmarks; data lives as long as the object.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from commproc_core.errors import RecordNotFound, StoreUnavailable, UniqueViolation, WriteConflict
from commproc_core.ports import Load, TableChanges
from commproc_core.stores.direct import DirectSession
from commproc_core.stores.indexed import IndexedTable, ordered
from commproc_core.stores.spec import TABLES, Repositories

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["MemoryRepository", "MemoryStore", "MemoryUnitOfWork"]

R = TypeVar("R")
_Undo = Callable[[], None]


class MemoryRepository(Generic[R]):
    """One table seen through a :class:`MemoryUnitOfWork`."""

    def __init__(self, uow: MemoryUnitOfWork, table: IndexedTable[R]) -> None:
        self._uow = uow
        self._table = table

    def _check_fields(self, names: Any) -> None:
        known = attrs.fields_dict(self._table.spec.record)  # type: ignore[arg-type]
        for name in names:
            if name not in known:
                raise ValueError(f"{self._table.spec.name} has no field {name!r}")

    def get(self, record_id: str) -> R | None:
        self._uow._active()
        return self._table.rows.get(record_id)

    def add(self, record: R) -> R:
        self._uow._active()
        table = self._table
        rid = getattr(record, "id")  # noqa: B009
        if rid in table.rows:
            raise UniqueViolation(table.spec.name, "id", ("id",))
        table.check_unique(record)
        self._uow._put(table, record)
        return record

    def update(self, record: R) -> R:
        self._uow._active()
        table = self._table
        rid = getattr(record, "id")  # noqa: B009
        old = table.rows.get(rid)
        if old is None:
            raise RecordNotFound(table.spec.name, rid)
        table.check_unique(record, ignore_id=rid)
        self._uow._replace(table, old, record)
        return record

    def get_or_create(self, record: R, *, key: str) -> tuple[R, bool]:
        self._uow._active()
        unique = self._table.spec.key(key)
        if not unique.applies_to(record):
            raise ValueError(f"{self._table.spec.name}: record has no value for unique key {key!r}")
        rid = self._table.unique[key].get(unique.value(record))
        if rid is not None:
            return self._table.rows[rid], False
        return self.add(record), True

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
        self._uow._active()
        self._check_fields(where)
        if order_by is not None:
            self._check_fields([order_by])
        return ordered(self._table.select(where), order_by, descending, limit)

    def count(self, **where: Any) -> int:
        return len(self.find(**where))

    def delete(self, record_id: str) -> bool:
        self._uow._active()
        table = self._table
        old = table.rows.get(record_id)
        if old is None:
            return False
        self._uow._remove(table, old)
        return True


class MemoryUnitOfWork(Repositories):
    """A transaction over a :class:`MemoryStore`; use it in a ``with`` block."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._log: list[_Undo] = []
        self._entered = False
        for name, table in store._tables.items():
            setattr(self, name, MemoryRepository(self, table))

    def _active(self) -> None:
        if not self._entered:
            raise RuntimeError("use the unit of work inside a `with` block")
        if not self._store._available:
            raise StoreUnavailable("in-memory store is marked unavailable")

    def __enter__(self) -> MemoryUnitOfWork:
        self._store._lock.acquire()
        self._entered = True
        self._log = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._undo_to(0)
        finally:
            self._entered = False
            self._store._lock.release()

    def _undo_to(self, mark: int) -> None:
        while len(self._log) > mark:
            self._log.pop()()

    def commit(self) -> None:
        self._active()
        self._log = []

    def batch_session(self) -> DirectSession:
        """The pipeline's view of this unit of work: it is in memory already, so nothing to batch."""
        return DirectSession(self)

    def load_many(self, loads: Sequence[Load]) -> list[list[Any]]:
        self._active()
        out: list[list[Any]] = []
        for load in loads:
            table = self._store._tables[load.table]
            where = dict(load.where)
            found: dict[str, Any] = {}
            for value in load.values:
                where[load.field] = value
                for row in table.select(where):
                    found[row.id] = row
            out.append(list(found.values()))
        return out

    def apply(self, changes: Sequence[TableChanges]) -> None:
        self._active()
        for change in changes:
            table = self._store._tables[change.table]
            for record in change.inserts:
                name = "id" if record.id in table.rows else table.clash(record)
                if name is not None:
                    raise WriteConflict(
                        f"{change.table}: unique key {name!r} is taken", table=change.table, key=name
                    )
                self._put(table, record)
            for record in change.updates:
                old = table.rows.get(record.id)
                name = "id" if old is None else table.clash(record, ignore_id=record.id)
                if name is not None:
                    raise WriteConflict(
                        f"{change.table}: cannot update ({name})", table=change.table, key=name
                    )
                self._replace(table, old, record)
            for record_id in change.deletes:
                old = table.rows.get(record_id)
                if old is not None:
                    self._remove(table, old)

    def _put(self, table: IndexedTable[Any], record: Any) -> None:
        table.put(record)
        self._log.append(lambda: table.drop(record))

    def _replace(self, table: IndexedTable[Any], old: Any, record: Any) -> None:
        table.drop(old)
        table.put(record)

        def undo() -> None:
            table.drop(record)
            table.put(old)

        self._log.append(undo)

    def _remove(self, table: IndexedTable[Any], old: Any) -> None:
        table.drop(old)
        self._log.append(lambda: table.put(old))

    def rollback(self) -> None:
        if not self._entered:
            raise RuntimeError("use the unit of work inside a `with` block")
        self._undo_to(0)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self._active()
        mark = len(self._log)
        try:
            yield
        except BaseException:
            self._undo_to(mark)
            raise


class MemoryStore:
    """A complete store in process memory; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tables: dict[str, IndexedTable[Any]] = {
            name: IndexedTable(spec) for name, spec in TABLES.items()
        }
        self._available = True

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    def ping(self) -> None:
        if not self._available:
            raise StoreUnavailable("in-memory store is marked unavailable")

    def close(self) -> None:
        """Nothing to release; present for the Store protocol."""

    def set_available(self, available: bool) -> None:
        """Simulate an outage: while unavailable every operation raises StoreUnavailable."""
        self._available = available
