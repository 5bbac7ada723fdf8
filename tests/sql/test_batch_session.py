"""The batch session: the store contract through it, set-based reads and writes, conflicts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from store_support import STORE_KINDS, open_store

from commproc_core import model
from commproc_core.errors import UniqueViolation, WriteConflict
from commproc_core.ports import Store, UnitOfWork
from commproc_core.stores import MemoryStore
from commproc_core.stores.session import BatchSession
from commproc_core.stores.sql import SQLStore, upgrade
from commproc_core.testing.store_contract import StoreContract


class _SessionUnit:
    """A store's unit of work seen through a BatchSession: what the pipeline runs on."""

    def __init__(self, store: Store) -> None:
        self._inner = store.unit_of_work()
        self._session: BatchSession | None = None

    def __enter__(self) -> BatchSession:
        uow = self._inner.__enter__()
        self._session = BatchSession(uow)
        return self._session

    def __exit__(self, *exc: Any) -> None:
        self._inner.__exit__(*exc)


class SessionStore:
    """A Store whose units of work are batch sessions over another store's."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def unit_of_work(self) -> Any:
        return _SessionUnit(self.inner)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()


class SessionContract(StoreContract):
    def test_concurrent_get_or_create_makes_one_row(self, store: Store) -> None:
        # A session finds a taken key at flush, as WriteConflict; the pipeline runs
        # the batch again, and the second run reads the winner's row.
        results: list[bool] = []
        errors: list[BaseException] = []

        def worker() -> None:
            for _ in range(5):
                try:
                    with store.unit_of_work() as uow:
                        _, created = uow.conversations.get_or_create(
                            model.Conversation(external_id="race", channel="sms"), key="external_id"
                        )
                        uow.commit()
                    results.append(created)
                    return
                except WriteConflict:
                    continue
                except BaseException as exc:
                    errors.append(exc)
                    return

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(results) == [False, False, False, True]
        with store.unit_of_work() as uow:
            assert uow.conversations.count(external_id="race") == 1


class TestSessionOverMemory(SessionContract):
    @pytest.fixture
    def store(self) -> SessionStore:
        return SessionStore(MemoryStore())


class TestSessionOverSQLite(SessionContract):
    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[SessionStore]:
        store = SQLStore(sqlite_url, auto_upgrade=True)
        yield SessionStore(store)
        store.close()


@pytest.mark.postgres
class TestSessionOverPostgres(SessionContract):
    @pytest.fixture
    def store(self, pg_url: str, pg_schema: str) -> Iterator[SessionStore]:
        upgrade(pg_url, schema=pg_schema)
        store = SQLStore(pg_url, schema=pg_schema)
        yield SessionStore(store)
        store.close()


@pytest.fixture(params=STORE_KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def _seed(store: Store, *records: Any) -> None:
    with store.unit_of_work() as uow:
        for record in records:
            getattr(uow, _table(record)).add(record)
        uow.commit()


def _table(record: Any) -> str:
    from commproc_core.stores.spec import table_for

    return table_for(type(record)).name


def test_loads_cover_found_and_missing_keys(any_store: Store) -> None:
    known = model.Lead(phone="+14155550100")
    _seed(any_store, known)
    with any_store.unit_of_work() as uow:
        session = BatchSession(uow)
        session.want("leads", "phone", ["+14155550100", "+14155550101"])
        session.fetch()
        loaded = session.statements
        assert session.leads.find_one(phone="+14155550100") == known
        assert session.leads.find_one(phone="+14155550101") is None
        created, fresh = session.leads.get_or_create(model.Lead(phone="+14155550101"), key="phone")
        assert fresh
        again, fresh_again = session.leads.get_or_create(model.Lead(phone="+14155550101"), key="phone")
        assert again == created and not fresh_again
        # Everything after the fetch was answered from memory.
        assert session.statements == loaded == 1
        session.commit()
    with any_store.unit_of_work() as uow:
        assert uow.leads.count() == 2


def test_rows_of_new_ids_are_known_without_a_query(any_store: Store) -> None:
    with any_store.unit_of_work() as uow:
        session = BatchSession(uow)
        conversation = session.conversations.add(model.Conversation(external_id="x", channel="sms"))
        before = session.statements
        participant, created = session.participants.get_or_create(
            model.Participant(conversation_id=conversation.id, address="+14155550100"),
            key="conversation_address",
        )
        assert created
        assert session.participants.find(conversation_id=conversation.id) == [participant]
        assert session.statements == before


def test_writes_wait_for_flush_in_table_order(any_store: Store) -> None:
    with any_store.unit_of_work() as uow:
        session = BatchSession(uow)
        session.want("leads", "phone", ["+14155550100"])
        session.fetch()
        lead = session.leads.add(model.Lead(phone="+14155550100"))
        session.leads.update(lead.__class__(**{**_fields(lead), "first_name": "Ann"}))
        event = session.events.add(model.CommunicationEvent(channel="sms", provider="t", event_type="x"))
        assert [c.table for c in session.pending()] == ["leads", "events"]
        # An update of a row inserted in this batch is folded into its insert.
        leads = session.pending()[0]
        assert len(leads.inserts) == 1 and not leads.updates
        assert leads.inserts[0].first_name == "Ann"
        session.commit()
    with any_store.unit_of_work() as uow:
        assert uow.leads.get(lead.id).first_name == "Ann"
        assert uow.events.get(event.id) is not None


def _fields(record: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(record, recurse=False)


def test_savepoint_undoes_in_memory(any_store: Store) -> None:
    with any_store.unit_of_work() as uow:
        session = BatchSession(uow)
        session.want("leads", "phone", ["+1", "+2"])
        session.fetch()
        session.leads.add(model.Lead(phone="+1"))
        with pytest.raises(ValueError), session.savepoint():
            session.leads.add(model.Lead(phone="+2"))
            raise ValueError("boom")
        assert session.leads.find_one(phone="+2") is None
        with pytest.raises(UniqueViolation):
            session.leads.add(model.Lead(phone="+1"))
        assert len(session.pending()[0].inserts) == 1


def test_key_taken_by_another_transaction_is_a_write_conflict(tmp_path: Any) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'db.sqlite'}", auto_upgrade=True)
    try:
        with store.unit_of_work() as uow:
            session = BatchSession(uow)
            session.want("leads", "phone", ["+14155550100"])
            session.fetch()
            session.leads.add(model.Lead(phone="+14155550100"))
            # Sneak the same key in through the transaction, as a concurrent commit would.
            uow.leads.add(model.Lead(phone="+14155550100"))
            with pytest.raises(WriteConflict):
                session.flush()
    finally:
        store.close()


def test_session_is_a_unit_of_work(any_store: Store) -> None:
    with any_store.unit_of_work() as uow:
        session: UnitOfWork = BatchSession(uow)
        assert session.leads.count() == 0


def test_a_multi_row_insert_keeps_every_value(any_store: Store) -> None:
    # Placeholder-like text in values and more rows than one statement's parameter cache holds.
    texts = ["%s", "%%", "%(id)s", "$1", "$$ $2 $$", "'); DROP TABLE leads; --", "ünï\u2028code", "", None]
    leads = [
        model.Lead(
            phone=f"+1415555{i:04d}",
            first_name=texts[i % len(texts)],
            metadata={"note": texts[(i + 1) % len(texts)], "n": i},
        )
        for i in range(60)
    ]
    with any_store.unit_of_work() as uow:
        session = BatchSession(uow)
        for lead in leads:
            session.leads.add(lead)
        session.commit()
    with any_store.unit_of_work() as uow:
        assert sorted(uow.leads.find(), key=lambda r: r.phone) == leads


def test_postgres_multi_row_inserts_are_written_with_native_placeholders() -> None:
    # psycopg parses %(name)s placeholders on every run of a query with over 50
    # parameters; a multi-row INSERT uses $n and a tuple, run on a RawCursor.
    import re

    from commproc_core.ports import TableChanges
    from commproc_core.stores.sql.bulk import MultiRow

    store = SQLStore("postgresql+psycopg://nobody@127.0.0.1:1/never-connected")
    ops = store._ops["leads"]
    compiled = ops.insert.compiled(store.engine.dialect)
    names = re.findall(r"%\((\w+)\)s", compiled.sql)
    rows = MultiRow(compiled, native=True)
    text = rows.sql(3)
    assert "%(" not in text and f"${3 * len(names)}" in text and f"${3 * len(names) + 1}" not in text
    first, second = (compiled.params(ops.dump(model.Lead(phone=p))) for p in ("+1", "+2"))
    assert rows.params([first, second]) == tuple(first[n] for n in names) + tuple(second[n] for n in names)
    # The store's own statements take the native form on psycopg.
    (step,) = store._bulk["leads"].writes(TableChanges(table="leads", inserts=(model.Lead(phone="+3"),)))
    assert step.native and step.sql.count("$") == len(names)
    store.close()


@pytest.mark.parametrize("url", ["sqlite://", "postgresql+psycopg://nobody@127.0.0.1:1/never-connected"])
def test_multi_row_texts_kept_are_bounded(url: str) -> None:
    # Lambda and replay batches come in every size up to 10,000: texts of every row
    # count would add up to megabytes a table.
    from commproc_core.stores.sql.bulk import MAX_ROWS, MultiRow

    store = SQLStore(url)
    compiled = store._ops["events"].insert.compiled(store.engine.dialect)
    rows = MultiRow(compiled, native=url.startswith("postgresql"))
    texts = {n: rows.sql(n) for n in range(1, MAX_ROWS + 1)}
    assert len(rows._texts) <= 17
    assert rows.sql(MAX_ROWS - 1) == texts[MAX_ROWS - 1] and rows.sql(3) is rows.sql(3)
    store.close()
