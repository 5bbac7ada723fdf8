"""The pipeline end to end on the in-memory queue and store."""

import json
import logging

import pytest

from commproc_core.errors import SignatureError, ThrottledError
from commproc_core.queues import MemoryQueue
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor, FixedClock, assert_stats, drain, table_counts


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def qclock() -> Clock:
    return Clock()


@pytest.fixture
def dlq(qclock) -> MemoryQueue:
    return MemoryQueue("memory://dlq", clock=qclock)


@pytest.fixture
def queue(qclock, dlq) -> MemoryQueue:
    return MemoryQueue(
        "memory://main", visibility_timeout=30, max_receive_count=3, dead_letter_queue=dlq, clock=qclock
    )


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def processor(queue, store) -> ExampleProcessor:
    return ExampleProcessor(queue=queue, store=store, clock=FixedClock(), config={"retry_base_seconds": 5})


def msg(i: int, **extra) -> str:
    return json.dumps({"id": f"e{i}", "from": f"+1415555{i:04d}", "text": "hello", **extra})


def test_valid_invalid_duplicate_and_transient(processor, queue, store, qclock, dlq) -> None:
    processor.inject["e3"] = ThrottledError("slow down")
    queue.send_batch([msg(1), msg(2), "{not json", json.dumps({"from": "+1"}), msg(1), msg(3)])
    stats = processor.process_messages(max_messages=10, wait_time=0)
    assert_stats(stats, received=6, processed=2, failed=2, duplicates=1, deleted=5, retried=1)
    counts = table_counts(store)
    assert counts["leads"] == 2
    assert counts["messages"] == 2
    # two processed, two failed, nothing for the transient one; the duplicate adds nothing.
    assert counts["events"] == 4
    with store.unit_of_work() as uow:
        failed = uow.events.find(status="failed")
        assert sorted(e.error_code for e in failed) == ["invalid_payload", "invalid_payload"]
        assert any("id" in (e.error_detail or "") for e in failed)
        records = uow.processing_records.find()
        assert sorted(r.status for r in records) == [
            "duplicate",
            "failed",
            "failed",
            "processed",
            "processed",
            "received",
        ]
    # The transient message is back after its backoff, fails again, and after
    # maxReceiveCount SQS-style redrive moves it to the DLQ.
    assert queue.approximate_depth() == 0
    for _ in range(3):
        qclock.t += 10_000
        processor.process_messages(wait_time=0)
    assert dlq.approximate_depth() == 1
    assert processor.calls["e3"] == 3
    assert table_counts(store)["events"] == 4


def test_transient_then_success(processor, queue, store, qclock) -> None:
    processor.inject["e1"] = ThrottledError("busy")
    queue.send(msg(1))
    first = processor.process_messages(wait_time=0)
    assert_stats(first, retried=1, deleted=0, processed=0)
    qclock.t += 4
    assert processor.process_messages(wait_time=0).received == 0  # backed off 5 s: still invisible
    del processor.inject["e1"]
    qclock.t += 2
    assert_stats(processor.process_messages(wait_time=0), received=1, processed=1, deleted=1)
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 1
        record = uow.processing_records.find_one()
        assert record.status == "processed"
        assert record.attempts >= 2


