"""The channel contract: what every channel must do in the pipeline, as tests a plugin subclasses.

::

    from commproc_core.testing.channel_contract import ChannelContract

    class TestVoiceContract(ChannelContract):
        processor_class = VoiceProcessor
        config = {"auth_tokens": []}

        def valid_bodies(self):
            return [call_status("completed"), recording("completed")]

        def invalid_bodies(self):
            return [{"CallStatus": "completed"}]          # no CallSid

The tests run each body through ``receive_messages`` and ``process_batch``
on a :class:`~commproc_core.queues.MemoryQueue`, over a store from
:meth:`ChannelContract.new_store` (a MemoryStore; override it to run on a
SQL store), and check:

* every valid body is processed, recorded (a communication event with its
  dedupe key, a processing record) and acknowledged;
* dedupe keys are stable: the same body redelivered (same queue message,
  after a crash before the delete) or sent again (a new queue message)
  is a duplicate and changes nothing but its processing record;
* invalid bodies are rejected for good: a failed communication event and
  processing record with the error code, acknowledged, never retried;
* the store being down leaves every message on the queue with nothing
  recorded, and the messages go through once it is back;
* nothing is written outside the batch's unit of work (see
  :class:`~commproc_core.testing.guards.GuardedStore`);
* a batch records what its messages record one by one.

Any object meeting :class:`~commproc_core.ports.ChannelProcessor` can be
tested, not only BaseChannelProcessor subclasses: override
:meth:`ChannelContract.make_processor` to build it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from commproc_core.pipeline.stats import OUTCOMES
from commproc_core.ports import Store
from commproc_core.queues.memory import MemoryQueue
from commproc_core.stores.memory import MemoryStore
from commproc_core.testing.guards import FlakyStore, GuardedStore
from commproc_core.testing.helpers import FixedClock, body, table_counts

__all__ = ["ChannelContract", "ContractRun"]

#: Channel methods a GuardedStore watches, when the processor has them.
CHANNEL_CODE = ("authenticate", "validate_event", "prefetch", "process_event")


class ContractRun:
    """A processor on a MemoryQueue with a clock the test moves, as the contract tests drive it."""

    def __init__(self, processor: Any, queue: MemoryQueue, clock: list[float]) -> None:
        self.processor = processor
        self.queue = queue
        self._clock = clock

    def send(self, bodies: Sequence[Any]) -> None:
        self.queue.send_batch([body(b) for b in bodies])

    def later(self, seconds: float = 100_000) -> None:
        """Move the queue's clock, so messages left invisible come back."""
        self._clock[0] += seconds

    def batch(self, *, acknowledge: bool = True) -> list[Any]:
        """Receive one batch and process it; its outcomes."""
        messages = self.processor.receive_messages(max_messages=10, wait_time=0)
        if not messages:
            return []
        return list(self.processor.process_batch(messages, acknowledge=acknowledge).outcomes)

    def drain(self) -> list[Any]:
        """Process batches until the queue has nothing visible; every outcome, in order."""
        outcomes: list[Any] = []
        while batch := self.batch():
            outcomes.extend(batch)
        return outcomes


