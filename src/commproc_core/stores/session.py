"""The batch session: a batch's view of the store, read in sets and written once.

A :class:`BatchSession` wraps a store's unit of work and is itself a
:class:`~commproc_core.ports.UnitOfWork`, so channel code and the shared
services use it exactly as they would the store's. The difference is where
the work happens:

* **Reads in sets.** The pipeline and the channel declare what a batch needs
  (:meth:`BatchSession.want`: leads by phone, conversations by external id,
  events by dedupe key...) and :meth:`BatchSession.fetch` loads each kind in
  one statement, all of them in one round trip where the driver can. A load
  *covers* its values: the session then knows every row with that value, so
  a later lookup (found or not) is answered from memory. A lookup nothing
  covers still works; it costs a statement of its own.
* **Decisions in memory.** Rows read are kept by id (an identity map) with
  their unique keys, so two messages from one new sender in one batch see one
  lead, and a STOP earlier in the batch is seen by the messages after it.
  Writes are recorded, not sent: ``add``, ``update`` and ``delete`` change the
  rows in memory and remember what changed. :meth:`BatchSession.savepoint`
  undoes one message's changes in memory when it fails, without a database
  savepoint.
* **Writes once.** :meth:`BatchSession.flush` hands every change to the
  store per table, in one fixed table order and sorted key order (which is
  what keeps concurrent workers from deadlocking), a statement per kind of
  write. A unique key another transaction took first raises
  :class:`~commproc_core.errors.WriteConflict`; the caller rolls back and
  runs the batch again.

On PostgreSQL, rows of the tables a batch updates are read ``FOR UPDATE``, so
a decision made on a row (a status moved forward, a consent's order) holds
until the commit; other workers touching the same rows wait their turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from commproc_core.errors import RecordNotFound, UniqueViolation, WriteConflict
from commproc_core.ports import BulkUnitOfWork, Load, TableChanges, UnitOfWork
from commproc_core.stores.indexed import IndexedTable, ordered
from commproc_core.stores.spec import TABLES, Range, Repositories, UniqueKey

if TYPE_CHECKING:
    from types import TracebackType


__all__ = [
    "LOCKED_TABLES",
    "WRITE_ORDER",
    "BatchSession",
    "SessionRepository",
]

R = TypeVar("R")

#: The order tables are written in, by every worker: a fixed order is half of
#: what keeps two workers' transactions from waiting on each other in a circle.
WRITE_ORDER: tuple[str, ...] = tuple(TABLES)

#: Tables whose rows the pipeline reads to change them; read FOR UPDATE.
LOCKED_TABLES = frozenset(
    {
        "agent_events",
        "campaign_participants",
        "conversations",
        "threads",
        "messages",
        "processing_records",
        "consents",
        "outbox",
    }
)

# (field, where) a load covered values of: every row with field == value (and
# the where conditions) is in memory.
_Template = tuple[str, tuple[tuple[str, Any], ...]]


_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(attrs.fields_dict(spec.record)) for name, spec in TABLES.items()
}


def _sort_key(key: UniqueKey | None) -> Any:
    def sort_key(record: Any) -> tuple[Any, ...]:
        if key is None:
            return (record.id,)
        values = key.value(record)
        return (*((v is None, "" if v is None else str(v)) for v in values), record.id)

    return sort_key


class _Held(Generic[R]):
    """One table's rows in a session: what is in memory, what changed, what is known to be complete."""

    def __init__(self, name: str, new_ids: set[str]) -> None:
        spec = TABLES[name]
        self.name = name
        self.new_ids = new_ids
        self.rows: IndexedTable[R] = IndexedTable(spec)
        self.inserted: dict[str, None] = {}
        self.updated: dict[str, None] = {}
        self.deleted: dict[str, R] = {}
        self.templates: dict[_Template, set[Any]] = {}
        #: Equality conditions (as frozensets) whose every matching row is in memory.
        self.exact: set[frozenset[tuple[str, Any]]] = set()
        self.whole = False
        self.sort_key = _sort_key(spec.unique[0] if spec.unique else None)
        self.fields = _FIELDS[name]

    def covered(self, where: Mapping[str, Any]) -> bool:
        """Whether every row meeting ``where`` is in memory (so a lookup needs no statement)."""
        if self.whole:
            return True
        # Loads first: the lookups a batch makes are the ones it loaded for.
        for (field, conditions), values in self.templates.items():
            value = where.get(field)
            if value is None or isinstance(value, Range) or value not in values:
                continue
            for key, wanted in conditions:
                if where.get(key, _MISSING) != wanted:
                    break
            else:
                return True
        plain: list[tuple[str, Any]] = []
        for field, value in where.items():
            if isinstance(value, Range):
                continue
            if value in self.new_ids:
                # Ids are 128 random bits: only rows of this batch can name a row it created.
                return True
            plain.append((field, value))
        return bool(plain) and frozenset(plain) in self.exact

    def changes(self) -> TableChanges | None:
        if not (self.inserted or self.updated or self.deleted):
            return None
        rows = self.rows.rows
        inserts = sorted((rows[i] for i in self.inserted), key=self.sort_key)
        updates = sorted((rows[i] for i in self.updated), key=lambda r: r.id)  # type: ignore[attr-defined]
        return TableChanges(self.name, tuple(inserts), tuple(updates), tuple(sorted(self.deleted)))


