"""Engines for the SQL store: URLs, pool settings, SQLite transaction control, error mapping."""

from __future__ import annotations

import importlib.util
import logging
import os
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from commproc_core.errors import ConfigError, StoreUnavailable
from commproc_core.stores.location import DEFAULT_URL, SUPPORTED, URL_ENV

__all__ = [
    "DEFAULT_URL",
    "SUPPORTED",
    "URL_ENV",
    "check_driver",
    "connect",
    "create_engine",
    "describe",
    "engine_for",
    "is_conflict",
    "is_unavailable",
    "map_unavailable",
    "normalize_url",
    "prepare_sqlite",
    "resolve_url",
]

log = logging.getLogger("commproc.store")


_POSTGRES_DEFAULTS: dict[str, Any] = {
    "pool_size": 5,
    "max_overflow": 5,
    "pool_timeout": 30,
    # Connections die behind load balancers and on server restarts; a long-running
    # worker must not hand a dead one to a unit of work.
    "pool_pre_ping": True,
    "pool_recycle": 1800,
    "connect_args": {"connect_timeout": 10, "application_name": "commproc"},
}
# How long a writer waits for another's lock; the driver's ``timeout`` connect argument sets it.
_SQLITE_BUSY_TIMEOUT = 30.0
_prepared: weakref.WeakSet[Engine] = weakref.WeakSet()
_BEGIN_OPTION = "commproc_sqlite_begin"


