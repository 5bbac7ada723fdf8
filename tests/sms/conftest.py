"""Stores for the SMS end-to-end tests: in memory, SQLite, and PostgreSQL (marked ``postgres``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_support import postgres_schema, require_postgres

from commproc_core.stores import MemoryStore


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from commproc_core.stores.sql import SQLStore

    if request.param == "sqlite":
        sql = SQLStore(f"sqlite:///{tmp_path / 'sms.db'}", auto_upgrade=True)
        try:
            yield sql
        finally:
            sql.close()
        return
    url = require_postgres()
    with postgres_schema(url) as schema:
        sql = SQLStore(url, schema=schema, auto_upgrade=True)
        try:
            yield sql
        finally:
            sql.close()
