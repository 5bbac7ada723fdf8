"""An in-memory store with real transaction semantics.

Units of work run one at a time (a store-wide re-entrant lock is held from
``__enter__`` to ``__exit__``), writes apply at once and are recorded in an
undo log, and rollback (of the whole unit or of a savepoint) replays that log
backwards. Unique keys from :mod:`commproc_core.stores.spec` are enforced on
every write, exactly as the SQL store's constraints are. It is meant for
tests, demos and benchmarks; data lives as long as the object.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from commproc_core.errors import RecordNotFound, StoreUnavailable, UniqueViolation
from commproc_core.stores.spec import TABLES, Range, TableSpec

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["MemoryRepository", "MemoryStore", "MemoryUnitOfWork"]

R = TypeVar("R")
_Undo = Callable[[], None]


def _getter(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(fields) == 1:
        single = operator.attrgetter(fields[0])
        return lambda record: (single(record),)
    return operator.attrgetter(*fields)


class _Table(Generic[R]):
    """Rows of one table with their unique and secondary indexes."""

    def __init__(self, spec: TableSpec[R]) -> None:
        self.spec = spec
        self.rows: dict[str, R] = {}
        self.unique: dict[str, dict[tuple[Any, ...], str]] = {k.name: {} for k in spec.unique}
        self.indexes: dict[tuple[str, ...], dict[tuple[Any, ...], set[str]]] = {f: {} for f in spec.indexes}
        self._index_getters = [(self.indexes[f], _getter(f)) for f in spec.indexes]

    def check_unique(self, record: R, ignore_id: str | None = None) -> None:
        for key in self.spec.unique:
            if not key.applies_to(record):
                continue
            holder = self.unique[key.name].get(key.value(record))
            if holder is not None and holder != ignore_id:
                raise UniqueViolation(self.spec.name, key.name, key.fields)

    def put(self, record: R) -> None:
        rid: str = getattr(record, "id")  # noqa: B009
        self.rows[rid] = record
        for key in self.spec.unique:
            if key.applies_to(record):
                self.unique[key.name][key.value(record)] = rid
        for index, get in self._index_getters:
            index.setdefault(get(record), set()).add(rid)

    def drop(self, record: R) -> None:
        rid: str = getattr(record, "id")  # noqa: B009
        del self.rows[rid]
        for key in self.spec.unique:
            if key.applies_to(record):
                values = self.unique[key.name]
                if values.get(key.value(record)) == rid:
                    del values[key.value(record)]
        for index, get in self._index_getters:
            value = get(record)
            ids = index.get(value)
            if ids is not None:
                ids.discard(rid)
                if not ids:
                    del index[value]

    def candidates(self, where: dict[str, Any]) -> Iterator[R]:
        plain = {f: v for f, v in where.items() if not isinstance(v, Range)}
        for key in self.spec.unique:
            if (
                not key.where
                and set(key.fields) <= plain.keys()
                and all(plain[f] is not None for f in key.fields)
            ):
                value = tuple(plain[f] for f in key.fields)
                rid = self.unique[key.name].get(value)
                if rid is not None:
                    yield self.rows[rid]
                return
        best: tuple[str, ...] | None = None
        for fields in self.indexes:
            if set(fields) <= plain.keys() and (best is None or len(fields) > len(best)):
                best = fields
        if best is not None:
            ids = self.indexes[best].get(tuple(plain[f] for f in best), set())
            yield from (self.rows[i] for i in list(ids))
            return
        yield from list(self.rows.values())


def _matches(record: object, where: dict[str, Any]) -> bool:
    for field, wanted in where.items():
        value = getattr(record, field)
        if isinstance(wanted, Range):
            if not wanted.matches(value):
                return False
        elif value != wanted:
            return False
    return True


class MemoryRepository(Generic[R]):
    """One table seen through a :class:`MemoryUnitOfWork`."""

    def __init__(self, uow: MemoryUnitOfWork, table: _Table[R]) -> None:
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
        table.put(record)
        self._uow._log.append(lambda: table.drop(record))
        return record

    def update(self, record: R) -> R:
        self._uow._active()
        table = self._table
        rid = getattr(record, "id")  # noqa: B009
        old = table.rows.get(rid)
        if old is None:
            raise RecordNotFound(table.spec.name, rid)
        table.check_unique(record, ignore_id=rid)
        table.drop(old)
        table.put(record)

        def undo() -> None:
            table.drop(record)
            table.put(old)

        self._uow._log.append(undo)
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
        rows = [r for r in self._table.candidates(where) if _matches(r, where)]
        if order_by is not None:
            self._check_fields([order_by])
            present = [r for r in rows if getattr(r, order_by) is not None]
            absent = [r for r in rows if getattr(r, order_by) is None]
            present.sort(key=lambda r: getattr(r, order_by), reverse=descending)
            rows = present + absent
        return rows if limit is None else rows[:limit]

    def count(self, **where: Any) -> int:
        return len(self.find(**where))

    def delete(self, record_id: str) -> bool:
        self._uow._active()
        table = self._table
        old = table.rows.get(record_id)
        if old is None:
            return False
        table.drop(old)
        self._uow._log.append(lambda: table.put(old))
        return True


class MemoryUnitOfWork:
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
        self._tables: dict[str, _Table[Any]] = {name: _Table(spec) for name, spec in TABLES.items()}
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
