"""Fixtures for the SQL store tests: SQLite files and isolated PostgreSQL schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_support import postgres_schema, require_postgres


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test server's URL; fails under CI and skips elsewhere when there is none."""
    return require_postgres()


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A PostgreSQL schema of this test's own, dropped afterwards."""
    with postgres_schema(pg_url) as name:
        yield name


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'commproc.db'}"
