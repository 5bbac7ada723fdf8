"""The pipeline against SQS as moto serves it: in-process (mock_aws) and over HTTP."""

import json
import time

import pytest

from commproc_core.errors import ThrottledError
from commproc_core.queues import SQSQueue
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor, assert_stats, table_counts
from commproc_core.testing.moto import create_queue_with_dlq, sqs_client


def body(i, **extra):
    return json.dumps({"id": f"e{i}", "from": f"+1415555{i:04d}", "text": "hello", **extra})


def attrs_of(client, url):
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    got = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(got[names[0]]), int(got[names[1]])


@pytest.fixture(params=["in-process", "http-server"])
def sqs(request, aws_env):
    if request.param == "in-process":
        from moto import mock_aws

        with mock_aws():
            yield sqs_client()
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        yield sqs_client(endpoint_url=endpoint)


def test_mixed_batch_end_to_end(sqs):
    queues = create_queue_with_dlq(sqs, "inbound", max_receive_count=2)
    store = MemoryStore()
    processor = ExampleProcessor(
        queue=SQSQueue(queues.queue_url, client=sqs),
        store=store,
        config={"retry_base_seconds": 1, "max_backoff_seconds": 1, "visibility_timeout": 30},
    )
    processor.inject["e9"] = ThrottledError("database busy")
    bodies = [body(1), body(2), "{broken", json.dumps({"from": "+14155550000"}), body(1), body(9)]
    for b in bodies:
        sqs.send_message(QueueUrl=queues.queue_url, MessageBody=b)

    stats = processor.process_messages(max_messages=10, wait_time=1)
    assert_stats(
        stats, received=6, processed=2, failed=2, duplicates=1, deleted=5, retried=1, delete_failed=0
    )
    assert attrs_of(sqs, queues.queue_url) == (0, 1)  # only the transient one is left, in flight
    counts = table_counts(store)
    assert counts["events"] == 4 and counts["messages"] == 2 and counts["leads"] == 2
    with store.unit_of_work() as uow:
        assert uow.processing_records.count(status="failed") == 2
        assert uow.events.count(status="failed", error_code="invalid_payload") == 2

    # The transient message comes back after its backoff and, once it has been
    # received maxReceiveCount times, SQS moves it to the dead-letter queue.
    time.sleep(1.2)
    assert_stats(processor.process_messages(wait_time=1), received=1, retried=1)
    time.sleep(1.2)
    assert processor.process_messages(wait_time=1).received == 0
    assert attrs_of(sqs, queues.dlq_url)[0] == 1
    assert attrs_of(sqs, queues.queue_url) == (0, 0)
    assert processor.calls["e9"] == 2
    assert table_counts(store)["events"] == 4


def test_redelivery_after_crash_applies_once(sqs):
    queues = create_queue_with_dlq(sqs, "crashy", max_receive_count=5)
    store = MemoryStore()
    processor = ExampleProcessor(
        queue=SQSQueue(queues.queue_url, client=sqs), store=store, config={"visibility_timeout": 1}
    )
    for i in range(5):
        for _ in range(2):  # every message delivered twice, as SQS may
            sqs.send_message(QueueUrl=queues.queue_url, MessageBody=body(i))

    real = processor._acknowledge
    processor._acknowledge = lambda outcomes: (_ for _ in ()).throw(RuntimeError("killed before delete"))
    with pytest.raises(RuntimeError):
        processor.process_messages(wait_time=1)
    processor._acknowledge = real
    time.sleep(1.1)  # the un-deleted messages become visible again
    for _ in range(5):
        if processor.process_messages(wait_time=1).received == 0:
            break
    assert attrs_of(sqs, queues.queue_url) == (0, 0)
    counts = table_counts(store)
    assert counts["events"] == 5 and counts["messages"] == 5 and counts["leads"] == 5
    assert set(processor.calls.values()) == {1}
