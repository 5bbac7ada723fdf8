"""The worker's HTTP endpoint: /healthz, /readyz, /metrics; with and without prometheus-client."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

import pytest
from runtime_support import wait_for

from commproc_core.queues import MemoryQueue
from commproc_core.runtime.metrics import WorkerMetrics, create_metrics
from commproc_core.runtime.worker import Worker
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def started_worker(store: MemoryStore, queue: MemoryQueue, **kwargs) -> Worker:
    processor = ExampleProcessor(queue=queue, store=store, config={"wait_time": 1})
    worker = Worker([processor], metrics_port=0, depth_interval=0.05, **kwargs)
    worker.start()
    return worker


def test_health_readiness_and_metrics() -> None:
    store = MemoryStore()
    queue = MemoryQueue("memory://inbound")
    queue.send_batch(
        [json.dumps({"id": f"e{i}", "from": "+14155550100", "text": "hi"}) for i in range(3)]
        + [json.dumps({"id": "e0", "from": "+14155550100"}), "{broken"]
    )
    worker = started_worker(store, queue)
    try:
        assert worker.http is not None
        base = worker.http.url
        wait_for(lambda: queue.approximate_depth() == 0 and queue.in_flight() == 0)
        status, content_type, text = get(base + "/healthz")
        assert (status, content_type) == (200, "application/json")
        assert json.loads(text) == {
            "status": "ok",
            "pollers": {"total": 1, "alive": 1, "failing": 0, "down": 0},
            "stopping": False,
        }
        status, _, text = get(base + "/readyz")
        assert status == 200 and json.loads(text)["store"] == "ok"
        store.set_available(False)
        status, _, text = get(base + "/readyz")
        assert status == 503
        assert json.loads(text)["store"] == "store_unavailable"
        store.set_available(True)
        wait_for(lambda: "commproc_queue_depth_messages" in get(base + "/metrics")[2])
        status, content_type, text = get(base + "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        values = samples(text)
        where = {"channel": "example", "queue": "inbound"}
        assert values["commproc_messages_received_total", frozenset(where.items())] == 5
        for outcome, count in (("processed", 3), ("duplicate", 1), ("rejected", 1)):
            assert (
                values["commproc_messages_total", frozenset({**where, "outcome": outcome}.items())] == count
            )
        assert (
            values[
                "commproc_messages_failed_total", frozenset({**where, "reason": "invalid_payload"}.items())
            ]
            == 1
        )
        assert values["commproc_events_duplicate_total", frozenset(where.items())] == 1
        event = {"channel": "example", "event_type": "message", "status": "processed"}
        assert values["commproc_events_total", frozenset(event.items())] == 3
        assert values["commproc_batch_duration_seconds_count", frozenset(where.items())] >= 1
        assert values["commproc_queue_lag_seconds_count", frozenset(where.items())] == 5
        assert values["commproc_queue_depth_messages", frozenset(where.items())] == 0
        assert get(base + "/nothing")[0] == 404
    finally:
        worker.drain()
    assert get_refused(base + "/healthz")


def get_refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except OSError:
        return True
    return False


def test_each_worker_has_its_own_registry() -> None:
    store = MemoryStore()
    one = started_worker(store, MemoryQueue("memory://one"))
    two = started_worker(store, MemoryQueue("memory://two"))
    try:
        assert one.metrics.registry is not two.metrics.registry
        assert one.http.port != two.http.port
        assert 'queue="two"' not in get(one.http.url + "/metrics")[2]
    finally:
        one.stop()
        two.stop()
        assert one.drain() and two.drain()


def test_without_prometheus_client_metrics_answer_501(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes the import fail
    assert type(create_metrics()) is WorkerMetrics
    with pytest.raises(ImportError, match=r"commproc-core\[metrics\]"):
        create_metrics(required=True)
    worker = started_worker(MemoryStore(), MemoryQueue("memory://inbound"))
    try:
        status, _, text = get(worker.http.url + "/metrics")
        assert status == 501
        assert "pip install 'commproc-core[metrics]'" in text
        assert get(worker.http.url + "/healthz")[0] == 200
    finally:
        worker.drain()


def test_write_conflicts_are_counted() -> None:
    from commproc_core.pipeline.stats import BatchReport, ProcessingStats
    from commproc_core.testing import make_message

    metrics = create_metrics(required=True)
    message = make_message('{"id": "e1"}')
    metrics.batch("sms", "inbound", [message], BatchReport(outcomes=(), stats=ProcessingStats(conflicts=2)))
    metrics.batch("sms", "inbound", [message], BatchReport(outcomes=(), stats=ProcessingStats()))
    values = samples(metrics.render()[2].decode())
    where = frozenset({"channel": "sms", "queue": "inbound"}.items())
    assert values["commproc_write_conflicts_total", where] == 2
