"""Rows of one table held in memory, with their unique and secondary indexes.

Shared by the in-memory store (the whole table) and the batch session (the
rows one batch has loaded or written). An index value held by one row maps
straight to that row's id; only values shared by several rows get a set, so a
store of a million events keeps a million strings in its indexes, not a
million sets.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, TypeVar

from commproc_core.errors import UniqueViolation
from commproc_core.stores.spec import Range, TableSpec, UniqueKey

__all__ = ["IndexedTable", "matches", "ordered"]

R = TypeVar("R")
_Ids = str | set[str]


def _getter(fields: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if len(fields) == 1:
        single = operator.attrgetter(fields[0])
        return lambda record: (single(record),)
    return operator.attrgetter(*fields)


def matches(record: object, where: Mapping[str, Any]) -> bool:
    """Whether ``record`` meets every condition of ``where`` (equality or :class:`Range`)."""
    for field, wanted in where.items():
        value = getattr(record, field)
        if isinstance(wanted, Range):
            if not wanted.matches(value):
                return False
        elif value != wanted:
            return False
    return True


def ordered(rows: list[R], order_by: str | None, descending: bool, limit: int | None) -> list[R]:
    """``rows`` sorted on ``order_by`` (rows without a value last, either way), cut to ``limit``."""
    if order_by is not None:
        present = [r for r in rows if getattr(r, order_by) is not None]
        absent = [r for r in rows if getattr(r, order_by) is None]
        present.sort(key=operator.attrgetter(order_by), reverse=descending)
        rows = present + absent
    return rows if limit is None else rows[:limit]


class _Index:
    """Value -> the id, or the set of ids, of rows holding it."""

    __slots__ = ("entries", "get")

    def __init__(self, fields: tuple[str, ...]) -> None:
        self.get = _getter(fields)
        self.entries: dict[tuple[Any, ...], _Ids] = {}

    def add(self, value: tuple[Any, ...], rid: str) -> None:
        held = self.entries.get(value)
        if held is None:
            self.entries[value] = rid
        elif isinstance(held, str):
            if held != rid:
                self.entries[value] = {held, rid}
        else:
            held.add(rid)

    def discard(self, value: tuple[Any, ...], rid: str) -> None:
        held = self.entries.get(value)
        if held is None:
            return
        if isinstance(held, str):
            if held == rid:
                del self.entries[value]
            return
        held.discard(rid)
        if len(held) == 1:
            self.entries[value] = next(iter(held))

    def ids(self, value: tuple[Any, ...]) -> Iterable[str]:
        held = self.entries.get(value)
        if held is None:
            return ()
        return (held,) if isinstance(held, str) else tuple(held)


class _Key:
    """A unique key's value getter and partial condition, prepared once: checked on every write."""

    __slots__ = ("get", "name", "values", "where")

    def __init__(self, key: UniqueKey, values: dict[tuple[Any, ...], str]) -> None:
        self.name = key.name
        self.get = _getter(key.fields)
        self.where = key.where
        self.values = values

    def value(self, record: Any) -> tuple[Any, ...] | None:
        """The key's value for ``record``, or None when the key does not apply to it (as in SQL)."""
        for field, wanted in self.where:
            if getattr(record, field) != wanted:
                return None
        value = self.get(record)
        return None if None in value else value


class IndexedTable(Generic[R]):
    """Rows by id, unique keys enforced as a database would, secondary indexes for lookups."""

    def __init__(self, spec: TableSpec[R]) -> None:
        self.spec = spec
        self.rows: dict[str, R] = {}
        self.unique: dict[str, dict[tuple[Any, ...], str]] = {k.name: {} for k in spec.unique}
        self._unique_keys = tuple(_Key(k, self.unique[k.name]) for k in spec.unique)
        self.indexes: dict[tuple[str, ...], _Index] = {
            fields: _Index(fields) for fields in (*spec.indexes, *spec.lookups)
        }
        self._index_list = tuple(self.indexes.values())

    def __len__(self) -> int:
        return len(self.rows)

    def clash(self, record: R, ignore_id: str | None = None) -> str | None:
        """The name of the unique key another row holds ``record``'s value of, if any."""
        for key in self._unique_keys:
            value = key.value(record)
            if value is None:
                continue
            holder = key.values.get(value)
            if holder is not None and holder != ignore_id:
                return key.name
        return None

    def check_unique(self, record: R, ignore_id: str | None = None) -> None:
        name = self.clash(record, ignore_id)
        if name is not None:
            raise UniqueViolation(self.spec.name, name, self.spec.key(name).fields)

    def put(self, record: R) -> None:
        rid: str = record.id  # type: ignore[attr-defined]
        self.rows[rid] = record
        for key in self._unique_keys:
            value = key.value(record)
            if value is not None:
                key.values[value] = rid
        for index in self._index_list:
            index.add(index.get(record), rid)

    def drop(self, record: R) -> None:
        rid: str = record.id  # type: ignore[attr-defined]
        del self.rows[rid]
        for key in self._unique_keys:
            value = key.value(record)
            if value is not None and key.values.get(value) == rid:
                del key.values[value]
        for index in self._index_list:
            index.discard(index.get(record), rid)

    def by_key(self, name: str, value: tuple[Any, ...]) -> R | None:
        rid = self.unique[name].get(value)
        return None if rid is None else self.rows[rid]

    def candidates(self, where: Mapping[str, Any]) -> Iterator[R]:
        """Rows that may meet ``where`` (a superset found through the best index); check with matches()."""
        plain = {f: v for f, v in where.items() if not isinstance(v, Range)}
        if "id" in plain:
            row = self.rows.get(plain["id"])
            if row is not None:
                yield row
            return
        for key in self.spec.unique:
            if not key.where and all(plain.get(f) is not None for f in key.fields):
                rid = self.unique[key.name].get(tuple(plain[f] for f in key.fields))
                if rid is not None:
                    yield self.rows[rid]
                return
        best: tuple[str, ...] | None = None
        for fields in self.indexes:
            if all(f in plain for f in fields) and (best is None or len(fields) > len(best)):
                best = fields
        if best is not None:
            index = self.indexes[best]
            yield from (self.rows[i] for i in index.ids(tuple(plain[f] for f in best)))
            return
        yield from list(self.rows.values())

    def select(self, where: Mapping[str, Any]) -> list[R]:
        return [r for r in self.candidates(where) if matches(r, where)]
