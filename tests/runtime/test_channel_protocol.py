"""A processor written against the ChannelProcessor protocol alone (no BaseChannelProcessor) in the runtime.

It goes through the worker, the Lambda handler (built directly and by a
factory) and replay, and meets the channel contract.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import attrs
import pytest
from runtime_support import wait_for

from commproc_core import ProcessorFactory
from commproc_core.errors import TransientError
from commproc_core.lambda_handler import make_handler
from commproc_core.model import CommunicationEvent, ProcessingRecord, QueueMessage
from commproc_core.ports import ChannelProcessor, MessageQueue, Store, VisibilityChange
from commproc_core.queues import MemoryQueue
from commproc_core.runtime.replay import ReplayInput, replay
from commproc_core.runtime.worker import Worker
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock, table_counts
from commproc_core.testing.channel_contract import ChannelContract


@attrs.frozen
class NoteSettings:
    batch_size: int = 10
    wait_time: int = 0


@attrs.frozen(kw_only=True)
class NoteOutcome:
    message_id: str
    receipt_handle: str
    outcome: str
    reason: str | None = None
    events: tuple[CommunicationEvent, ...] = ()
    duplicates: tuple[bool, ...] = ()


@attrs.frozen
class NoteCounts:
    retried: int
    elapsed: float


@attrs.frozen
class NoteReport:
    outcomes: tuple[NoteOutcome, ...]
    stats: NoteCounts


class NoteProcessor:
    """Records ``{"id": ..., "text": ...}`` notes; its own loop, its own records, no base class."""

    channel_type = "note"

    def __init__(
        self,
        queue_url: str | None = None,
        config: dict[str, Any] | None = None,
        *,
        store: Store | None = None,
        queue: MessageQueue | None = None,
        clock: Any = None,
    ) -> None:
        self.queue_url = queue_url or (queue.url if queue is not None else None)
        self.settings = NoteSettings(**(config or {}))
        self.clock = clock or FixedClock()
        self._store = store
        self._queue = queue
        self.closed = False

    @property
    def store(self) -> Store:
        assert self._store is not None, "a note processor needs a store"
        return self._store

    @property
    def queue(self) -> MessageQueue:
        assert self._queue is not None, "no queue: this note processor only processes batches handed to it"
        return self._queue

    def receive_messages(self, max_messages: int = 10, wait_time: int = 20) -> list[QueueMessage]:
        return self.queue.receive(max_messages=max_messages, wait_time_seconds=wait_time)

    def process_batch(self, messages: Sequence[QueueMessage], *, acknowledge: bool = True) -> NoteReport:
        started = time.perf_counter()
        try:
            with self.store.unit_of_work() as uow:
                outcomes = [self._one(uow, message) for message in messages]
                uow.commit()
        except TransientError as exc:
            outcomes = [
                NoteOutcome(
                    message_id=m.message_id, receipt_handle=m.receipt_handle, outcome="retry", reason=exc.code
                )
                for m in messages
            ]
        if acknowledge:
            self.acknowledge(outcomes)
        retried = sum(1 for o in outcomes if o.outcome == "retry")
        return NoteReport(tuple(outcomes), NoteCounts(retried, time.perf_counter() - started))

    def acknowledge(self, outcomes: Sequence[NoteOutcome]) -> None:
        done = [o.receipt_handle for o in outcomes if o.outcome != "retry"]
        if done:
            self.queue.delete_batch(done)
        retry = [VisibilityChange(o.receipt_handle, 60) for o in outcomes if o.outcome == "retry"]
        if retry:
            self.queue.change_visibility_batch(retry)

    def _record(
        self, uow: Any, message: QueueMessage, status: str, key: str, code: str | None = None
    ) -> None:
        now = self.clock.now()
        record, created = uow.processing_records.get_or_create(
            ProcessingRecord(
                channel="note",
                queue_message_id=message.message_id,
                status=status,
                attempts=message.receive_count,
                dedupe_key=key,
                error_code=code,
                received_at=now,
                processed_at=now,
            ),
            key="queue_item",
        )
        if not created:
            uow.processing_records.update(attrs.evolve(record, attempts=record.attempts + 1))

    def _one(self, uow: Any, message: QueueMessage) -> NoteOutcome:
        ids = {"message_id": message.message_id, "receipt_handle": message.receipt_handle}
        try:
            data = json.loads(message.body)
            note_id = data["id"]
            if not isinstance(note_id, str):
                raise TypeError("id")
        except (ValueError, KeyError, TypeError):
            key = f"failed:note:{message.message_id}"
            failed = uow.events.find_one(dedupe_key=key) or uow.events.add(
                CommunicationEvent(
                    channel="note",
                    provider="notes",
                    event_type="invalid",
                    status="failed",
                    dedupe_key=key,
                    queue_message_id=message.message_id,
                    error_code="invalid_payload",
                    recorded_at=self.clock.now(),
                )
            )
            self._record(uow, message, "failed", key, "invalid_payload")
            return NoteOutcome(
                **ids, outcome="rejected", reason="invalid_payload", events=(failed,), duplicates=(False,)
            )
        key = f"notes:{note_id}"
        existing = uow.events.find_one(dedupe_key=key)
        if existing is not None:
            self._record(uow, message, "duplicate", key)
            return NoteOutcome(**ids, outcome="duplicate", events=(existing,), duplicates=(True,))
        event = uow.events.add(
            CommunicationEvent(
                channel="note",
                provider="notes",
                event_type="note",
                dedupe_key=key,
                provider_message_id=note_id,
                queue_message_id=message.message_id,
                recorded_at=self.clock.now(),
                data={"length": len(str(data.get("text", "")))},
            )
        )
        self._record(uow, message, "processed", key)
        return NoteOutcome(**ids, outcome="processed", events=(event,), duplicates=(False,))

    def close(self) -> None:
        self.closed = True


def note(note_id: str, text: str = "hello") -> str:
    return json.dumps({"id": note_id, "text": text})


def test_it_is_a_channel_processor_without_the_base_class() -> None:
    from commproc_core import BaseChannelProcessor

    processor: ChannelProcessor = NoteProcessor(store=MemoryStore(), queue=MemoryQueue())
    assert not isinstance(processor, BaseChannelProcessor)


def test_through_the_worker() -> None:
    store, queue = MemoryStore(), MemoryQueue("memory://notes")
    queue.send_batch([note("n1"), note("n2"), note("n1"), "{broken"])
    processor = NoteProcessor(queue=queue, store=store)
    worker = Worker([processor], pollers=2)
    worker.start()
    wait_for(lambda: queue.approximate_depth() == 0 and queue.in_flight() == 0)
    assert worker.drain() is True
    assert processor.closed
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 2
        assert uow.events.count(status="failed") == 1
        assert uow.processing_records.count() == 4


def sqs_event(*bodies: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"rh{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:notes",
            }
            for index, body in enumerate(bodies)
        ]
    }


def test_through_the_lambda_handler_built_by_a_factory() -> None:
    store = MemoryStore()
    factory = ProcessorFactory(store)
    factory.register_processor("note", NoteProcessor)
    handler = make_handler("note", config={}, factory=factory)
    assert type(handler.processor) is NoteProcessor and handler.processor.store is store
    assert handler(sqs_event(note("a"), note("a"), "[]"), None) == {"batchItemFailures": []}
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 1
        assert uow.events.count(status="failed") == 1


def test_the_lambda_handler_reports_a_store_outage_as_item_failures() -> None:
    from commproc_core.testing.guards import FlakyStore

    flaky = FlakyStore(MemoryStore(), "commit")
    flaky.failing = True
    handler = make_handler(processor=NoteProcessor(store=flaky))
    failures = handler(sqs_event(note("a"), note("b")), None)["batchItemFailures"]
    assert failures == [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]
    assert table_counts(flaky.inner)["events"] == 0


def test_through_replay() -> None:
    store = MemoryStore()
    processor = NoteProcessor(store=store)
    results = replay(
        processor,
        [
            ReplayInput(source="1.json", body=note("r1")),
            ReplayInput(source="2.json", body=note("r1")),
            ReplayInput(source="3.json", body="nope"),
        ],
    )
    assert [(r.source, r.outcome, r.reason) for r in results] == [
        ("1.json", "processed", None),
        ("2.json", "duplicate", None),
        ("3.json", "rejected", "invalid_payload"),
    ]
    assert results[0].events[0]["dedupe_key"] == "notes:r1"


def test_registering_a_class_that_is_no_processor_names_what_it_lacks() -> None:
    class NotAProcessor:
        def receive_messages(self) -> list[Any]:
            return []

    with pytest.raises(TypeError, match="it has no process_batch, close"):
        ProcessorFactory().register_processor("nope", NotAProcessor)


class TestNoteContract(ChannelContract):
    def make_processor(self, store, queue, clock):
        return NoteProcessor(queue.url, {}, store=store, queue=queue, clock=clock)

    def valid_bodies(self):
        return [note("c1"), note("c2", "more")]

    def invalid_bodies(self):
        return ["{not json", json.dumps({"text": "no id"})]


class CarelessNoteProcessor(NoteProcessor):
    """Acknowledges a batch the store refused: its messages are lost."""

    def process_batch(self, messages, *, acknowledge=True):
        report = super().process_batch(messages, acknowledge=False)
        fake = tuple(attrs.evolve(o, outcome="processed") for o in report.outcomes)
        if acknowledge:
            self.acknowledge(fake)
        return NoteReport(fake, NoteCounts(0, report.stats.elapsed))


def test_the_contract_catches_a_processor_that_loses_messages_when_the_store_is_down() -> None:
    class CarelessContract(TestNoteContract):
        def make_processor(self, store, queue, clock):
            return CarelessNoteProcessor(queue.url, {}, store=store, queue=queue, clock=clock)

    with pytest.raises(AssertionError, match="processed"):
        CarelessContract().test_store_down_leaves_every_message_for_retry(MemoryStore(), "commit")
