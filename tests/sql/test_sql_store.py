"""The store contract on SQLite and PostgreSQL, plus what only the SQL store does."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import attrs
import pytest
import sqlalchemy as sa

from commproc_core import model
from commproc_core.errors import ConfigError, StoreUnavailable, UniqueViolation
from commproc_core.stores import MemoryStore, Range
from commproc_core.stores.sql import SQLStore, open_store, upgrade
from commproc_core.testing.store_contract import StoreContract, sample_record


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, sqlite_url: str) -> Iterator[SQLStore]:
        store = SQLStore(sqlite_url, auto_upgrade=True)
        yield store
        store.close()


class TestSQLiteMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> Iterator[SQLStore]:
        store = SQLStore("sqlite://", auto_upgrade=True)
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str, pg_schema: str) -> Iterator[SQLStore]:
        upgrade(pg_url, schema=pg_schema)
        store = SQLStore(pg_url, schema=pg_schema)
        yield store
        store.close()


@pytest.mark.postgres
class TestPostgresPrefixedStore(StoreContract):
    """Schema and prefix together, as a host database would use them."""

    @pytest.fixture
    def store(self, pg_url: str, pg_schema: str) -> Iterator[SQLStore]:
        store = SQLStore(pg_url, schema=pg_schema, table_prefix="cp_", auto_upgrade=True)
        yield store
        store.close()


# -- beyond the contract, on both dialects ---------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStore]:
    if request.param == "sqlite":
        store = SQLStore(f"sqlite:///{tmp_path / 'any.db'}", auto_upgrade=True)
        yield store
        store.close()
        return
    pg_url: str = request.getfixturevalue("pg_url")
    schema: str = request.getfixturevalue("pg_schema")
    store = SQLStore(pg_url, schema=schema, auto_upgrade=True)
    yield store
    store.close()


def test_unique_violation_outside_savepoint_keeps_transaction_usable(any_store: SQLStore) -> None:
    lead = model.Lead(phone="+14155550100")
    with any_store.unit_of_work() as uow:
        uow.leads.add(lead)
        with pytest.raises(UniqueViolation) as info:
            uow.leads.add(model.Lead(phone="+14155550100"))
        assert info.value.key == "phone"
        with pytest.raises(UniqueViolation) as info:
            uow.leads.add(attrs.evolve(lead, phone="+14155550101"))
        assert info.value.key == "id"
        other = uow.leads.add(model.Lead(phone="+14155550102"))
        with pytest.raises(UniqueViolation) as info:
            uow.leads.update(attrs.evolve(other, phone="+14155550100"))
        assert info.value.key == "phone"
        assert info.value.fields == ("phone",)
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert uow.leads.count() == 2


def test_update_into_partial_key_clashes(any_store: SQLStore) -> None:
    with any_store.unit_of_work() as uow:
        open_ = uow.threads.add(model.Thread(lead_id="l1", channel="sms"))
        closed = uow.threads.add(model.Thread(lead_id="l1", channel="sms", status="closed"))
        with pytest.raises(UniqueViolation) as info:
            uow.threads.update(attrs.evolve(closed, status="open"))
        assert info.value.key == "open_thread"
        uow.threads.update(attrs.evolve(open_, conversation_id="c1"))  # its own key is no clash
        uow.threads.update(attrs.evolve(closed, channel="email", status="open"))
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert uow.threads.count(status="open") == 2


def test_get_or_create_clash_on_another_key(any_store: SQLStore) -> None:
    with any_store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1", email_key="a@example.com"))
        with pytest.raises(UniqueViolation) as info:
            uow.leads.get_or_create(model.Lead(phone="+2", email_key="a@example.com"), key="phone")
        assert info.value.key == "email_key"
        uow.commit()


def test_find_on_json_and_tuple_fields(any_store: SQLStore) -> None:
    campaign = sample_record("campaigns")
    with any_store.unit_of_work() as uow:
        uow.campaigns.add(campaign)
        uow.campaigns.add(sample_record("campaigns", id=model.new_id(), name="other", keywords=()))
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert uow.campaigns.find(keywords=("JOIN", "SPRING")) == [campaign]
        assert uow.campaigns.count(metadata={"owner": "ops"}) == 2
        assert len(uow.campaigns.find(metadata={"owner": "ops"}, limit=1)) == 1


def test_mapping_proxy_metadata_is_stored(any_store: SQLStore) -> None:
    lead = model.Lead(phone="+1", metadata=MappingProxyType({"a": 1}))
    with any_store.unit_of_work() as uow:
        uow.leads.add(lead)
        uow.commit()
    with any_store.unit_of_work() as uow:
        got = uow.leads.get(lead.id)
        assert got is not None
        assert got.metadata == {"a": 1}


def test_order_by_nullable_puts_missing_last(any_store: SQLStore) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with any_store.unit_of_work() as uow:
        for i, occurred in enumerate([t0, None, t0 + timedelta(hours=1)]):
            uow.events.add(
                model.CommunicationEvent(
                    channel="sms", provider="twilio", event_type="x", dedupe_key=f"k{i}", occurred_at=occurred
                )
            )
        uow.commit()
    with any_store.unit_of_work() as uow:
        up = [e.dedupe_key for e in uow.events.find(order_by="occurred_at")]
        down = [e.dedupe_key for e in uow.events.find(order_by="occurred_at", descending=True)]
        assert up == ["k0", "k2", "k1"]
        assert down == ["k2", "k0", "k1"]
        assert uow.events.count(occurred_at=Range()) == 2


def test_naive_range_bounds_are_utc(any_store: SQLStore) -> None:
    t0 = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    with any_store.unit_of_work() as uow:
        uow.events.add(model.CommunicationEvent(channel="sms", provider="p", event_type="x", recorded_at=t0))
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert uow.events.count(recorded_at=Range(datetime(2026, 1, 1, 11), datetime(2026, 1, 1, 13))) == 1
        local = timezone(timedelta(hours=5))
        window = Range(datetime(2026, 1, 1, 16, 59, tzinfo=local), datetime(2026, 1, 1, 17, 1, tzinfo=local))
        assert uow.events.count(recorded_at=window) == 1


def test_repository_needs_with_block(any_store: SQLStore) -> None:
    uow = any_store.unit_of_work()
    with pytest.raises(RuntimeError):
        uow.leads.count()


def test_unit_of_work_can_be_entered_again(any_store: SQLStore) -> None:
    uow = any_store.unit_of_work()
    with uow:
        uow.leads.add(model.Lead(phone="+1"))
        uow.commit()
    with uow:
        assert uow.leads.count() == 1


def test_rows_are_plain_columns(any_store: SQLStore) -> None:
    """Hosts may query the tables directly: one column per field, JSON where it is structured."""
    message = sample_record("messages")
    with any_store.unit_of_work() as uow:
        uow.messages.add(message)
        uow.commit()
    table = sa.Table("messages", sa.MetaData(schema=any_store.schema), autoload_with=any_store.engine)
    with any_store.engine.connect() as conn:
        row = conn.execute(sa.select(table.c.body, table.c.media)).one()
    assert row.body == "Héllo 👋"
    assert row.media == [{"url": "https://example.com/a.jpg", "content_type": "image/jpeg"}]


# -- options and URLs --------------------------------------------------------------


def test_open_store_picks_the_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    monkeypatch.setenv("COMMPROC_DATABASE_URL", "memory://")
    assert isinstance(open_store(), MemoryStore)
    monkeypatch.setenv("COMMPROC_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    store = open_store()
    assert isinstance(store, SQLStore)
    with store.unit_of_work() as uow:  # SQLite creates its schema by default
        assert uow.leads.count() == 0
    store.close()
    monkeypatch.delenv("COMMPROC_DATABASE_URL")
    monkeypatch.chdir(tmp_path)
    store = open_store()
    assert isinstance(store, SQLStore)
    assert store.engine.url.database == "commproc.db"
    store.close()


def test_plain_postgresql_url_means_psycopg() -> None:
    store = SQLStore("postgresql://user:secret@127.0.0.1:1/x")
    assert store.engine.url.drivername == "postgresql+psycopg"
    assert "secret" not in repr(store)
    store.close()


def test_bad_options() -> None:
    with pytest.raises(ConfigError):
        SQLStore("sqlite://", schema="other")
    with pytest.raises(ConfigError):
        SQLStore("sqlite://", table_prefix="bad-prefix;")
    with pytest.raises(ConfigError):
        SQLStore("not a url")


def test_host_engine_is_not_disposed(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'host.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE host_things (id INTEGER PRIMARY KEY)")
    store = SQLStore(engine, table_prefix="commproc_", auto_upgrade=True)
    with store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        with pytest.raises(ValueError), uow.savepoint():
            uow.leads.add(model.Lead(phone="+2"))
            raise ValueError
        uow.commit()
    store.close()
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert conn.exec_driver_sql("SELECT count(*) FROM commproc_leads").scalar() == 1
        # The host's own transactions still roll back, and its journal mode is its own.
        conn.exec_driver_sql("INSERT INTO host_things VALUES (1)")
        conn.rollback()
        assert conn.exec_driver_sql("SELECT count(*) FROM host_things").scalar() == 0
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("INSERT INTO host_things VALUES (2)")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM host_things").scalar() == 1
    assert {"host_things", "commproc_leads", "commproc_commproc_schema_version"} <= names


def test_sqlite_store_unavailable_when_file_cannot_open(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}", auto_upgrade=True)
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable), store.unit_of_work() as uow:
        uow.leads.count()
