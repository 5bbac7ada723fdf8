"""Stores for the email tests: the in-memory store and the SQL store on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from commproc_core.stores import MemoryStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryStore()
        return
    from commproc_core.stores.sql import SQLStore

    sql = SQLStore(f"sqlite:///{tmp_path / 'email.db'}", auto_upgrade=True)
    try:
        yield sql
    finally:
        sql.close()


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