_MISSING = object()


class SessionRepository(Generic[R]):
    """One table of a :class:`BatchSession`; the :class:`~commproc_core.ports.Repository` protocol."""

    def __init__(self, session: BatchSession, held: _Held[R]) -> None:
        self._session = session
        self._held = held

    def _check_fields(self, names: Iterable[str]) -> None:
        for name in names:
            if name not in self._held.fields:
                raise ValueError(f"{self._held.name} has no field {name!r}")

    def get(self, record_id: str) -> R | None:
        held = self._held
        row = held.rows.rows.get(record_id)
        if row is not None or record_id in held.deleted:
            return row
        where = {"id": record_id}
        if not held.covered(where):
            self._session._load_now(held, "id", (record_id,), ())
        return held.rows.rows.get(record_id)

    def add(self, record: R) -> R:
        held = self._held
        rid: str = record.id  # type: ignore[attr-defined]
        if rid in held.rows.rows or rid in held.deleted:
            raise UniqueViolation(held.name, "id", ("id",))
        for key in held.rows.spec.unique:
            if key.applies_to(record):
                self._session._ensure_known(held, key, key.value(record))
        held.rows.check_unique(record)
        self._session._insert(held, record)
        return record

    def update(self, record: R) -> R:
        held = self._held
        rid: str = record.id  # type: ignore[attr-defined]
        if self.get(rid) is None:
            raise RecordNotFound(held.name, rid)
        held.rows.check_unique(record, ignore_id=rid)
        self._session._replace(held, record)
        return record

    def get_or_create(self, record: R, *, key: str) -> tuple[R, bool]:
        held = self._held
        unique = held.rows.spec.key(key)
        if not unique.applies_to(record):
            raise ValueError(f"{held.name}: record has no value for unique key {key!r}")
        value = unique.value(record)
        found = held.rows.by_key(key, value)
        if found is None:
            self._session._ensure_known(held, unique, value)
            found = held.rows.by_key(key, value)
        if found is not None:
            return found, False
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
        held = self._held
        self._check_fields(where)
        if order_by is not None:
            self._check_fields([order_by])
        if not held.covered(where):
            self._session._query(held, where, order_by, descending, limit)
        return ordered(held.rows.select(where), order_by, descending, limit)

    def count(self, **where: Any) -> int:
        return len(self.find(**where))

    def delete(self, record_id: str) -> bool:
        held = self._held
        if self.get(record_id) is None:
            return False
        self._session._remove(held, record_id)
        return True