class ChannelContract:
    """Subclass as ``Test...`` and provide the channel; see the module docstring."""

    #: The processor class; built as ``processor_class(queue.url, config, store=..., queue=..., clock=...)``.
    processor_class: ClassVar[type[Any] | None] = None
    config: ClassVar[Mapping[str, Any]] = {}

    def valid_bodies(self) -> Sequence[Any]:
        """Queue message bodies the channel processes: each yields at least one processed event."""
        raise NotImplementedError(f"{type(self).__name__} must list valid_bodies()")

    def invalid_bodies(self) -> Sequence[Any]:
        """Bodies the channel must reject permanently (a missing id, an unknown event shape...)."""
        raise NotImplementedError(f"{type(self).__name__} must list invalid_bodies()")

    def make_processor(self, store: Store, queue: MemoryQueue, clock: FixedClock) -> Any:
        """The processor under test, reading ``queue`` and recording into ``store``."""
        if self.processor_class is None:
            raise NotImplementedError(f"{type(self).__name__}: set processor_class or make_processor")
        return self.processor_class(queue.url, dict(self.config), store=store, queue=queue, clock=clock)

    def new_store(self, directory: Path) -> Store:
        """An empty store for one test (a MemoryStore); override for a SQL store kept in ``directory``."""
        del directory
        return MemoryStore()

    @pytest.fixture
    def contract_store(self, tmp_path: Path) -> Iterator[Store]:
        store = self.new_store(tmp_path)
        yield store
        store.close()

    # -- helpers ----------------------------------------------------------------------

    def run_on(self, store: Store) -> ContractRun:
        now = [0.0]
        queue = MemoryQueue("memory://contract", visibility_timeout=30, clock=lambda: now[0])
        processor = self.make_processor(store, queue, FixedClock())
        return ContractRun(processor, queue, now)

    def _watch(self, processor: Any, guard: GuardedStore) -> None:
        for name in CHANNEL_CODE:
            method = getattr(processor, name, None)
            if callable(method):
                setattr(processor, name, _marked(guard, name, method))

    def _one_by_one(self, store: Store, bodies: Sequence[Any]) -> list[Any]:
        """Each body as a batch of its own; every message must be acknowledged."""
        run = self.run_on(store)
        outcomes = []
        for item in bodies:
            run.send([item])
            found = run.drain()
            assert len(found) == 1, f"one body gave {len(found)} outcomes"
            outcomes.append(found[0])
            _assert_queue_empty(run.queue)
        run.processor.close()
        return outcomes

    # -- the contract --------------------------------------------------------------------

    def test_contract_has_examples(self) -> None:
        assert self.valid_bodies(), "valid_bodies() is empty: the contract would prove nothing"
        assert self.invalid_bodies(), "invalid_bodies() is empty: the contract would prove nothing"

    def test_valid_bodies_are_processed_recorded_and_acknowledged(self, contract_store: Store) -> None:
        outcomes = self._one_by_one(contract_store, self.valid_bodies())
        with contract_store.unit_of_work() as uow:
            for number, outcome in enumerate(outcomes):
                where = f"valid body #{number}"
                assert outcome.outcome == "processed", f"{where}: {outcome.outcome} ({outcome.reason})"
                assert outcome.events, f"{where}: processed, but no communication event returned"
                for event in outcome.events:
                    stored = uow.events.get(event.id)
                    assert stored is not None, f"{where}: event {event.event_type} not stored"
                    assert stored.dedupe_key, f"{where}: event {event.event_type} stored without a dedupe key"
                records = uow.processing_records.find(queue_message_id=outcome.message_id)
                assert records, f"{where}: no processing record"

    def test_dedupe_keys_are_stable_across_redelivery(self, contract_store: Store) -> None:
        for number, item in enumerate(self.valid_bodies()):
            where = f"valid body #{number}"
            run = self.run_on(contract_store)
            run.send([item])
            (first,) = run.batch(acknowledge=False)  # committed, then "crashed" before the delete
            assert first.outcome == "processed", f"{where}: {first.outcome} ({first.reason})"
            before = table_counts(contract_store)
            run.later()
            (again,) = run.batch()
            assert again.outcome == "duplicate", f"{where}: a redelivery was {again.outcome}, not duplicate"
            assert [e.dedupe_key for e in again.events] == [e.dedupe_key for e in first.events], where
            run.send([item])  # the provider sends it again: a new queue message
            (resent,) = run.drain()
            assert resent.outcome == "duplicate", f"{where}: the same body sent again was {resent.outcome}"
            after = table_counts(contract_store)
            changed = {t: (before[t], after[t]) for t in before if before[t] != after[t]}
            changed.pop("processing_records", None)
            assert not changed, f"{where}: a duplicate changed tables {changed}"
            _assert_queue_empty(run.queue)
            run.processor.close()

    def test_invalid_bodies_are_rejected_for_good(self, contract_store: Store) -> None:
        before = table_counts(contract_store)
        outcomes = self._one_by_one(contract_store, self.invalid_bodies())
        with contract_store.unit_of_work() as uow:
            for number, outcome in enumerate(outcomes):
                where = f"invalid body #{number}"
                assert outcome.outcome == "rejected", f"{where}: {outcome.outcome}, not rejected"
                assert outcome.reason, f"{where}: rejected without an error code"
                failed = uow.events.find(queue_message_id=outcome.message_id, status="failed")
                assert failed, f"{where}: no failed communication event recorded"
                assert all(e.error_code for e in failed), f"{where}: a failed event without its error code"
                records = uow.processing_records.find(queue_message_id=outcome.message_id, status="failed")
                assert records, f"{where}: no failed processing record"
        after = table_counts(contract_store)
        touched = {t for t in after if after[t] != before[t]} - {"events", "processing_records"}
        assert not touched, f"rejected bodies wrote to {sorted(touched)}"

    @pytest.mark.parametrize("fail_on", ["connect", "read", "commit"])
    def test_store_down_leaves_every_message_for_retry(self, contract_store: Store, fail_on: str) -> None:
        flaky = FlakyStore(contract_store, fail_on)
        run = self.run_on(flaky)
        bodies = list(self.valid_bodies())[:10]
        before = table_counts(contract_store)
        run.send(bodies)
        flaky.failing = True
        outcomes = run.batch()
        assert outcomes and all(o.outcome == "retry" for o in outcomes), [o.outcome for o in outcomes]
        assert table_counts(contract_store) == before, "a batch that failed left records behind"
        assert run.queue.approximate_depth() + run.queue.in_flight() == len(bodies), "messages were deleted"
        flaky.failing = False
        run.later()
        recovered = run.drain()
        assert sorted(o.outcome for o in recovered) == ["processed"] * len(bodies)
        _assert_queue_empty(run.queue)
        run.processor.close()

    def test_no_writes_outside_the_unit_of_work(self, contract_store: Store) -> None:
        guard = GuardedStore(contract_store)
        run = self.run_on(guard)
        self._watch(run.processor, guard)
        run.send([*self.valid_bodies(), *self.invalid_bodies()])
        run.drain()
        run.processor.close()
        assert not guard.violations, "writes outside the batch's unit of work: " + "; ".join(guard.violations)

    def test_every_outcome_is_recorded(self, contract_store: Store) -> None:
        bodies = [*self.valid_bodies(), *self.invalid_bodies()]
        run = self.run_on(contract_store)
        run.send(bodies)
        outcomes = run.drain()
        run.processor.close()
        assert len(outcomes) == len(bodies)
        with contract_store.unit_of_work() as uow:
            for outcome in outcomes:
                assert outcome.outcome in OUTCOMES, outcome.outcome
                records = uow.processing_records.find(queue_message_id=outcome.message_id)
                assert records, f"queue message {outcome.message_id} ({outcome.outcome}) left no record"
                for event in outcome.events:
                    assert uow.events.get(event.id) is not None, f"an event of {outcome.outcome} not stored"

    def test_a_batch_records_what_its_messages_record_one_by_one(
        self, contract_store: Store, tmp_path: Path
    ) -> None:
        bodies = [*self.valid_bodies(), *self.invalid_bodies()][:10]
        run = self.run_on(contract_store)
        run.send(bodies)
        together = run.batch()
        run.processor.close()
        (tmp_path / "one-by-one").mkdir()
        alone_store = self.new_store(tmp_path / "one-by-one")
        try:
            alone = self._one_by_one(alone_store, bodies)
            assert sorted(o.outcome for o in together) == sorted(o.outcome for o in alone)
            assert table_counts(contract_store) == table_counts(alone_store)
        finally:
            alone_store.close()


def _marked(guard: GuardedStore, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def marked(*args: Any, **kwargs: Any) -> Any:
        with guard.channel_code(name):
            return method(*args, **kwargs)

    return marked


def _assert_queue_empty(queue: MemoryQueue) -> None:
    assert queue.approximate_depth() == 0 and queue.in_flight() == 0, (
        f"messages left on the queue: {queue.approximate_depth()} waiting, {queue.in_flight()} in flight"
    )
