import pytest

from commproc_core.errors import StoreUnavailable
from commproc_core.stores import MemoryStore
from commproc_core.testing.store_contract import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()


def test_outage_raises_store_unavailable() -> None:
    store = MemoryStore()
    store.set_available(False)
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable), store.unit_of_work() as uow:
        uow.leads.count()
    store.set_available(True)
    with store.unit_of_work() as uow:
        assert uow.leads.count() == 0


def test_repository_needs_with_block() -> None:
    uow = MemoryStore().unit_of_work()
    with pytest.raises(RuntimeError):
        uow.leads.count()
