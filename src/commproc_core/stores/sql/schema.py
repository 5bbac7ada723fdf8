"""The SQL tables, built once per (schema, table prefix) from :data:`spec.TABLES`.

Each record field becomes a column of the same name; ``id`` is the primary
key; every :class:`~commproc_core.stores.spec.UniqueKey` becomes a unique
index (partial where the key is), and every index of the spec an index.
Names are deterministic, so a constraint name reported by the database maps
back to the table and key it enforces.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import attrs
import sqlalchemy as sa

from commproc_core.errors import ConfigError
from commproc_core.stores.spec import TABLES, TableSpec, UniqueKey
from commproc_core.stores.sql.types import FieldColumn, UTCDateTime, field_columns

__all__ = ["VERSION_TABLE", "IndexId", "SQLSchema", "TableDef", "index_id"]

#: The name, before the prefix, of the table recording applied schema versions.
VERSION_TABLE = "commproc_schema_version"

#: (table, fields): how migrations name an index of the spec, independent of prefixes.
IndexId = tuple[str, tuple[str, ...]]

_PREFIX = re.compile(r"^[A-Za-z0-9_]*$")
_MAX_NAME = 63  # PostgreSQL truncates identifiers longer than this


def index_id(table: str, *fields: str) -> IndexId:
    return (table, tuple(fields))


def _name(raw: str) -> str:
    # A truncated name could clash with another; a short hash keeps it unique.
    if len(raw) <= _MAX_NAME:
        return raw
    digest = hashlib.sha1(raw.encode(), usedforsecurity=False).hexdigest()[:8]
    return f"{raw[: _MAX_NAME - 9]}_{digest}"


@attrs.frozen(eq=False)
class TableDef:
    """One record table: its spec, SQL table, column codecs and named indexes."""

    spec: TableSpec[Any]
    table: sa.Table
    columns: tuple[FieldColumn, ...]
    #: Unique index name per unique key name ("id" for the primary key).
    key_names: dict[str, str]
    #: The secondary indexes of the spec.
    indexes: dict[IndexId, sa.Index]


class SQLSchema:
    """Every commproc table for one ``schema`` and ``table_prefix``."""

    def __init__(self, *, schema: str | None = None, table_prefix: str = "") -> None:
        # PostgreSQL silently cuts identifiers to 63 bytes, so a long prefix
        # or schema name would create tables under other names than the ones
        # queried. Index and constraint names are shortened with a hash
        # (_name); table names cannot be, so the prefix is what must fit. The
        # same limit holds on SQLite, so a configuration moves between stores.
        if not isinstance(table_prefix, str) or not _PREFIX.match(table_prefix):
            raise ConfigError("table_prefix may hold only ASCII letters, digits and _")
        longest = max([*(spec.name for spec in TABLES.values()), VERSION_TABLE], key=len)
        if len((table_prefix + longest).encode()) > _MAX_NAME:
            room = _MAX_NAME - len(longest.encode())
            raise ConfigError(
                f"table_prefix is {len(table_prefix)} characters long; at most {room} fit, "
                f"as {longest!r} with the prefix must stay within PostgreSQL's {_MAX_NAME}-byte names"
            )
        schema = schema or None  # "" is no schema, as SQLStore reads it
        if schema is not None:
            if not isinstance(schema, str) or "\x00" in schema:
                raise ConfigError("schema must be a name without NUL characters, or None")
            try:
                size = len(schema.encode())
            except UnicodeEncodeError:
                raise ConfigError("schema is not valid Unicode text (it holds a lone surrogate)") from None
            if size > _MAX_NAME:
                raise ConfigError(
                    f"schema is {size} bytes long; PostgreSQL names hold at most {_MAX_NAME} bytes"
                )
        self.schema = schema
        self.prefix = table_prefix
        self.metadata = sa.MetaData(schema=schema)
        self.tables: dict[str, TableDef] = {n: self._build(s) for n, s in TABLES.items()}
        self.version_table = sa.Table(
            table_prefix + VERSION_TABLE,
            self.metadata,
            sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("description", sa.Text(), nullable=False),
            sa.Column("applied_at", UTCDateTime(), nullable=False),
        )
        #: Database constraint/index name -> (table, key name), for unique violations.
        self.constraint_keys: dict[str, tuple[str, str]] = {
            index: (name, key) for name, td in self.tables.items() for key, index in td.key_names.items()
        }

    def _build(self, spec: TableSpec[Any]) -> TableDef:
        name = self.prefix + spec.name
        columns = field_columns(spec.record)
        table = sa.Table(
            name,
            self.metadata,
            *(
                sa.Column(c.name, c.type, primary_key=c.name == "id", nullable=c.nullable and c.name != "id")
                for c in columns
            ),
        )
        table.primary_key.name = _name(f"{name}_pkey")
        key_names = {"id": table.primary_key.name}
        for key in spec.unique:
            key_names[key.name] = self._unique_index(spec.name, table, key)
        # An Index binds itself to the table through its columns.
        indexes = {
            index_id(spec.name, *fields): sa.Index(
                _name(f"{self.prefix}ix_{spec.name}_{'_'.join(fields)}"), *(table.c[f] for f in fields)
            )
            for fields in spec.indexes
        }
        return TableDef(spec, table, columns, key_names, indexes)

    def _unique_index(self, spec_name: str, table: sa.Table, key: UniqueKey) -> str:
        name = _name(f"{self.prefix}uq_{spec_name}_{key.name}")
        where: dict[str, Any] = {}
        if key.where:
            condition = sa.and_(*(table.c[f] == v for f, v in key.where))
            where = {"postgresql_where": condition, "sqlite_where": condition}
        sa.Index(name, *(table.c[f] for f in key.fields), unique=True, **where)
        return name

    def key_for_constraint(self, table: str, constraint: str | None, columns: tuple[str, ...] = ()) -> str:
        """The unique key name behind a violation, from the constraint name or the column list."""
        if constraint is not None and constraint in self.constraint_keys:
            return self.constraint_keys[constraint][1]
        td = self.tables[table]
        if columns:
            wanted = set(columns)
            if wanted == {"id"}:
                return "id"
            for key in td.spec.unique:
                if set(key.fields) == wanted:
                    return str(key.name)
        return constraint or "unknown"

    def qualified(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name
