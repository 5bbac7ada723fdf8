"""One fresh store of each kind for a test: in memory, a SQLite file, a PostgreSQL schema of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pg_support import postgres_schema, require_postgres

from commproc_core.stores import MemoryStore

__all__ = ["STORE_KINDS", "SQL_KINDS", "open_store"]

#: Parameters for a fixture over every store; PostgreSQL marked so CI can tell.
STORE_KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_KINDS = STORE_KINDS[1:]


@contextmanager
def open_store(kind: str, directory: Path) -> Iterator[Any]:
    """A fresh, empty, current store of ``kind`` (``memory``, ``sqlite`` or ``postgres``), closed afterwards."""
    if kind == "memory":
        yield MemoryStore()
        return
    from commproc_core.stores.sql import SQLStore

    if kind == "sqlite":
        sql = SQLStore(f"sqlite:///{directory / 'commproc.db'}", auto_upgrade=True)
        sql.check_schema()
        try:
            yield sql
        finally:
            sql.close()
        return
    url = require_postgres()
    with postgres_schema(url) as schema:
        sql = SQLStore(url, schema=schema, auto_upgrade=True)
        sql.check_schema()
        try:
            yield sql
        finally:
            sql.close()
