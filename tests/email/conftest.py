"""Stores for the email tests: the in-memory store and the SQL store on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from store_support import open_store

from commproc_core.stores import MemoryStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()
