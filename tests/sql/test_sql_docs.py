"""docs/storage.md runs: SQLite examples as written, PostgreSQL ones against a throwaway database."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PAGE = Path(__file__).resolve().parents[2] / "docs" / "storage.md"
# "```python postgres" marks examples that need a server (tests/test_docs.py runs only plain ones).
BLOCK = re.compile(r"^```python( postgres)?\n(.*?)^```", re.S | re.M)
# The URLs the page shows for PostgreSQL; the test points them at its own database.
PG_PLACEHOLDERS = ("postgresql://commproc@localhost/commproc", "postgresql+psycopg://app@localhost/app")


def _blocks(postgres: bool) -> list[tuple[int, str]]:
    blocks = list(enumerate(BLOCK.findall(PAGE.read_text()), 1))
    return [(n, body) for n, (tag, body) in blocks if bool(tag) == postgres]


def _run(blocks: list[tuple[int, str]]) -> None:
    namespace: dict[str, object] = {"__name__": "docs_storage"}
    for number, block in blocks:
        exec(compile(block, f"storage.md#example{number}", "exec"), namespace)
        for value in namespace.values():
            close = getattr(value, "close", None)
            if type(value).__name__ == "SQLStore" and callable(close):
                close()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    name = f"docs_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_sqlite_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(postgres=False)
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COMMPROC_DATABASE_URL", raising=False)
    _run(blocks)


@pytest.mark.postgres
def test_postgres_examples(pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = _blocks(postgres=True)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    rewritten = []
    for number, block in blocks:
        for placeholder in PG_PLACEHOLDERS:
            block = block.replace(placeholder, pg_database)
        assert "localhost" not in block
        rewritten.append((number, block))
    _run(rewritten)
