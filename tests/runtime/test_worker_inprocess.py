"""The Worker in-process: pollers, graceful stop, restart, backoff, isolation between channels."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from runtime_support import wait_for

from commproc_core.errors import QueueUnavailable
from commproc_core.model import OutboundMessage
from commproc_core.ports import SendResult
from commproc_core.queues import MemoryQueue
from commproc_core.runtime.worker import Worker
from commproc_core.stores import MemoryStore
from commproc_core.stores.sql import SQLStore
from commproc_core.testing import ExampleProcessor, table_counts


def body(i: int) -> str:
    return json.dumps({"id": f"e{i}", "from": f"+1415555{i:04d}", "text": "hello"})


def example(queue, store, **config) -> ExampleProcessor:
    return ExampleProcessor(queue=queue, store=store, config={"wait_time": 1, **config})


def recorded(store) -> int:
    with store.unit_of_work() as uow:
        return uow.events.count(status="processed")


class StoppingProcessor(ExampleProcessor):
    """Asks its worker to stop while it is in the middle of its ``stop_at``-th event."""

    worker: Worker
    stop_at = 40

    def process_event(self, event_data):
        if sum(self.calls.values()) + 1 == self.stop_at:
            self.worker.stop()
        return super().process_event(event_data)


def test_stop_mid_stream_then_restart_records_every_event_once(sqlite_url) -> None:
    store = SQLStore(sqlite_url, auto_upgrade=True)
    queue = MemoryQueue("memory://example", visibility_timeout=30)
    total = 300
    queue.send_batch([body(i) for i in range(total)])
    processor = StoppingProcessor(queue=queue, store=store, config={"wait_time": 1, "batch_size": 5})
    worker = processor.worker = Worker([processor], pollers=3)
    worker.start()
    wait_for(lambda: worker.stopping)
    started = time.monotonic()
    assert worker.drain() is True
    assert time.monotonic() - started < 5
    first = recorded(store)
    # The batches in flight when the stop came were finished: up to 3 pollers x 5 messages.
    assert 40 <= first <= 40 + 3 * 5
    # Every message the worker took is finished and acknowledged: nothing in flight.
    assert queue.in_flight() == 0
    assert queue.approximate_depth() == total - first

    again = Worker([example(queue, store, batch_size=10)], pollers=2)
    again.start()
    wait_for(lambda: queue.approximate_depth() == 0 and queue.in_flight() == 0)
    assert again.drain() is True
    counts = table_counts(store)
    assert counts["events"] == counts["messages"] == counts["leads"] == total
    with store.unit_of_work() as uow:
        keys = [e.dedupe_key for e in uow.events.find()]
        assert len(set(keys)) == total
        # No processing record was left at "received" (begun but not finished).
        assert uow.processing_records.count(status="received") == 0
        assert uow.processing_records.count(status="processed") == total
    store.close()


def test_sigterm_drains_and_returns_zero() -> None:
    store = MemoryStore()
    queue = MemoryQueue("memory://example")
    queue.send_batch([body(i) for i in range(30)])
    worker = Worker([example(queue, store)], pollers=2)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert worker.run() == 0
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGTERM) is previous
    assert recorded(store) == 30
    assert queue.in_flight() == 0


class FlakyQueue:
    """A MemoryQueue whose first ``failures`` receives raise, as an unreachable SQS does."""

    def __init__(self, inner: MemoryQueue, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.attempts: list[float] = []

    @property
    def url(self) -> str:
        return self.inner.url

    def receive(self, *args, **kwargs):
        self.attempts.append(time.monotonic())
        if len(self.attempts) <= self.failures:
            raise QueueUnavailable("SQS ReceiveMessage: cannot reach SQS")
        return self.inner.receive(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_failing_queue_backs_off_recovers_and_never_stops_another_channel() -> None:
    store = MemoryStore()
    good = MemoryQueue("memory://good")
    bad = FlakyQueue(MemoryQueue("memory://bad"), failures=4)
    good.send_batch([body(i) for i in range(10)])
    bad.inner.send_batch([body(i) for i in range(100, 110)])
    worker = Worker(
        [example(good, store), example(bad, store)], backoff_base=0.05, backoff_max=0.2, metrics_port=0
    )
    worker.start()
    try:
        wait_for(lambda: recorded(store) == 20)
    finally:
        assert worker.drain()
    gaps = [b - a for a, b in zip(bad.attempts, bad.attempts[1:5])]
    # Exponential with equal jitter: at least half of 0.05, 0.1, 0.2 (capped), 0.2.
    assert all(gap >= low * 0.9 for gap, low in zip(gaps, (0.025, 0.05, 0.1, 0.1)))
    assert max(gaps) <= 0.2 + 0.15
    text = worker.metrics.render()[2].decode()
    assert 'commproc_poll_errors_total{channel="example",error="queue_unavailable",queue="bad"} 4.0' in text


def test_backoff_grows_and_caps() -> None:
    worker = Worker([example(MemoryQueue(), MemoryStore())], backoff_base=1, backoff_max=8)
    for failures, ceiling in ((1, 1), (2, 2), (3, 4), (4, 8), (10, 8)):
        delays = [worker.backoff_delay(failures) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)


def test_store_outage_backs_off_then_recovers() -> None:
    store = MemoryStore()
    queue = MemoryQueue("memory://example", visibility_timeout=30)
    queue.send_batch([body(i) for i in range(3)])
    worker = Worker(
        [example(queue, store, retry_base_seconds=1)], backoff_base=0.2, backoff_max=0.2, allow_degraded=True
    )
    store.set_available(False)
    worker.start()
    try:
        time.sleep(0.5)
        assert worker.liveness()[1]["pollers"]["failing"] == 1
        ready, details = worker.readiness()
        assert ready is False
        assert details["store"] == "store_unavailable"
        assert [(p["poller"], p["reason"]) for p in details["problems"]] == [
            ("example-0", "store_unavailable")
        ]
        # The batch was left on the queue for a retry, and the poller held back.
        assert queue.approximate_depth() + queue.in_flight() == 3
        assert queue.calls["DeleteMessageBatch"] == 0
        assert queue.calls["ReceiveMessage"] <= 4
        store.set_available(True)
        wait_for(lambda: recorded(store) == 3)
        wait_for(lambda: worker.liveness()[1]["pollers"]["failing"] == 0)
        assert worker.readiness()[0] is True
    finally:
        assert worker.drain()


def test_outbox_dispatcher_sends_pending_replies() -> None:
    from commproc_core.services.outbox import OutboxDispatcher

    class Sender:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def send(self, message: OutboundMessage) -> SendResult:
            self.sent.append(message.id)
            return SendResult(provider_message_id=f"SM{len(self.sent):032d}", status="queued")

    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.outbox.add(OutboundMessage(channel="sms", to="+14155550100", sender="+14155550199", body="hi"))
        uow.commit()
    sender = Sender()
    worker = Worker(
        [example(MemoryQueue(), store)], dispatcher=OutboxDispatcher(store, sender), outbox_interval=0.05
    )
    worker.start()
    try:
        wait_for(lambda: len(sender.sent) == 1)
    finally:
        assert worker.drain()
    with store.unit_of_work() as uow:
        assert uow.outbox.find_one().status == "queued"


def test_worker_needs_channels() -> None:
    from commproc_core.errors import ConfigError

    with pytest.raises(ConfigError, match="no channels"):
        Worker([])
