"""The SQL store: units of work over one pooled connection each.

A unit of work checks a connection out of the pool on its first statement
and returns it when the ``with`` block ends. The transaction begins with
that first statement (and again after each commit or rollback), a savepoint
is an SQL SAVEPOINT, and leaving the block without commit rolls back.

When the connection fails mid-transaction the unit of work raises
StoreUnavailable and stays *broken*: every later call raises it too until
:meth:`SQLUnitOfWork.rollback` or the end of the block. Without that, writes
after the failure would start a fresh transaction and a later commit would
store half a unit of work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine

from commproc_core.errors import ConfigError, StoreUnavailable, WriteConflict
from commproc_core.ports import Load, Store, TableChanges
from commproc_core.stores.spec import TABLES, Repositories
from commproc_core.stores.sql.bulk import BulkOps, Step, conflict_detail
from commproc_core.stores.sql.engine import (
    connect,
    describe,
    engine_for,
    is_conflict,
    is_unavailable,
    map_unavailable,
)
from commproc_core.stores.sql.migrations import (
    SCHEMA_VERSION,
    UpgradeResult,
    check_version,
    read_version,
    upgrade_schema,
)
from commproc_core.stores.sql.ops import TableOps
from commproc_core.stores.sql.repository import SQLRepository
from commproc_core.stores.sql.schema import SQLSchema
from commproc_core.stores.sql.statements import Compiled, Prepared

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["SQLStore", "SQLUnitOfWork"]

log = logging.getLogger("commproc.store")


class SQLUnitOfWork(Repositories):
    """A transaction over a :class:`SQLStore`; use it in a ``with`` block."""

    def __init__(self, store: SQLStore) -> None:
        self._store = store
        self._dialect = store._engine.dialect
        self._conn: Connection | None = None
        # The DBAPI cursor of the open transaction; None until its first statement.
        self._cursor: Any = None
        # Whether one execute may carry several statements (psycopg, without parameters).
        self._several = self._dialect.driver == "psycopg"
        # A savepoint whose block ended but whose RELEASE is not sent yet.
        self._unreleased: str | None = None
        self._entered = False
        self._broken = False
        self._depth = 0
        for name, ops in store._ops.items():
            setattr(self, name, SQLRepository(self, ops))

    @property
    def dialect(self) -> Any:
        return self._dialect

    # -- connection and errors -------------------------------------------------

    def _connection(self) -> Connection:
        if not self._entered:
            raise RuntimeError("use the unit of work inside a `with` block")
        if self._broken:
            raise StoreUnavailable("the unit of work lost its database connection; roll back and retry")
        if self._conn is None:
            self._store._ensure_schema()
            with map_unavailable("connect"):
                self._conn = connect(self._store._engine)
        return self._conn

    def _begin(self) -> Any:
        """The cursor of the transaction, begun through SQLAlchemy (which emits BEGIN on SQLite)."""
        conn = self._connection()
        try:
            if not conn.in_transaction():
                conn.begin()
            self._cursor = conn.connection.cursor()
        except sa_exc.SQLAlchemyError as error:
            if is_unavailable(error):
                raise self.lost(error) from error
            raise
        return self._cursor

    def _end_transaction(self) -> None:
        self._unreleased = None
        cursor, self._cursor = self._cursor, None
        if cursor is not None:
            with suppress(Exception):
                cursor.close()

    def lost(self, error: BaseException, why: str | None = None) -> StoreUnavailable:
        """Give up the connection (and its transaction) after ``error``."""
        self._broken = True
        self._discard()
        why = why or f"database unavailable: {describe(error)}"
        log.warning("unit of work rolled back: %s", why)
        return StoreUnavailable(why)

    def _discard(self) -> None:
        self._end_transaction()
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except sa_exc.SQLAlchemyError:
            # The connection is beyond saving; make sure the pool never hands it out again.
            with suppress(sa_exc.SQLAlchemyError):
                conn.invalidate()

    def _run(self, sql: str, params: Any) -> Any:
        """Execute on the transaction's cursor; driver errors become SQLAlchemy's, as in its own execute."""
        cursor = self._cursor
        if cursor is None:
            cursor = self._begin()
        try:
            try:
                cursor.execute(sql, params)
                return cursor
            except self._dialect.loaded_dbapi.Error as error:
                raise self._wrap(error, sql, params, cursor) from error
            except Exception:
                # Not the driver's (an OverflowError binding a huge int): raised as is.
                raise
            except BaseException:
                # Interrupted mid-statement (KeyboardInterrupt...): the connection's
                # state is unknown, so it must not go back to the pool.
                self._invalidate(None)
                self._broken = True
                self._discard()
                raise
        except sa_exc.StatementError as error:
            if is_unavailable(error):
                raise self.lost(error) from error
            raise

    def _wrap(self, error: Exception, sql: str, params: Any, cursor: Any = None) -> sa_exc.StatementError:
        """``error`` as SQLAlchemy raises it: a DBAPIError subclass, or StatementError for others."""
        conn = self._conn
        disconnected = False
        if conn is not None and cursor is not None:
            with suppress(Exception):
                dbapi = conn.connection.dbapi_connection
                # Typed for the DBAPI module's Error; any exception is accepted.
                disconnected = self._dialect.is_disconnect(error, dbapi, cursor)  # type: ignore[arg-type]
        if disconnected:
            self._invalidate(error)
        return sa_exc.DBAPIError.instance(
            sql,
            params,
            error,
            self._dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=disconnected,
            dialect=self._dialect,
        )

    def _invalidate(self, error: BaseException | None) -> None:
        conn = self._conn
        if conn is not None and not conn.invalidated:
            with suppress(Exception):
                conn.invalidate(error)

    def _params(self, compiled: Compiled, values: Mapping[str, Any]) -> Any:
        try:
            return compiled.params(values)
        except Exception as error:
            # A value its column type refuses: SQLAlchemy reports a StatementError.
            raise self._wrap(error, compiled.sql, None) from error

    def query(self, statement: Prepared, values: Mapping[str, Any]) -> tuple[list[Any], Any]:
        """The rows of a SELECT, and the cursor (its ``description`` is costly; read it rarely)."""
        compiled = statement.compiled(self._dialect)
        params = self._params(compiled, values)
        cursor = self._run(compiled.sql, params)
        try:
            try:
                return cursor.fetchall(), cursor
            except self._dialect.loaded_dbapi.Error as error:
                raise self._wrap(error, compiled.sql, params, cursor) from error
        except sa_exc.StatementError as error:
            if is_unavailable(error):
                raise self.lost(error) from error
            raise

    def write(self, statement: Prepared, values: Mapping[str, Any]) -> int:
        """Run an INSERT, UPDATE or DELETE; the number of rows it changed."""
        compiled = statement.compiled(self._dialect)
        rowcount: int = self._run(compiled.sql, self._params(compiled, values)).rowcount
        return rowcount

    # -- set-based reads and writes (the BulkUnitOfWork protocol) ---------------

    def load_many(self, loads: Sequence[Load]) -> list[list[Any]]:
        """The rows of each load; on PostgreSQL all of them in one round trip."""
        bulk = self._store._bulk
        steps = [bulk[load.table].load(load) for load in loads]
        results = self._steps(steps, fetch=True)
        return [
            step.ops.load_all(rows, self._dialect, cursor)
            for step, (rows, cursor) in zip(steps, results, strict=True)
        ]

    def apply(self, changes: Sequence[TableChanges]) -> None:
        """Write ``changes`` in order; WriteConflict when another transaction took a key first."""
        bulk = self._store._bulk
        steps = [step for change in changes for step in bulk[change.table].writes(change)]
        for step, (changed, _) in zip(steps, self._steps(steps, fetch=False), strict=True):
            if step.expected is not None and changed != step.expected:
                raise WriteConflict(conflict_detail(step, changed), table=step.ops.name)

    def _steps(self, steps: Sequence[Step], *, fetch: bool) -> list[tuple[Any, _Result]]:
        """Run ``steps`` in the transaction: rows (``fetch``) or row counts, and each description."""
        cursor = self._cursor if self._cursor is not None else self._begin()
        current: Step | None = None
        try:
            try:
                if self._several:
                    raw: Any = self._connection().connection.dbapi_connection
                    assert raw is not None
                    from psycopg import RawCursor  # loaded with the driver: self._several says psycopg

                    cursors = []
                    with raw.pipeline():
                        for current in steps:
                            each = RawCursor(raw) if current.native else raw.cursor()
                            if current.many:
                                each.executemany(current.sql, current.params)
                            else:
                                each.execute(current.sql, current.params)
                            cursors.append(each)
                    current = None
                    return [(c.fetchall() if fetch else c.rowcount, _Result(c.description)) for c in cursors]
                results = []
                for current in steps:
                    if current.many:
                        cursor.executemany(current.sql, current.params)
                    else:
                        cursor.execute(current.sql, current.params)
                    # One cursor serves every step: keep each result's description now.
                    value = cursor.fetchall() if fetch else cursor.rowcount
                    results.append((value, _Result(cursor.description)))
                return results
            except self._dialect.loaded_dbapi.Error as error:
                sql = current.sql if current is not None else "(pipeline)"
                raise self._wrap(error, sql, None, cursor) from error
        except sa_exc.StatementError as error:
            if is_unavailable(error):
                raise self.lost(error) from error
            if is_conflict(error):
                raise WriteConflict(f"write conflict: {describe(error)}") from error
            raise

    def _savepoint_sql(self, *statements: str) -> None:
        if self._several:
            # One round trip; without parameters psycopg sends the simple query protocol.
            self._run("; ".join(statements), None)
        else:
            for statement in statements:
                self._run(statement, ())

    @contextmanager
    def _nested(self) -> Iterator[None]:
        # Savepoints are plain SQL on the cursor: SQLAlchemy's begin_nested() compiles
        # its statements anew each time, which cost more than the event's own
        # writes when the pipeline opens one per event.
        self._depth += 1
        name = f"commproc_sp_{self._depth}"
        try:
            # A savepoint left unreleased is a finished sibling of this one (or inside it).
            pending, self._unreleased = self._unreleased, None
            before = (f"RELEASE SAVEPOINT {pending}",) if pending else ()
            self._savepoint_sql(*before, f"SAVEPOINT {name}")
            transaction = self._cursor  # one cursor per transaction
            try:
                yield
            except BaseException:
                # Rolling back to this savepoint also ends any left unreleased inside it.
                self._unreleased = None
                if not self._broken:
                    # If the connection fails now, the original exception goes on; the
                    # unit of work is broken by then.
                    with suppress(StoreUnavailable):
                        self._savepoint_sql(f"ROLLBACK TO SAVEPOINT {name}", f"RELEASE SAVEPOINT {name}")
                raise
            if self._broken:
                raise StoreUnavailable("the unit of work lost its database connection; roll back and retry")
            if self._several and self._cursor is transaction:
                # Released along with the next savepoint statement (COMMIT releases
                # it too): a round trip saved per savepoint. Releasing has no
                # effect but to forget the name; this one also releases any
                # left unreleased inside it. (After a commit inside the block the
                # RELEASE goes now, and fails as it always did.)
                self._unreleased = name
            else:
                self._run(f"RELEASE SAVEPOINT {name}", ())
        finally:
            self._depth -= 1

    # -- the UnitOfWork protocol ---------------------------------------------

    def __enter__(self) -> SQLUnitOfWork:
        if self._entered:
            raise RuntimeError("this unit of work is already in use")
        if self._store._serial is not None:
            self._store._serial.acquire()
        self._entered = True
        self._broken = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._discard()  # closing a connection rolls back what was not committed
        finally:
            self._entered = False
            self._broken = False
            if self._store._serial is not None:
                self._store._serial.release()

    def commit(self) -> None:
        if not self._entered:
            raise RuntimeError("use the unit of work inside a `with` block")
        if self._broken:
            raise StoreUnavailable("the unit of work lost its database connection; roll back and retry")
        conn = self._conn
        self._end_transaction()
        if conn is None or not conn.in_transaction():
            return
        try:
            conn.commit()
        except sa_exc.SQLAlchemyError as error:
            # Whether a commit that lost its connection took effect cannot be known;
            # callers retry, and unique keys make the retry harmless.
            if is_unavailable(error):
                raise self.lost(error) from error
            raise

    def rollback(self) -> None:
        if not self._entered:
            raise RuntimeError("use the unit of work inside a `with` block")
        self._broken = False
        self._end_transaction()
        if self._conn is None:
            return
        try:
            self._conn.rollback()
        except sa_exc.SQLAlchemyError as error:
            if not is_unavailable(error):
                raise
            self._discard()

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside undoes only its writes, then propagates."""
        return self._nested()


