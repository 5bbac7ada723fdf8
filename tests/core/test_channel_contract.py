"""The channel contract test base: the example channel meets it, and channels that break it are caught."""

from __future__ import annotations

import uuid
from pathlib import Path

import attrs
import pytest

from commproc_core.errors import StoreUnavailable
from commproc_core.model import Lead
from commproc_core.stores import MemoryStore
from commproc_core.stores.sql import SQLStore
from commproc_core.testing import ExampleEvent, ExampleProcessor
from commproc_core.testing.channel_contract import ChannelContract
from commproc_core.testing.guards import FlakyStore, GuardedStore

VALID = [
    {"id": "e1", "from": "+14155550100", "text": "hi"},
    {"id": "e2", "from": "+14155550101", "type": "status"},
    [{"id": "e3", "from": "+14155550102"}, {"id": "e4", "from": "+14155550102", "text": "again"}],
]
INVALID = [{"from": "+14155550100"}, "{not json", {"id": "x", "from": "+14155550100", "type": "fax"}]


class TestExampleContract(ChannelContract):
    processor_class = ExampleProcessor

    def valid_bodies(self):
        return VALID

    def invalid_bodies(self):
        return INVALID


class TestExampleContractOnSQLite(TestExampleContract):
    def new_store(self, directory: Path):
        return SQLStore(f"sqlite:///{directory / 'contract.db'}", auto_upgrade=True)


# -- channels that break the contract, and the contract test that catches each -----------------


class LeakyProcessor(ExampleProcessor):
    """Records a lead in a transaction of its own: it survives a rollback of the batch."""

    def process_event(self, event_data):
        with self.store.unit_of_work() as uow:
            uow.leads.add(Lead(phone=None, source="side"))
            uow.commit()
        return super().process_event(event_data)


@attrs.frozen
class RandomKeyEvent(ExampleEvent):
    @property
    def dedupe_key(self) -> str:
        return f"example:{uuid.uuid4().hex}"  # a new key every time it is asked for


class ForgetfulProcessor(ExampleProcessor):
    """Keys events by something that changes on every delivery."""

    def validate_event(self, event_data):
        return [RandomKeyEvent(**attrs.asdict(e)) for e in super().validate_event(event_data)]


class RetryingProcessor(ExampleProcessor):
    """Crashes on a payload without an id, so the pipeline leaves it for a retry instead of rejecting it."""

    def validate_event(self, event_data):
        if isinstance(event_data.data, dict) and "id" not in event_data.data:
            raise KeyError("id")
        return super().validate_event(event_data)


def contract_for(processor_class) -> TestExampleContract:
    contract = TestExampleContract()
    contract.processor_class = processor_class  # type: ignore[misc]
    return contract


def test_catches_writes_outside_the_unit_of_work() -> None:
    with pytest.raises(AssertionError, match="leads.add in a unit of work opened inside process_event"):
        contract_for(LeakyProcessor).test_no_writes_outside_the_unit_of_work(MemoryStore())


def test_catches_unstable_dedupe_keys() -> None:
    with pytest.raises(AssertionError, match="a redelivery was processed, not duplicate"):
        contract_for(ForgetfulProcessor).test_dedupe_keys_are_stable_across_redelivery(MemoryStore())


def test_catches_invalid_payloads_left_for_retry() -> None:
    with pytest.raises(AssertionError, match="messages left on the queue: 0 waiting, 1 in flight"):
        contract_for(RetryingProcessor).test_invalid_bodies_are_rejected_for_good(MemoryStore())


def test_the_example_channel_passes_with_a_store_that_fails_on_cue() -> None:
    # The flaky store itself: down, then back.
    store = MemoryStore()
    flaky = FlakyStore(store, "read")
    flaky.failing = True
    with pytest.raises(StoreUnavailable), flaky.unit_of_work() as uow:
        uow.leads.find()
    flaky.failing = False
    with flaky.unit_of_work() as uow:
        assert uow.leads.find() == []


def test_guard_allows_writes_after_commit() -> None:
    class AfterCommitWriter(ExampleProcessor):
        def after_commit(self, outcomes):
            with self.store.unit_of_work() as uow:
                uow.leads.add(Lead(source="after-commit"))
                uow.commit()

    store = MemoryStore()
    contract_for(AfterCommitWriter).test_no_writes_outside_the_unit_of_work(store)
    with store.unit_of_work() as uow:
        assert uow.leads.count(source="after-commit") > 0


def test_guard_names_writes_in_a_nested_unit_of_work() -> None:
    guard = GuardedStore(MemoryStore())
    with guard.unit_of_work() as outer:
        outer.leads.add(Lead(source="batch"))
        with guard.unit_of_work() as inner:
            inner.leads.add(Lead(source="side"))
            inner.commit()
        outer.commit()
    assert guard.violations == ["leads.add in a unit of work opened while the batch's unit of work was open"]
