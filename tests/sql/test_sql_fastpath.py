"""Statements run on the DBAPI cursor: the same values, errors and transaction as through SQLAlchemy."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc

from commproc_core import model
from commproc_core.errors import StoreUnavailable
from commproc_core.stores import MemoryStore
from commproc_core.stores.spec import TABLES
from commproc_core.stores.sql import SQLStore
from commproc_core.stores.sql.types import field_columns
from commproc_core.testing.store_contract import sample_record

KEYS = [(table, key.name) for table, spec in sorted(TABLES.items()) for key in spec.unique]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    if request.param == "sqlite":
        store = SQLStore(f"sqlite:///{tmp_path / 'fast.db'}", auto_upgrade=True)
    else:
        pg_url: str = request.getfixturevalue("pg_url")
        schema: str = request.getfixturevalue("pg_schema")
        store = SQLStore(pg_url, schema=schema, auto_upgrade=True)
    yield store
    store.close()


class StatementCounter:
    """Counts the statements the driver executes, whichever way they are sent."""

    def __init__(self, store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        if store.engine.dialect.name == "sqlite":
            event.listen(store.engine, "connect", self._trace)
            store.engine.dispose()  # connections made from now on are traced
        else:
            import psycopg  # the postgres extra; only where a PostgreSQL test runs

            execute = psycopg.Cursor.execute

            def counted(cursor: Any, *args: Any, **kwargs: Any) -> Any:
                self.count += 1
                return execute(cursor, *args, **kwargs)

            monkeypatch.setattr(psycopg.Cursor, "execute", counted)

    def _trace(self, dbapi_connection: Any, record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(self._seen)

    def _seen(self, statement: str) -> None:
        self.count += 1

    @contextmanager
    def exactly(self, expected: int) -> Iterator[None]:
        before = self.count
        yield
        assert self.count - before == expected


def _sparse(table: str) -> Any:
    """The sample record with every optional field None but its unique keys' fields."""
    record = sample_record(table)
    keep = {f for key in TABLES[table].unique for f in (*key.fields, *(w for w, _ in key.where))}
    nulls = {c.name: None for c in field_columns(type(record)) if c.nullable and c.name not in keep}
    return attrs.evolve(record, **nulls)


@pytest.mark.parametrize(("table", "key"), KEYS)
@pytest.mark.parametrize("sparse", [False, True], ids=["full", "sparse"])
def test_get_or_create_stores_what_memory_stores(
    any_store: SQLStore, table: str, key: str, sparse: bool
) -> None:
    record = _sparse(table) if sparse else sample_record(table)
    again = attrs.evolve(record, id=model.new_id())
    memory = MemoryStore()
    results = []
    for store in (any_store, memory):
        with store.unit_of_work() as uow:
            repository = getattr(uow, table)
            created = repository.get_or_create(record, key=key)
            found = repository.get_or_create(again, key=key)
            uow.commit()
        with store.unit_of_work() as uow:
            results.append((created, found, getattr(uow, table).get(record.id)))
    assert results[0] == results[1]
    assert results[0] == ((record, True), (record, False), record)


