"""Schema versions: create, upgrade from version 1 with data, refuse newer or outdated schemas."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from commproc_core import model
from commproc_core.errors import SchemaVersionError
from commproc_core.stores.sql import (
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLSchema,
    SQLStore,
    create_engine,
    current_version,
    upgrade,
)
from commproc_core.stores.sql.ops import TableOps
from commproc_core.testing.store_contract import sample_record


@attrs.frozen
class Target:
    """Where a test's schema lives: URL plus the store options that select it."""

    url: str
    schema: str | None = None
    prefix: str = ""

    def options(self) -> dict[str, str | None]:
        return {"schema": self.schema, "table_prefix": self.prefix}

    def store(self, **extra: bool) -> SQLStore:
        return SQLStore(self.url, schema=self.schema, table_prefix=self.prefix, **extra)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    if request.param == "sqlite":
        return Target(f"sqlite:///{tmp_path / 'm.db'}", prefix="cp_")
    return Target(request.getfixturevalue("pg_url"), schema=request.getfixturevalue("pg_schema"))


def _indexes(target: Target) -> dict[str, set[str]]:
    engine = create_engine(target.url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {
                name: {i["name"] for i in inspector.get_indexes(name, schema=target.schema) if i["name"]}
                for name in inspector.get_table_names(schema=target.schema)
            }
    finally:
        engine.dispose()


def _columns(target: Target) -> dict[str, list[tuple[str, str, bool]]]:
    engine = create_engine(target.url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {
                name: sorted(
                    (c["name"], str(c["type"]), bool(c["nullable"]))
                    for c in inspector.get_columns(name, schema=target.schema)
                )
                for name in inspector.get_table_names(schema=target.schema)
            }
    finally:
        engine.dispose()


def test_at_least_two_versions() -> None:
    assert SCHEMA_VERSION == MIGRATIONS[-1].version >= 2
    assert [m.version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


def test_fresh_upgrade_creates_everything(target: Target) -> None:
    assert current_version(target.url, **target.options()) is None
    result = upgrade(target.url, **target.options())
    assert result.from_version is None
    assert result.to_version == SCHEMA_VERSION
    assert result.applied == tuple(range(1, SCHEMA_VERSION + 1))
    assert current_version(target.url, **target.options()) == SCHEMA_VERSION
    again = upgrade(target.url, **target.options())
    assert again.applied == ()
    assert again.from_version == again.to_version == SCHEMA_VERSION


def test_upgrade_from_version_1_keeps_data(target: Target) -> None:
    assert upgrade(target.url, target=1, **target.options()).applied == (1,)
    assert current_version(target.url, **target.options()) == 1
    schema = SQLSchema(schema=target.schema, table_prefix=target.prefix)
    events = schema.tables["events"]
    time_index = f"{target.prefix}ix_events_recorded_at"
    assert time_index not in _indexes(target)[events.table.name]

    # The v1 store refuses to work until upgraded, and says how.
    old = target.store()
    with pytest.raises(SchemaVersionError, match="commproc db upgrade"), old.unit_of_work() as uow:
        uow.leads.count()
    old.close()

    # Data written at version 1, through the tables as they were.
    lead = sample_record("leads", whatsapp_id=None)  # a column version 3 adds
    event = sample_record("events")
    engine = create_engine(target.url)
    later = {column for m in MIGRATIONS if m.version > 1 for column in m.adds_columns}
    with engine.begin() as conn:
        for name, record in (("leads", lead), ("events", event)):
            ops = TableOps(schema.tables[name], schema, engine.dialect.name)
            values = {k: v for k, v in ops.dump(record).items() if (name, k) not in later}
            conn.execute(schema.tables[name].table.insert(), values)
    engine.dispose()

    result = upgrade(target.url, **target.options())
    assert result.from_version == 1
    assert result.applied == tuple(range(2, SCHEMA_VERSION + 1))

    store = target.store()
    with store.unit_of_work() as uow:
        assert uow.leads.get(lead.id) == lead
        assert uow.events.get(event.id) == event
        newer = attrs.evolve(event, id=model.new_id(), dedupe_key="after-upgrade")
        uow.events.add(newer)
        uow.commit()
    with store.unit_of_work() as uow:
        assert [e.id for e in uow.events.find(order_by="recorded_at")] == [event.id, newer.id]
    store.close()
    assert time_index in _indexes(target)[events.table.name]


def test_upgraded_schema_equals_fresh_one(
    target: Target, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    upgrade(target.url, target=1, **target.options())
    upgrade(target.url, **target.options())
    upgraded = _indexes(target)
    fresh_target = _other_target(target, tmp_path, request)
    upgrade(fresh_target.url, **fresh_target.options())
    assert _indexes(fresh_target) == upgraded
    # The same tables with the same columns, whether built at once or step by step.
    assert _columns(fresh_target) == _columns(target)


def _other_target(target: Target, tmp_path: Path, request: pytest.FixtureRequest) -> Target:
    if target.schema is None:
        return Target(f"sqlite:///{tmp_path / 'fresh.db'}", prefix=target.prefix)
    from pg_support import postgres_schema

    context = postgres_schema(target.url)
    name = context.__enter__()
    request.addfinalizer(lambda: context.__exit__(None, None, None))
    # Index names carry no schema, so the two schemas' listings compare equal.
    return Target(target.url, schema=name)


def test_newer_schema_is_refused(target: Target) -> None:
    upgrade(target.url, **target.options())
    schema = SQLSchema(schema=target.schema, table_prefix=target.prefix)
    engine = create_engine(target.url)
    with engine.begin() as conn:
        conn.execute(
            schema.version_table.insert().values(
                version=SCHEMA_VERSION + 1, description="from the future", applied_at=model.utcnow()
            )
        )
    engine.dispose()
    with pytest.raises(SchemaVersionError, match="newer than this commproc"):
        upgrade(target.url, **target.options())
    store = target.store(auto_upgrade=True)
    with pytest.raises(SchemaVersionError, match="newer than this commproc"):
        store.check_schema()
    store.close()


def test_missing_schema_is_refused(target: Target) -> None:
    store = target.store()
    with pytest.raises(SchemaVersionError, match="no commproc schema.*commproc db upgrade"):
        with store.unit_of_work() as uow:
            uow.leads.count()
    store.close()


def test_auto_upgrade_creates_and_upgrades(target: Target) -> None:
    upgrade(target.url, target=1, **target.options())
    store = target.store(auto_upgrade=True)
    with store.unit_of_work() as uow:
        assert uow.leads.count() == 0
    store.close()
    assert current_version(target.url, **target.options()) == SCHEMA_VERSION


def test_bad_target_version(target: Target) -> None:
    with pytest.raises(ValueError):
        upgrade(target.url, target=SCHEMA_VERSION + 1, **target.options())
    upgrade(target.url, **target.options())
    with pytest.raises(SchemaVersionError, match="downgrad"):
        upgrade(target.url, target=1, **target.options())


@pytest.fixture
def two_sqlite_prefixes(tmp_path: Path) -> Iterator[tuple[SQLStore, SQLStore]]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a = SQLStore(url, table_prefix="a_", auto_upgrade=True)
    b = SQLStore(url, table_prefix="b_", auto_upgrade=True)
    yield a, b
    a.close()
    b.close()


def test_prefixes_are_isolated(two_sqlite_prefixes: tuple[SQLStore, SQLStore]) -> None:
    _check_isolated(*two_sqlite_prefixes)


@pytest.mark.postgres
def test_postgres_schemas_and_prefixes_are_isolated(pg_url: str, pg_schema: str) -> None:
    from pg_support import postgres_schema

    with postgres_schema(pg_url) as other:
        stores = [
            SQLStore(pg_url, schema=pg_schema, auto_upgrade=True),
            SQLStore(pg_url, schema=pg_schema, table_prefix="x_", auto_upgrade=True),
            SQLStore(pg_url, schema=other, auto_upgrade=True),
        ]
        try:
            _check_isolated(*stores)
        finally:
            for store in stores:
                store.close()


def _check_isolated(*stores: SQLStore) -> None:
    for i, store in enumerate(stores):
        with store.unit_of_work() as uow:
            # The same unique values in every store: no clash across them.
            uow.leads.add(model.Lead(phone="+14155550100", first_name=f"store{i}"))
            uow.conversations.get_or_create(
                model.Conversation(external_id="x", channel="sms"), key="external_id"
            )
            uow.commit()
    for i, store in enumerate(stores):
        with store.unit_of_work() as uow:
            leads = uow.leads.find()
            assert [lead.first_name for lead in leads] == [f"store{i}"]
            assert uow.conversations.count() == 1
