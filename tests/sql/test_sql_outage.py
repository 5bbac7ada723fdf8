"""Lost connections and unreachable databases: StoreUnavailable, nothing half-written, then recovery."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa

from commproc_core import model
from commproc_core.errors import StoreUnavailable, TransientError, UniqueViolation
from commproc_core.stores.sql import SQLStore, upgrade


@pytest.fixture
def app_name() -> str:
    return f"commproc-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_store(pg_url: str, pg_schema: str, app_name: str) -> Iterator[SQLStore]:
    upgrade(pg_url, schema=pg_schema)
    store = SQLStore(
        pg_url, schema=pg_schema, engine_options={"connect_args": {"application_name": app_name}}
    )
    yield store
    store.close()


def _kill_backends(pg_url: str, app_name: str) -> int:
    """Terminate the store's server processes from another connection, as a DBA or failover would."""
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE application_name = :app AND pid <> pg_backend_pid()"
                ),
                {"app": app_name},
            ).scalar_one()
    finally:
        engine.dispose()
    return int(killed)


@pytest.mark.postgres
def test_backend_killed_mid_unit_of_work(pg_store: SQLStore, pg_url: str, app_name: str) -> None:
    first = model.Lead(phone="+14155550100")
    with pg_store.unit_of_work() as uow:
        uow.leads.add(first)
        assert _kill_backends(pg_url, app_name) == 1
        with pytest.raises(StoreUnavailable) as info:
            uow.leads.add(model.Lead(phone="+14155550101"))
        assert isinstance(info.value, TransientError)
        # Broken until rolled back: later writes must not start a fresh transaction.
        with pytest.raises(StoreUnavailable):
            uow.leads.add(model.Lead(phone="+14155550102"))
        with pytest.raises(StoreUnavailable):
            uow.commit()
    with pg_store.unit_of_work() as uow:
        assert uow.leads.count() == 0  # nothing of the lost unit of work
        uow.leads.add(first)
        uow.commit()
    with pg_store.unit_of_work() as uow:
        assert uow.leads.get(first.id) == first


@pytest.mark.postgres
def test_backend_killed_inside_savepoint(pg_store: SQLStore, pg_url: str, app_name: str) -> None:
    with pg_store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        with pytest.raises(StoreUnavailable), uow.savepoint():
            uow.leads.add(model.Lead(phone="+2"))
            _kill_backends(pg_url, app_name)
            uow.leads.count()
        # rollback() clears the broken state; the same unit of work goes on.
        uow.rollback()
        uow.leads.add(model.Lead(phone="+3"))
        uow.commit()
    with pg_store.unit_of_work() as uow:
        assert [lead.phone for lead in uow.leads.find()] == ["+3"]


@pytest.mark.postgres
def test_backend_killed_before_commit(pg_store: SQLStore, pg_url: str, app_name: str) -> None:
    with pg_store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        _kill_backends(pg_url, app_name)
        with pytest.raises(StoreUnavailable):
            uow.commit()
    with pg_store.unit_of_work() as uow:
        assert uow.leads.count() == 0


@pytest.mark.postgres
def test_idle_pooled_connection_killed_is_replaced(pg_store: SQLStore, pg_url: str, app_name: str) -> None:
    with pg_store.unit_of_work() as uow:
        uow.leads.add(model.Lead(phone="+1"))
        uow.commit()
    assert _kill_backends(pg_url, app_name) >= 1
    pg_store.ping()
    with pg_store.unit_of_work() as uow:  # pool_pre_ping swaps the dead connection silently
        assert uow.leads.count() == 1


def test_unreachable_server() -> None:
    # Port 1 on the loopback: refused at once, nothing leaves the machine.
    store = SQLStore(
        "postgresql://postgres@127.0.0.1:1/test", engine_options={"connect_args": {"connect_timeout": 2}}
    )
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable), store.unit_of_work() as uow:
        uow.leads.count()
    with pytest.raises(StoreUnavailable):
        upgrade(store.engine)
    store.close()


def test_sqlite_lock_timeout_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    holder = SQLStore(url, auto_upgrade=True)
    waiter = SQLStore(url, engine_options={"connect_args": {"timeout": 0.2}})
    with holder.unit_of_work() as held:
        held.leads.add(model.Lead(phone="+1"))  # holds SQLite's write lock
        with waiter.unit_of_work() as uow, pytest.raises(StoreUnavailable):
            uow.leads.add(model.Lead(phone="+2"))
        held.commit()
    with waiter.unit_of_work() as uow:
        assert uow.leads.count() == 1
    holder.close()
    waiter.close()


@pytest.mark.postgres
@pytest.mark.parametrize("other_commits", [True, False])
def test_update_losing_a_key_race_is_transient(pg_url: str, pg_schema: str, other_commits: bool) -> None:
    """The clashing row is not committed when our update checks: PostgreSQL then waits and decides."""
    store = SQLStore(pg_url, schema=pg_schema, auto_upgrade=True)
    mine = model.Lead(phone="+14155550100")
    with store.unit_of_work() as uow:
        uow.leads.add(mine)
        uow.commit()
    theirs = store.unit_of_work()
    theirs.__enter__()
    theirs.leads.add(model.Lead(phone="+14155550199"))  # holds the key, uncommitted

    def finish() -> None:
        time.sleep(0.5)
        theirs.commit() if other_commits else theirs.rollback()

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        with store.unit_of_work() as uow:
            moved = attrs.evolve(mine, phone="+14155550199")
            if other_commits:
                with pytest.raises(StoreUnavailable, match="lost a race for unique key 'phone'"):
                    uow.leads.update(moved)
                uow.rollback()
                with pytest.raises(UniqueViolation) as info:  # the retry sees the clash
                    uow.leads.update(moved)
                assert info.value.key == "phone"
            else:
                uow.leads.update(moved)
                uow.commit()
    finally:
        finisher.join()
        theirs.__exit__(None, None, None)
    with store.unit_of_work() as uow:
        assert uow.leads.count(phone="+14155550199") == 1
    store.close()