def test_statements_per_call(any_store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = StatementCounter(any_store, monkeypatch)
    postgres = any_store.engine.dialect.name == "postgresql"
    lead = model.Lead(phone="+14155550100")
    with any_store.unit_of_work() as uow:
        uow.leads.count()  # the transaction's BEGIN, if the dialect sends one
        # PostgreSQL looks up and inserts in one statement; SQLite has no round trips to save.
        with counter.exactly(1 if postgres else 2):
            assert uow.leads.get_or_create(lead, key="phone") == (lead, True)
        with counter.exactly(1):
            assert uow.leads.get_or_create(model.Lead(phone=lead.phone), key="phone") == (lead, False)
        with counter.exactly(1):
            uow.leads.add(model.Lead(phone="+14155550101"))
        with counter.exactly(1):
            assert uow.leads.get(lead.id) == lead
        with counter.exactly(1):
            uow.leads.update(attrs.evolve(lead, first_name="Ann"))
        # On PostgreSQL a savepoint's RELEASE goes with the next savepoint statement, or COMMIT.
        for _ in range(2):
            with counter.exactly(1 if postgres else 2), uow.savepoint():
                pass
        with counter.exactly(2 if postgres else 3), pytest.raises(ValueError), uow.savepoint():
            raise ValueError
        uow.commit()


def test_value_refused_by_column_type(any_store: SQLStore) -> None:
    with any_store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        # As SQLAlchemy reports it; nothing reached the database, so the transaction goes on.
        with pytest.raises(sa_exc.StatementError, match="Not a boolean value"):
            uow.campaigns.find(is_nurturing="yes")
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert uow.leads.count() == 1


def test_error_raised_by_driver_outside_its_hierarchy(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'big.db'}", auto_upgrade=True)
    with store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        with pytest.raises(OverflowError):
            uow.campaigns.find(priority=2**70)
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.leads.count() == 1
    store.close()


@pytest.mark.postgres
def test_interrupted_statement_breaks_the_unit_of_work(
    pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    store = SQLStore(pg_url, schema=pg_schema, auto_upgrade=True)
    execute = psycopg.Cursor.execute

    def interrupted(cursor: Any, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        monkeypatch.setattr(psycopg.Cursor, "execute", interrupted)
        with pytest.raises(KeyboardInterrupt):
            uow.leads.count()
        monkeypatch.setattr(psycopg.Cursor, "execute", execute)
        # The connection's state is unknown: nothing more in this transaction.
        with pytest.raises(StoreUnavailable):
            uow.leads.count()
        uow.rollback()
        assert uow.leads.count() == 0
        uow.leads.add(model.Lead(phone="+2"))
        uow.commit()
    with store.unit_of_work() as uow:
        assert [lead.phone for lead in uow.leads.find()] == ["+2"]
    store.close()


def _savepoint_story(store: Any) -> list[str]:
    """Savepoints in sequence and nested, some rolled back: which leads survive."""

    def add(uow: Any, phone: str) -> None:
        uow.leads.add(model.Lead(phone=phone))

    with store.unit_of_work() as uow:
        with uow.savepoint():
            add(uow, "+1")
        add(uow, "+2")  # after a finished savepoint, before the next
        with pytest.raises(ValueError), uow.savepoint():
            add(uow, "+3")
            raise ValueError
        with pytest.raises(ValueError), uow.savepoint():
            with uow.savepoint():
                add(uow, "+4")
            with uow.savepoint():
                add(uow, "+5")
            raise ValueError  # undoes both finished inner savepoints
        with uow.savepoint():
            with uow.savepoint():
                add(uow, "+6")
            with pytest.raises(ValueError), uow.savepoint():
                add(uow, "+7")
                raise ValueError
            add(uow, "+8")
        with uow.savepoint():
            add(uow, "+9")
        uow.commit()
    with store.unit_of_work() as uow:
        return sorted(lead.phone for lead in uow.leads.find())


def test_savepoints_nested_and_in_sequence(any_store: SQLStore) -> None:
    assert _savepoint_story(any_store) == _savepoint_story(MemoryStore()) == ["+1", "+2", "+6", "+8", "+9"]


def test_commit_inside_a_savepoint(any_store: SQLStore) -> None:
    """The savepoint ends with the commit; leaving its block then fails (both drivers call it operational)."""
    with any_store.unit_of_work() as uow:
        with pytest.raises(StoreUnavailable), uow.savepoint():
            uow.leads.add(model.Lead(phone="+1"))
            uow.commit()
        uow.rollback()
        uow.leads.add(model.Lead(phone="+2"))
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert sorted(lead.phone for lead in uow.leads.find()) == ["+1", "+2"]


@pytest.mark.parametrize("other_commits", [True, False])
def test_get_or_create_waits_for_an_uncommitted_key(any_store: SQLStore, other_commits: bool) -> None:
    """The other transaction's commit decides: its row is found, or after its rollback ours is made."""
    theirs = any_store.unit_of_work()
    theirs.__enter__()
    their_lead = theirs.leads.add(model.Lead(phone="+14155550100"))  # holds the key, uncommitted

    def finish() -> None:
        time.sleep(0.5)
        theirs.commit() if other_commits else theirs.rollback()

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        mine = model.Lead(phone="+14155550100")
        with any_store.unit_of_work() as uow:
            got = uow.leads.get_or_create(mine, key="phone")
            uow.commit()
    finally:
        finisher.join()
        theirs.__exit__(None, None, None)
    assert got == ((their_lead, False) if other_commits else (mine, True))
    with any_store.unit_of_work() as uow:
        assert uow.leads.find(phone="+14155550100") == [got[0]]