class _Result:
    """What a step's rows are read with: the description of the cursor that fetched them."""

    __slots__ = ("description",)

    def __init__(self, description: Any) -> None:
        self.description = description


def _memory_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


class SQLStore:
    """commproc records in SQLite or PostgreSQL, through SQLAlchemy Core.

    ``url_or_engine`` is a URL (``sqlite:///commproc.db``,
    ``postgresql://user@host/db``), an existing Engine (a host application's;
    it is not disposed by :meth:`close`), or None for
    ``$COMMPROC_DATABASE_URL``, then ``sqlite:///commproc.db``. ``schema``
    (PostgreSQL) and ``table_prefix`` let the tables live in a host database.

    The schema must be at :data:`SCHEMA_VERSION`; otherwise the first unit of
    work raises SchemaVersionError telling to run ``commproc db upgrade``,
    unless ``auto_upgrade`` is set, which creates or upgrades it (meant for
    the embedded SQLite file). ``engine_options`` go to
    :func:`sqlalchemy.create_engine` over commproc's pool defaults.
    """

    def __init__(
        self,
        url_or_engine: str | URL | Engine | None = None,
        *,
        schema: str | None = None,
        table_prefix: str = "",
        auto_upgrade: bool = False,
        engine_options: Mapping[str, Any] | None = None,
    ) -> None:
        engine, owned = engine_for(url_or_engine, **(engine_options or {}))
        dialect = engine.dialect.name
        try:
            if dialect not in ("sqlite", "postgresql"):
                raise ConfigError(f"the SQL store supports SQLite and PostgreSQL, not {dialect}")
            if schema and dialect != "postgresql":
                raise ConfigError("schema= needs PostgreSQL; on SQLite use table_prefix=")
            self._schema = SQLSchema(schema=schema, table_prefix=table_prefix)
        except BaseException:
            if owned:
                engine.dispose()
            raise
        self._engine = engine
        self._owns_engine = owned
        self._auto_upgrade = auto_upgrade
        self._ops = {name: TableOps(self._schema.tables[name], self._schema, dialect) for name in TABLES}
        self._bulk = {name: BulkOps(ops, engine.dialect) for name, ops in self._ops.items()}
        self._schema_ok = False
        self._schema_lock = threading.Lock()
        # An in-memory SQLite database is one connection shared by every unit of work.
        self._serial = threading.RLock() if _memory_sqlite(engine) else None

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        return f"SQLStore({url!r}, schema={self._schema.schema!r}, table_prefix={self._schema.prefix!r})"

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def schema(self) -> str | None:
        return self._schema.schema

    @property
    def table_prefix(self) -> str:
        return self._schema.prefix

    def unit_of_work(self) -> SQLUnitOfWork:
        return SQLUnitOfWork(self)

    def _ensure_schema(self) -> None:
        if self._schema_ok:
            return
        with self._schema_lock:
            if not self._schema_ok:
                self.check_schema()

    def _exclusive(self) -> AbstractContextManager[Any]:
        # Work outside a unit of work must not interleave with one on a shared connection.
        return self._serial if self._serial is not None else nullcontext()

    def check_schema(self) -> None:
        """Raise SchemaVersionError unless the schema is current (upgrading it with ``auto_upgrade``)."""
        with self._exclusive(), map_unavailable("schema check"), connect(self._engine) as conn:
            version = read_version(conn, self._schema)
        if self._auto_upgrade and (version is None or version < SCHEMA_VERSION):
            self.upgrade()
            version = SCHEMA_VERSION
        check_version(version, self._schema)
        self._schema_ok = True

    def upgrade(self, target: int | None = None) -> UpgradeResult:
        """Create or upgrade this store's tables; see :func:`~commproc_core.stores.sql.upgrade`."""
        with self._exclusive():
            result = upgrade_schema(self._engine, self._schema, target=target)
        self._schema_ok = False
        return result

    def ping(self) -> None:
        """Return if the database answers, else raise StoreUnavailable."""
        dbapi_error: type[Exception] = self._engine.dialect.loaded_dbapi.Error
        try:
            with self._exclusive():
                self._ping()
        except (sa_exc.SQLAlchemyError, dbapi_error) as error:
            log.warning("store ping failed: %s", describe(error))
            raise StoreUnavailable(f"database unavailable: {describe(error)}") from error

    def _ping(self) -> None:
        # A raw DBAPI connection: no BEGIN, so no wait for SQLite's write lock.
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchall()
            cursor.close()
        finally:
            raw.close()

    def close(self) -> None:
        """Close pooled connections (an engine handed in by the host is left alone)."""
        if self._owns_engine:
            self._engine.dispose()


if TYPE_CHECKING:

    def _is_a_store(store: SQLStore) -> Store:
        return store
