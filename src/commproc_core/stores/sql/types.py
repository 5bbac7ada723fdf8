"""Column types for record fields, and how each field's value crosses the driver.

Record fields are mapped by their annotation: ``str`` to text, ``int``,
``float``, ``bool``, ``datetime`` to :class:`UTCDateTime`, a ``Mapping`` to
JSON (JSONB on PostgreSQL) and ``tuple[X, ...]`` to a JSON list whose items
are turned back into ``X`` (an attrs class or a plain value) on the way out.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

__all__ = ["FieldColumn", "UTCDateTime", "field_columns"]

Codec = Callable[[Any], Any]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect.

    PostgreSQL keeps ``timestamptz``. SQLite has no timestamp type, so values
    are kept as fixed-width UTC ISO text (``2026-01-02 03:04:05.123456``):
    one format for every row means text order is time order, so ``ORDER BY``
    and range conditions work in SQL.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(32))
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return typing.cast(datetime, value.replace(tzinfo=timezone.utc))
        return typing.cast(datetime, value.astimezone(timezone.utc))


def _json() -> TypeEngine[Any]:
    return sa.JSON().with_variant(JSONB(), "postgresql")


@attrs.frozen
class FieldColumn:
    """How one record field is stored."""

    name: str
    type: TypeEngine[Any]
    nullable: bool
    #: Python value to a value the column type accepts (None: as is).
    dump: Codec | None = None
    #: Column value back to the field's Python type (None: as is).
    load: Codec | None = None
    #: JSON columns cannot be compared portably in SQL; conditions on them run in Python.
    is_json: bool = False


def _mapping_dump(value: Any) -> Any:
    # A Mapping need not be a dict (MappingProxyType...); the JSON serializer wants one.
    return value if type(value) is dict else dict(value)


def _tuple_codecs(item: Any) -> tuple[Codec, Codec]:
    if attrs.has(item):
        item_type: type[Any] = item

        def dump_records(value: Any) -> Any:
            return [attrs.asdict(v) for v in value]

        def load_records(value: Any) -> Any:
            return tuple(item_type(**v) for v in value or ())

        return dump_records, load_records

    def dump_values(value: Any) -> Any:
        return list(value)

    def load_values(value: Any) -> Any:
        return tuple(value or ())

    return dump_values, load_values


def _column_for(name: str, annotation: Any) -> FieldColumn:
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        if len(args) != 1:
            raise TypeError(f"field {name!r}: cannot store a union of {args}")
        annotation = args[0]
        origin = typing.get_origin(annotation)
    # bool before int: bool is a subclass of int.
    if annotation is bool:
        return FieldColumn(name, sa.Boolean(), nullable)
    if annotation is int:
        return FieldColumn(name, sa.BigInteger(), nullable)
    if annotation is float:
        return FieldColumn(name, sa.Double(), nullable)
    if annotation is str:
        return FieldColumn(name, sa.Text(), nullable)
    if annotation is datetime:
        return FieldColumn(name, UTCDateTime(), nullable)
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return FieldColumn(name, _json(), nullable, dump=_mapping_dump, is_json=True)
    if origin is tuple:
        items = typing.get_args(annotation)
        if len(items) == 2 and items[1] is Ellipsis:
            dump, load = _tuple_codecs(items[0])
            return FieldColumn(name, _json(), nullable, dump=dump, load=load, is_json=True)
    raise TypeError(f"field {name!r}: no column type for {annotation!r}")


def field_columns(record_type: type[Any]) -> tuple[FieldColumn, ...]:
    """The columns of ``record_type``'s fields, in field order."""
    hints = typing.get_type_hints(record_type)
    return tuple(_column_for(f.name, hints[f.name]) for f in attrs.fields(record_type))