def test_backoff_grows_with_receive_count(processor) -> None:
    assert [processor.backoff_seconds(n) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert processor.backoff_seconds(50) == 900


def test_store_outage_leaves_every_message(processor, queue, store, qclock) -> None:
    queue.send_batch([msg(1), msg(2)])
    store.set_available(False)
    stats = processor.process_messages(wait_time=0)
    assert_stats(stats, received=2, retried=2, deleted=0, processed=0)
    store.set_available(True)
    qclock.t += 10_000
    assert_stats(drain(processor), processed=2, deleted=2)


def test_unexpected_error_is_retried_not_recorded_as_failure(processor, queue, store, caplog) -> None:
    processor.inject["e1"] = KeyError("+14155550001")
    queue.send(msg(1))
    with caplog.at_level(logging.INFO, logger="commproc"):
        stats = processor.process_messages(wait_time=0)
    assert_stats(stats, retried=1, failed=0)
    assert "+14155550001" not in caplog.text
    assert table_counts(store)["events"] == 0


def test_crash_after_commit_before_delete_applies_once(processor, queue, store, qclock) -> None:
    queue.send_batch([msg(i) for i in range(10)])
    # Deliver every message twice as SQS may, and crash between commit and delete.
    original = processor._acknowledge

    def crash(outcomes):
        raise RuntimeError("killed after commit")

    processor._acknowledge = crash
    with pytest.raises(RuntimeError):
        processor.process_messages(wait_time=0)
    processor._acknowledge = original
    queue.send_batch([msg(i) for i in range(10)])
    qclock.t += 10_000
    total = drain(processor)
    assert total.duplicates == 20
    assert total.processed == 0
    counts = table_counts(store)
    assert counts["events"] == 10
    assert counts["messages"] == 10
    assert counts["leads"] == 10
    assert all(n == 1 for n in processor.calls.values())
    assert queue.approximate_depth() == 0 and queue.in_flight() == 0


def test_list_body_items_recorded_on_their_own(processor, queue, store) -> None:
    items = [json.loads(msg(1)), {"id": "x"}, json.loads(msg(2)), json.loads(msg(1))]
    queue.send(json.dumps(items))
    stats = processor.process_messages(wait_time=0)
    assert_stats(stats, received=1, processed=2, failed=1, duplicates=1, deleted=1)
    with store.unit_of_work() as uow:
        assert [r.item_index for r in uow.processing_records.find(order_by="item_index")] == [0, 1, 2, 3]


def test_sns_control_message_is_ignored_and_acknowledged(processor, queue, store) -> None:
    queue.send(
        json.dumps(
            {
                "Type": "SubscriptionConfirmation",
                "MessageId": "m",
                "TopicArn": "arn:t",
                "Message": "confirm",
                "SubscribeURL": "https://example.com",
            }
        )
    )
    stats = processor.process_messages(wait_time=0)
    assert_stats(stats, ignored=1, deleted=1, processed=0, failed=0)
    with store.unit_of_work() as uow:
        assert uow.events.find_one(status="ignored").event_type == "SubscriptionConfirmation"


def test_sns_notification_and_api_gateway_are_unwrapped(processor, queue, store) -> None:
    sns = {"Type": "Notification", "MessageId": "m1", "TopicArn": "arn:t", "Message": msg(1)}
    apigw = {
        "version": "2.0",
        "rawPath": "/hook",
        "headers": {"host": "h.example.com"},
        "requestContext": {"http": {"method": "POST"}},
        "body": msg(2),
        "isBase64Encoded": False,
    }
    queue.send_batch([json.dumps(sns), json.dumps(apigw)])
    assert_stats(processor.process_messages(wait_time=0), processed=2, deleted=2)


def test_failed_signature_rejects_whole_message(queue, store) -> None:
    class Strict(ExampleProcessor):
        def authenticate(self, envelope):
            raise SignatureError("signature does not match", field="headers.x-signature")

    processor = Strict(queue=queue, store=store)
    queue.send(json.dumps([json.loads(msg(1)), json.loads(msg(2))]))
    assert_stats(processor.process_messages(wait_time=0), failed=1, processed=0, deleted=1)
    with store.unit_of_work() as uow:
        assert uow.events.find_one(status="failed").error_code == "bad_signature"
        assert uow.leads.count() == 0


def test_redelivered_invalid_message_is_recorded_once(processor, store) -> None:
    from commproc_core.testing import make_message

    first = make_message("{bad", message_id="q-1")
    again = make_message("{bad", message_id="q-1", receive_count=2)
    processor.process_batch([first], acknowledge=False)
    processor.process_batch([again], acknowledge=False)
    with store.unit_of_work() as uow:
        assert uow.events.count(status="failed") == 1
        record = uow.processing_records.find_one(queue_message_id="q-1")
        assert record.status == "failed" and record.attempts == 2


def test_permanent_failure_in_process_event_rolls_back_its_writes(processor, queue, store) -> None:
    from commproc_core.errors import InvalidPayload

    processor.inject["e2"] = InvalidPayload("bad value", field="text")
    queue.send_batch([msg(1), msg(2)])
    assert_stats(processor.process_messages(wait_time=0), processed=1, failed=1, deleted=2)
    assert table_counts(store)["leads"] == 1


def test_heartbeat_extends_visibility_of_slow_batches(queue, store, qclock) -> None:
    import time

    class Slow(ExampleProcessor):
        def process_event(self, event_data):
            time.sleep(0.35)
            return super().process_event(event_data)

    processor = Slow(queue=queue, store=store, config={"visibility_timeout": 1, "heartbeat_fraction": 0.2})
    queue.send(msg(1))
    stats = processor.process_messages(wait_time=0)
    processor.close()
    assert stats.processed == 1
    assert processor._heartbeat.extensions >= 1
    assert queue.calls["ChangeMessageVisibilityBatch"] >= 1


def test_stats_mapping_like_the_seed(processor, queue) -> None:
    queue.send(msg(1))
    stats = processor.process_messages(max_messages=10, wait_time=0)
    assert stats["processed"] == 1 and stats["deleted"] == 1
    assert {"received", "processed", "failed", "duplicates", "deleted", "retried", "elapsed"} <= set(stats)


def test_logs_never_carry_phone_numbers_at_info(processor, queue, caplog) -> None:
    queue.send_batch([msg(1), json.dumps({"id": "x", "from": "+14155550999", "type": "bogus"})])
    with caplog.at_level(logging.INFO, logger="commproc"):
        processor.process_messages(wait_time=0)
    assert "+1415555" not in caplog.text
    assert "hello" not in caplog.text
    assert "unknown_event" in caplog.text


def test_queue_calls_per_message(processor, queue) -> None:
    queue.send_batch([msg(i) for i in range(100)])
    before = sum(v for k, v in queue.calls.items() if not k.startswith("Send"))
    drain(processor)
    calls = sum(v for k, v in queue.calls.items() if not k.startswith("Send")) - before
    # 10 receives + 10 delete batches + the final empty receive.
    assert calls / 100 <= 0.21
