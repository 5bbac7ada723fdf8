"""Which database a command works on, and opening it without ever creating tables.

Every command takes ``--database``, ``--schema`` and ``--table-prefix``
(defaults: ``$COMMPROC_DATABASE_URL``, ``$COMMPROC_SCHEMA``,
``$COMMPROC_TABLE_PREFIX``), so the CLI reaches tables a host application
created under its own schema or prefix. Only ``commproc db upgrade`` creates
or changes tables (and ``commproc demo`` its own throw-away file): every other
command opens an existing, current schema or stops with a message saying what
to run, and a mistyped SQLite path never leaves an empty file behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import attrs

from commproc_core.errors import ConfigError, SchemaVersionError, StoreUnavailable
from commproc_core.runtime.masking import mask_urls
from commproc_core.stores.location import DEFAULT_URL, SUPPORTED, locate

__all__ = [
    "DatabaseTarget",
    "check_driver",
    "check_target",
    "open_database",
    "resolve_target",
    "sqlite_file",
]


@attrs.frozen
class DatabaseTarget:
    """A database URL plus the schema and table prefix commproc's tables live under."""

    url: str
    schema: str | None = None
    table_prefix: str = ""

    @property
    def memory(self) -> bool:
        return self.url.split(":", 1)[0] == "memory"

    def upgrade_command(self) -> str:
        """The ``commproc db upgrade`` command line that creates this target's tables."""
        parts = ["commproc db upgrade", f"--database {mask_urls(self.url)}"]
        if self.schema:
            parts.append(f"--schema {self.schema}")
        if self.table_prefix:
            parts.append(f"--table-prefix {self.table_prefix}")
        return " ".join(parts)

    def describe(self) -> str:
        """The URL with its password masked, plus the schema and prefix when set."""
        extras = []
        if self.schema:
            extras.append(f"schema {self.schema}")
        if self.table_prefix:
            extras.append(f"table prefix {self.table_prefix}")
        return mask_urls(self.url) + (f" ({', '.join(extras)})" if extras else "")


def resolve_target(
    url: str | None = None,
    schema: str | None = None,
    table_prefix: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> DatabaseTarget:
    """The flags given, else the environment, else the defaults (``sqlite:///commproc.db``)."""
    found_url, found_schema, found_prefix = locate(url, schema, table_prefix, environ)
    return DatabaseTarget(url=found_url or DEFAULT_URL, schema=found_schema, table_prefix=found_prefix)


def _parse(url: str) -> Any:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError(
            f"not a database URL: {mask_urls(url)!r}; {SUPPORTED}, or memory:// for a throw-away store"
        ) from None


def check_driver(url: str) -> None:
    """Refuse URLs commproc cannot use, saying what to write or install instead."""
    from commproc_core.stores.sql import engine

    _parse(url)  # a URL SQLAlchemy cannot read is named (masked) in the error
    engine.check_driver(url)


def sqlite_file(url: str) -> Path | None:
    """The file a ``sqlite:///`` URL names; None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite"):
        return None
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if str(parsed.database).startswith("file:"):
        return None  # a URI filename; sqlite3 resolves it, we cannot say where it points
    return Path(parsed.database)


def check_target(target: DatabaseTarget) -> None:
    """Refuse a target commproc cannot use (driver, schema on SQLite, options on memory://)."""
    if target.memory:
        if target.schema or target.table_prefix:
            raise ConfigError("memory:// has no schema or table prefix; drop --schema and --table-prefix")
        return
    check_driver(target.url)
    if target.schema and _parse(target.url).get_backend_name() == "sqlite":
        raise ConfigError("--schema needs PostgreSQL; on SQLite use --table-prefix")


def open_database(target: DatabaseTarget) -> Any:
    """A store for ``target``, whose schema must exist and be current; nothing is created on the way.

    A missing SQLite file is a ConfigError ("no commproc database at ..."); a
    database without commproc's tables, or with an older or newer schema, a
    SchemaVersionError saying what to run.
    """
    check_target(target)
    if target.memory:
        from commproc_core.stores import MemoryStore

        return MemoryStore()
    path = sqlite_file(target.url)
    if path is not None and not path.is_file():
        raise ConfigError(
            f"no commproc database at {path}: check the path, or create it with `{target.upgrade_command()}`"
        )
    if path is not None:
        _probe_sqlite(path, target)
    from commproc_core.stores.sql import SQLStore

    store = SQLStore(target.url, schema=target.schema, table_prefix=target.table_prefix)
    try:
        store.check_schema()
    except (SchemaVersionError, StoreUnavailable):
        store.close()
        raise
    except Exception as exc:
        store.close()
        raise _not_a_database(target, exc) from exc
    return store


def _probe_sqlite(path: Path, target: DatabaseTarget) -> None:
    """Look for commproc's tables read-only first: a host's file is left exactly as it was."""
    import sqlite3

    from commproc_core.stores.sql.schema import VERSION_TABLE

    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                (target.table_prefix + VERSION_TABLE,),
            ).fetchone()
    except sqlite3.Error as exc:
        raise ConfigError(f"{path} is not a usable SQLite database ({exc})") from None
    if found is None:
        prefix = f" with table prefix {target.table_prefix!r}" if target.table_prefix else ""
        raise SchemaVersionError(
            f"{path} holds no commproc tables{prefix}: check the path and --table-prefix, or create "
            f"them with `{target.upgrade_command()}`"
        )


def _not_a_database(target: DatabaseTarget, exc: Exception) -> Exception:
    from sqlalchemy import exc as sa_exc

    from commproc_core.stores.sql.engine import describe

    if isinstance(exc, sa_exc.SQLAlchemyError):
        return ConfigError(
            f"cannot use {target.describe()} as a commproc database: {mask_urls(describe(exc))}"
        )
    return exc