def resolve_url(url: str | URL | None) -> str | URL:
    """``url``, else ``$COMMPROC_DATABASE_URL``, else :data:`DEFAULT_URL`."""
    if url is not None:
        return url
    return os.environ.get(URL_ENV) or DEFAULT_URL


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` (and ``postgres://``) means psycopg 3."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError as error:
        raise ConfigError(f"not a database URL: {error}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def _merge(defaults: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for name, value in options.items():
        if name == "connect_args" and isinstance(value, Mapping):
            merged[name] = {**merged.get(name, {}), **value}
        else:
            merged[name] = value
    return merged


#: What a database URL may name, for error messages.


def check_driver(url: str | URL) -> None:
    """Refuse URLs commproc cannot use, saying what to write or install instead (ConfigError)."""
    try:
        parsed = sa.make_url(url)
    except sa_exc.ArgumentError:
        raise ConfigError(f"not a database URL; {SUPPORTED}") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend in ("postgresql", "postgres"):
        if "+" in parsed.drivername and driver != "psycopg":
            raise ConfigError(
                f"commproc talks to PostgreSQL through psycopg 3, not {driver}: write the URL as "
                "postgresql://user@host/db (or postgresql+psycopg://...) and install the driver with "
                "pip install 'commproc-core[postgres]'"
            )
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigError(
                "PostgreSQL URLs need psycopg 3, which is not installed: "
                "pip install 'commproc-core[postgres]'"
            )
        return
    if backend == "sqlite":
        if "+" in parsed.drivername and driver != "pysqlite":
            raise ConfigError(
                f"commproc uses Python's built-in sqlite3 driver, not {driver}: write sqlite:///path/commproc.db"
            )
        return
    shown = parsed.render_as_string(hide_password=True)
    raise ConfigError(f"{SUPPORTED}; {backend} is not supported ({shown})")


def create_engine(url: str | URL, **options: Any) -> Engine:
    """An engine tuned for commproc; ``options`` override the defaults (``connect_args`` merge)."""
    check_driver(url)
    parsed = normalize_url(url)
    backend = parsed.get_backend_name()
    defaults: dict[str, Any] = {"hide_parameters": True}  # errors never echo record contents
    if backend == "postgresql":
        defaults.update(_POSTGRES_DEFAULTS)
    elif backend == "sqlite":
        if _is_memory_sqlite(parsed):
            # One shared connection, or each checkout would see its own empty database;
            # the store serializes units of work on it.
            defaults.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            defaults.update(
                pool_size=5,
                max_overflow=5,
                connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT},
            )
    try:
        engine = sa.create_engine(parsed, **_merge(defaults, options))
    except (ImportError, sa_exc.ArgumentError) as error:
        hint = " (install commproc-core[postgres])" if backend == "postgresql" else ""
        raise ConfigError(f"cannot use database URL for {parsed.drivername}: {error}{hint}") from error
    if backend == "sqlite":
        prepare_sqlite(engine, owned=True)
    return engine


def engine_for(url_or_engine: str | URL | Engine | None, **options: Any) -> tuple[Engine, bool]:
    """An engine for ``url_or_engine`` and whether the caller owns (and must dispose) it."""
    if isinstance(url_or_engine, Engine):
        if options:
            raise ConfigError("engine options apply to URLs; configure a ready Engine yourself")
        if url_or_engine.dialect.name == "sqlite":
            prepare_sqlite(url_or_engine, owned=False)
        return url_or_engine, False
    return create_engine(resolve_url(url_or_engine), **options), True


def connect(engine: Engine) -> Connection:
    """A connection for commproc's own work (on SQLite: transactions take the write lock at once)."""
    return engine.connect().execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})


def _on_sqlite_connect(pragmas: bool) -> Any:
    def connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # SQLAlchemy emits BEGIN itself (see _on_sqlite_begin); the driver must not.
        dbapi_connection.isolation_level = None
        if not pragmas:
            return
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer, and a commit costs one append.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=OFF")
        finally:
            cursor.close()

    return connect


def _on_sqlite_begin(default: str) -> Any:
    def begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        dbapi = conn.connection.dbapi_connection
        if dbapi is not None and getattr(dbapi, "isolation_level", None) is not None:
            # A host engine's connections made before we were handed the engine.
            dbapi.isolation_level = None
        # IMMEDIATE takes the write lock up front, waiting up to the busy timeout. A
        # deferred transaction that reads, then writes after another process committed,
        # fails with SQLITE_BUSY at once and cannot be retried inside the transaction.
        conn.exec_driver_sql(f"BEGIN {options.get(_BEGIN_OPTION, default)}")

    return begin


def prepare_sqlite(engine: Engine, *, owned: bool) -> None:
    """Let SQLAlchemy control SQLite transactions so SAVEPOINT and transactional DDL work.

    This is the pysqlite recipe of the SQLAlchemy docs (the driver's legacy
    transaction control never emits BEGIN before a SAVEPOINT or DDL). On an
    engine of our own, connections also get WAL mode and every transaction
    is ``BEGIN IMMEDIATE``; on a host's engine only commproc's connections
    are (see :func:`connect`), the host's get a plain ``BEGIN`` and its
    journal mode is left alone. Safe to call more than once.
    """
    if engine in _prepared:
        return
    file_db = not _is_memory_sqlite(engine.url)
    event.listen(engine, "connect", _on_sqlite_connect(pragmas=owned and file_db))
    event.listen(engine, "begin", _on_sqlite_begin("IMMEDIATE" if owned else "DEFERRED"))
    _prepared.add(engine)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached or is busy: worth a retry later."""
    if isinstance(error, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error, sa_exc.InterfaceError):
        return True
    if isinstance(error, sa_exc.OperationalError):
        text = str(error.orig).lower()
        # SQLite reports schema mistakes as OperationalError too; those are not transient.
        return not any(s in text for s in ("no such table", "no such column", "syntax error"))
    return False


#: SQLSTATEs of a transaction that lost a race and should simply run again: a
#: deadlock, a serialization failure, a unique key taken by a concurrent commit.
_CONFLICT_STATES = frozenset({"40P01", "40001", "23505"})


def is_conflict(error: BaseException) -> bool:
    """Whether ``error`` means another transaction won a race for the same rows."""
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    state = getattr(error.orig, "sqlstate", None)
    if state in _CONFLICT_STATES:
        return True
    # SQLite names the constraint in the message; its writers are serialized, so a
    # unique failure there is a key this transaction's own reads missed.
    return isinstance(error, sa_exc.IntegrityError) and "UNIQUE constraint failed" in str(error.orig)


def describe(error: BaseException) -> str:
    """A one-line cause without SQL or parameters."""
    cause = error.orig if isinstance(error, sa_exc.DBAPIError) else error
    first = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


@contextmanager
def map_unavailable(what: str) -> Iterator[None]:
    """Turn a connection failure inside the block into StoreUnavailable."""
    try:
        yield
    except sa_exc.SQLAlchemyError as error:
        if is_unavailable(error):
            log.warning("store unavailable during %s: %s", what, describe(error))
            raise StoreUnavailable(f"database unavailable during {what}: {describe(error)}") from error
        raise