class BatchSession(Repositories):
    """A batch's unit of work, held in memory and written at :meth:`flush`; see the module docstring.

    ``uow`` is the store's unit of work, entered by the caller. When it
    offers :class:`~commproc_core.ports.BulkUnitOfWork`'s methods, loads and
    writes are set-based; otherwise the session falls back to its
    row-at-a-time repositories (correct, not fast).
    """

    def __init__(self, uow: UnitOfWork, *, lock: bool = True) -> None:
        self._uow = uow
        bulk = hasattr(uow, "load_many") and hasattr(uow, "apply")
        self._bulk: BulkUnitOfWork | None = uow if bulk else None  # type: ignore[assignment]
        self._lock = lock
        self._new_ids: set[str] = set()
        self._held: dict[str, _Held[Any]] = {}
        self._log: list[Any] = []
        self._wanted: dict[tuple[str, str, tuple[tuple[str, Any], ...]], set[Any]] = {}
        #: Statements this session asked of the store (loads, lookups, writes).
        self.statements = 0

    def __getattr__(self, name: str) -> SessionRepository[Any]:
        # A table's rows and repository are made the first time the batch touches it.
        if name not in TABLES:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        repository = SessionRepository(self, self._table(name))
        setattr(self, name, repository)
        return repository

    def _table(self, name: str) -> _Held[Any]:
        held = self._held.get(name)
        if held is None:
            held = self._held[name] = _Held(name, self._new_ids)
        return held

    # -- reading in sets -----------------------------------------------------------

    def want(self, table: str, field: str, values: Iterable[Any], **where: Any) -> None:
        """Ask for the rows of ``table`` whose ``field`` is one of ``values``, loaded at the next fetch.

        Values already covered, and None, are left out; ``where`` narrows the
        rows (equality only) and is part of what the load covers.
        """
        held = self._table(table)
        conditions = tuple(sorted(where.items()))
        pending = self._wanted.setdefault((table, field, conditions), set())
        loaded = held.templates.get((field, conditions), ())
        new_ids = self._new_ids
        for value in values:
            if value is not None and value not in loaded and value not in new_ids:
                pending.add(value)

    def fetch(self) -> None:
        """Load everything asked for with :meth:`want`: one statement per kind, one round trip if possible."""
        wanted = [(key, values) for key, values in self._wanted.items() if values]
        self._wanted = {}
        if not wanted:
            return
        loads = [
            Load(
                table,
                field,
                tuple(sorted(values, key=str)),
                conditions,
                lock=self._lock and table in LOCKED_TABLES,
            )
            for (table, field, conditions), values in wanted
        ]
        results = self._load(loads)
        for load, rows in zip(loads, results, strict=True):
            held = self._table(load.table)
            self._merge(held, rows)
            held.templates.setdefault((load.field, load.where), set()).update(load.values)

    def rows(self, table: str) -> list[Any]:
        """Every row of ``table`` the session holds, read or written (a second round of wants starts here)."""
        held = self._held.get(table)
        return list(held.rows.rows.values()) if held is not None else []

    def hold_all(self, table: str, rows: Iterable[Any]) -> None:
        """Take ``rows`` as every row of ``table`` (a cached copy): lookups never query it."""
        held = self._table(table)
        self._merge(held, rows)
        held.whole = True

    def _load(self, loads: Sequence[Load]) -> list[list[Any]]:
        self.statements += len(loads)
        if self._bulk is not None:
            return self._bulk.load_many(loads)
        results: list[list[Any]] = []
        for load in loads:
            repository = getattr(self._uow, load.table)
            found: dict[str, Any] = {}
            for value in load.values:
                for row in repository.find(**{load.field: value, **dict(load.where)}):
                    found[row.id] = row
            results.append(list(found.values()))
        return results

    def _load_now(
        self, held: _Held[Any], field: str, values: tuple[Any, ...], where: tuple[tuple[str, Any], ...]
    ) -> None:
        load = Load(held.name, field, values, where, lock=self._lock and held.name in LOCKED_TABLES)
        self._merge(held, self._load([load])[0])
        held.exact.update(frozenset(((field, v), *where)) for v in values)

    def _ensure_known(self, held: _Held[Any], key: UniqueKey, value: tuple[Any, ...]) -> None:
        where = dict(zip(key.fields, value, strict=True))
        where.update(key.where)
        if held.covered(where):
            return
        first, *rest = key.fields
        conditions = tuple(sorted((*((f, where[f]) for f in rest), *key.where)))
        self._load_now(held, first, (where[first],), conditions)

    def _query(
        self,
        held: _Held[Any],
        where: Mapping[str, Any],
        order_by: str | None,
        descending: bool,
        limit: int | None,
    ) -> None:
        plain = {f: v for f, v in where.items() if not isinstance(v, Range) and v is not None}
        if limit is None and order_by is None and plain and len(plain) == len(where):
            first, *rest = sorted(plain)
            self._load_now(held, first, (plain[first],), tuple((f, plain[f]) for f in rest))
            return
        # Rows this session changed may have left the result, so ask for more.
        if limit is not None:
            limit += len(held.updated) + len(held.deleted)
        self.statements += 1
        repository = getattr(self._uow, held.name)
        self._merge(held, repository.find(order_by=order_by, descending=descending, limit=limit, **where))

    def _merge(self, held: _Held[Any], rows: Iterable[Any]) -> None:
        table = held.rows
        for row in rows:
            if row.id in table.rows or row.id in held.deleted:
                continue
            if table.clash(row) is not None:
                # A row another transaction committed after we read its key as
                # absent, and this batch has since created its own: the flush
                # will meet the conflict and the batch is run again.
                continue
            table.put(row)

    # -- writing -------------------------------------------------------------------

    def _insert(self, held: _Held[Any], record: Any) -> None:
        held.rows.put(record)
        held.inserted[record.id] = None
        self._new_ids.add(record.id)

        def undo() -> None:
            held.rows.drop(record)
            del held.inserted[record.id]
            self._new_ids.discard(record.id)

        self._log.append(undo)

    def _replace(self, held: _Held[Any], record: Any) -> None:
        old = held.rows.rows[record.id]
        was_updated = record.id in held.updated
        held.rows.drop(old)
        held.rows.put(record)
        if record.id not in held.inserted:
            held.updated[record.id] = None

        def undo() -> None:
            held.rows.drop(record)
            held.rows.put(old)
            if not was_updated:
                held.updated.pop(record.id, None)

        self._log.append(undo)

    def _remove(self, held: _Held[Any], record_id: str) -> None:
        old = held.rows.rows[record_id]
        held.rows.drop(old)
        inserted = held.inserted.pop(record_id, _MISSING) is not _MISSING
        was_updated = held.updated.pop(record_id, _MISSING) is not _MISSING
        if not inserted:
            held.deleted[record_id] = old

        def undo() -> None:
            held.rows.put(old)
            held.deleted.pop(record_id, None)
            if inserted:
                held.inserted[record_id] = None
            if was_updated:
                held.updated[record_id] = None

        self._log.append(undo)

    def pending(self) -> list[TableChanges]:
        """The changes :meth:`flush` would write, table by table in :data:`WRITE_ORDER`."""
        out = []
        for name in WRITE_ORDER:
            held = self._held.get(name)
            changes = held.changes() if held is not None else None
            if changes is not None:
                out.append(changes)
        return out

    def flush(self) -> None:
        """Write every pending change to the store; the changes are then the store's."""
        changes = self.pending()
        if changes:
            self.statements += sum(bool(c.inserts) + bool(c.updates) + bool(c.deletes) for c in changes)
            if self._bulk is not None:
                self._bulk.apply(changes)
            else:
                self._apply_rows(changes)
        for held in self._held.values():
            held.inserted.clear()
            held.updated.clear()
            held.deleted.clear()
        self._log.clear()

    def _apply_rows(self, changes: Sequence[TableChanges]) -> None:
        for change in changes:
            repository = getattr(self._uow, change.table)
            try:
                for record in change.inserts:
                    repository.add(record)
                for record in change.updates:
                    repository.update(record)
            except (UniqueViolation, RecordNotFound) as error:
                raise WriteConflict(str(error), table=change.table) from error
            for record_id in change.deletes:
                repository.delete(record_id)

    # -- the UnitOfWork protocol ---------------------------------------------------

    def savepoint(self) -> AbstractContextManager[None]:
        """Undo, in memory, what the block changed if it raises; nothing is sent to the store."""
        return self._savepoint()

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        mark = len(self._log)
        try:
            yield
        except BaseException:
            while len(self._log) > mark:
                self._log.pop()()
            raise

    def commit(self) -> None:
        """Flush, then commit the store's transaction."""
        self.flush()
        self._uow.commit()

    def rollback(self) -> None:
        """Forget every change and everything read, and roll the store's transaction back."""
        self._uow.rollback()
        self._new_ids = set()
        self._held = {}
        for name in TABLES:
            self.__dict__.pop(name, None)
        self._log.clear()
        self._wanted = {}

    def __enter__(self) -> BatchSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


if TYPE_CHECKING:

    def _is_a_unit_of_work(session: BatchSession) -> UnitOfWork:
        return session
