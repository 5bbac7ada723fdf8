"""Schema versions: a short list of numbered steps and the ``upgrade`` that applies them.

A new database runs every step from 1, so a fresh schema and an upgraded one
are built by the same code. Version 1 is the first released schema: the
current tables minus whatever a later step adds (a later step names what it
adds, so version 1 stays what it was). Applied versions are rows of
``<prefix>commproc_schema_version``. An upgrade runs in one transaction
(DDL is transactional on PostgreSQL and, with our transaction control, on
SQLite), under an advisory lock on PostgreSQL so two processes upgrading at
once apply each step once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from commproc_core.errors import SchemaVersionError
from commproc_core.model import utcnow
from commproc_core.stores.sql.engine import connect, engine_for, map_unavailable
from commproc_core.stores.sql.schema import IndexId, SQLSchema, index_id

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "ColumnId",
    "Migration",
    "UpgradeResult",
    "check_version",
    "current_version",
    "read_version",
    "upgrade",
    "upgrade_schema",
]

log = logging.getLogger("commproc.store")

_UPGRADE_HINT = "run `commproc db upgrade` (or commproc_core.stores.sql.upgrade())"


#: (table, field): a column a migration adds to an existing table.
ColumnId = tuple[str, str]


@attrs.frozen
class Migration:
    """One schema version: what it changes, and how.

    What a step adds (tables, columns, indexes of the spec) is named here, so
    version 1 leaves it out and every version's tables are what they were.
    """

    version: int
    description: str
    #: Tables of the spec this step creates, with their keys and indexes.
    adds_tables: tuple[str, ...] = ()
    #: Columns this step adds to existing tables (nullable, or JSON defaulting to ``{}``).
    adds_columns: tuple[ColumnId, ...] = ()
    #: Indexes of the spec this step creates; every earlier version lacks them.
    adds_indexes: tuple[IndexId, ...] = ()
    #: Extra work on top of the above.
    apply: Callable[[Connection, SQLSchema], None] | None = None

    def run(self, conn: Connection, schema: SQLSchema) -> None:
        if self.apply is not None:
            self.apply(conn, schema)
        for name in self.adds_tables:
            _create_table(conn, schema, name, set(), _later().indexes)
        for table, field in self.adds_columns:
            _add_column(conn, schema, table, field)
        for ident in self.adds_indexes:
            conn.execute(sa.schema.CreateIndex(schema.tables[ident[0]].indexes[ident], if_not_exists=True))


@attrs.frozen
class _Later:
    """What steps after version 1 add, so version 1 leaves it out."""

    tables: frozenset[str]
    columns: frozenset[ColumnId]
    indexes: frozenset[IndexId]


def _later(after: int = 1) -> _Later:
    steps = [m for m in MIGRATIONS if m.version > after]
    return _Later(
        frozenset(t for m in steps for t in m.adds_tables),
        frozenset(c for m in steps for c in m.adds_columns),
        frozenset(i for m in steps for i in m.adds_indexes),
    )


def _create_table(
    conn: Connection, schema: SQLSchema, name: str, leave_out: set[str], later_indexes: frozenset[IndexId]
) -> None:
    td = schema.tables[name]
    table = td.table
    if leave_out:
        # The table as it was: the same columns but those later steps add.
        table = sa.Table(
            td.table.name,
            sa.MetaData(schema=schema.schema),
            *(c._copy() for c in td.table.columns if c.name not in leave_out),
        )
        table.primary_key.name = td.table.primary_key.name
    # CREATE TABLE alone; indexes one by one so later steps' indexes stay out.
    conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
    # A unique key on a column a later step adds comes with that column.
    wanted = [i for i in td.table.indexes if i.unique and not {c.name for c in i.columns} & leave_out]
    wanted += [i for ident, i in td.indexes.items() if ident not in later_indexes]
    for index in wanted:
        # IF NOT EXISTS, not checkfirst: one statement instead of a catalog query per index.
        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _add_column(conn: Connection, schema: SQLSchema, table: str, field: str) -> None:
    td = schema.tables[table]
    column = td.table.c[field]
    spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    ddl = str(spec)
    if not column.nullable:
        # Rows already there need a value; only JSON columns are added NOT NULL.
        if not any(c.name == field and c.is_json for c in td.columns):
            raise ValueError(f"{table}.{field}: a column added later must be nullable or JSON")
        ddl += " DEFAULT '{}'"
    qualified = conn.dialect.identifier_preparer.format_table(td.table)
    conn.exec_driver_sql(f"ALTER TABLE {qualified} ADD COLUMN {ddl}")
    for index in td.table.indexes:
        if index.unique and field in {c.name for c in index.columns}:
            conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))


def _create_base(conn: Connection, schema: SQLSchema) -> None:
    later = _later()
    for name in schema.tables:
        if name in later.tables:
            continue
        columns = {field for table, field in later.columns if table == name}
        _create_table(conn, schema, name, columns, later.indexes)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "base tables, unique keys and lookup indexes", apply=_create_base),
    Migration(
        2,
        "indexes for time-ordered scans of events and processing records",
        adds_indexes=(index_id("events", "recorded_at"), index_id("processing_records", "received_at")),
    ),
    Migration(
        3,
        "agent replies after commit, WhatsApp user ids as lead keys, seen signature tokens",
        adds_tables=("seen_tokens",),
        adds_columns=(("agent_events", "delivery"), ("leads", "whatsapp_id")),
        adds_indexes=(index_id("agent_events", "outcome", "created_at"),),
    ),
)
#: The schema version this code reads and writes.
SCHEMA_VERSION = MIGRATIONS[-1].version


@attrs.frozen
class UpgradeResult:
    """What an upgrade did: ``applied`` is empty when the schema was already current."""

    from_version: int | None
    to_version: int
    applied: tuple[int, ...]


def _where(schema: SQLSchema) -> str:
    parts = []
    if schema.schema:
        parts.append(f"schema {schema.schema!r}")
    if schema.prefix:
        parts.append(f"table prefix {schema.prefix!r}")
    return f" ({', '.join(parts)})" if parts else ""


def read_version(conn: Connection, schema: SQLSchema) -> int | None:
    """The applied schema version, or None when there is no commproc schema."""
    table = schema.version_table
    if not sa.inspect(conn).has_table(table.name, schema=schema.schema):
        return None
    version: Any = conn.execute(sa.select(sa.func.max(table.c.version))).scalar()
    return int(version) if version is not None else None


def check_version(version: int | None, schema: SQLSchema) -> None:
    """Raise SchemaVersionError unless ``version`` is the one this code needs."""
    where = _where(schema)
    if version is None:
        raise SchemaVersionError(f"the database has no commproc schema{where}; {_UPGRADE_HINT} to create it")
    if version > SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database schema{where} is at version {version}, newer than this commproc "
            f"(which knows up to version {SCHEMA_VERSION}); upgrade commproc"
        )
    if version < SCHEMA_VERSION:
        raise SchemaVersionError(
            f"the database schema{where} is at version {version}, this commproc needs version "
            f"{SCHEMA_VERSION}; {_UPGRADE_HINT}"
        )


def _lock_key(schema: SQLSchema) -> int:
    name = f"commproc:{schema.qualified(schema.version_table.name)}".encode()
    return int.from_bytes(hashlib.sha1(name, usedforsecurity=False).digest()[:8], "big", signed=True)


def upgrade_schema(engine: Engine, schema: SQLSchema, *, target: int | None = None) -> UpgradeResult:
    """Create or upgrade ``schema``'s tables on ``engine`` up to ``target`` (default: latest)."""
    goal = SCHEMA_VERSION if target is None else target
    if not 1 <= goal <= SCHEMA_VERSION:
        raise ValueError(f"target version must be between 1 and {SCHEMA_VERSION}, not {goal}")
    postgres = engine.dialect.name == "postgresql"
    with map_unavailable("schema upgrade"), connect(engine) as conn, conn.begin():
        if postgres:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(schema))))
            if schema.schema:
                conn.execute(sa.schema.CreateSchema(schema.schema, if_not_exists=True))
        found = read_version(conn, schema)
        if found is None:
            conn.execute(sa.schema.CreateTable(schema.version_table, if_not_exists=True))
        current = found or 0
        if current > SCHEMA_VERSION:
            check_version(current, schema)
        if goal < current:
            raise SchemaVersionError(
                f"the database schema{_where(schema)} is at version {current}; "
                f"downgrading to {goal} is not supported"
            )
        applied = []
        for migration in MIGRATIONS:
            if current < migration.version <= goal:
                migration.run(conn, schema)
                conn.execute(
                    schema.version_table.insert().values(
                        version=migration.version, description=migration.description, applied_at=utcnow()
                    )
                )
                applied.append(migration.version)
    if applied:
        log.info("commproc schema%s upgraded from %s to %s", _where(schema), found, goal)
    return UpgradeResult(from_version=found, to_version=max(current, goal), applied=tuple(applied))


def upgrade(
    url_or_engine: str | URL | Engine | None = None,
    *,
    schema: str | None = None,
    table_prefix: str = "",
    target: int | None = None,
) -> UpgradeResult:
    """Create the commproc tables or bring them up to date; a no-op on a current database.

    ``url_or_engine`` defaults to ``$COMMPROC_DATABASE_URL``, then
    ``sqlite:///commproc.db``. Raises SchemaVersionError when the database is
    newer than this code, StoreUnavailable when it cannot be reached.
    """
    engine, owned = engine_for(url_or_engine)
    try:
        return upgrade_schema(engine, SQLSchema(schema=schema, table_prefix=table_prefix), target=target)
    finally:
        if owned:
            engine.dispose()


def current_version(
    url_or_engine: str | URL | Engine | None = None, *, schema: str | None = None, table_prefix: str = ""
) -> int | None:
    """The database's commproc schema version, or None when it has none."""
    engine, owned = engine_for(url_or_engine)
    try:
        with map_unavailable("schema check"), connect(engine) as conn:
            return read_version(conn, SQLSchema(schema=schema, table_prefix=table_prefix))
    finally:
        if owned:
            engine.dispose()
