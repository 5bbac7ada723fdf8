"""Behaviour every MessageQueue adapter shares: MemoryQueue, SQSQueue on moto in-process and over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from commproc_core.model import QueueMessage
from commproc_core.ports import MessageQueue, VisibilityChange
from commproc_core.queues import MemoryQueue, SQSQueue
from commproc_core.testing.moto import create_queue_with_dlq, sqs_client


@attrs.define
class Harness:
    queue: Any
    dlq: Any
    max_receive_count: int


@pytest.fixture(params=["memory", "moto", "moto_server"])
def harness(request: pytest.FixtureRequest) -> Harness:
    if request.param == "memory":
        dlq = MemoryQueue("memory://dlq")
        queue = MemoryQueue("memory://queue", max_receive_count=2, dead_letter_queue=dlq)
        return Harness(queue, dlq, 2)
    if request.param == "moto":
        client = request.getfixturevalue("moto_sqs")
        urls = create_queue_with_dlq(client, max_receive_count=2)
        return Harness(SQSQueue(urls.queue_url, client=client), SQSQueue(urls.dlq_url, client=client), 2)
    endpoint = request.getfixturevalue("moto_endpoint")
    client = sqs_client(endpoint)
    urls = create_queue_with_dlq(client, max_receive_count=2)
    # No endpoint_url and no client: boto3 finds the server through AWS_ENDPOINT_URL_SQS.
    return Harness(SQSQueue(urls.queue_url), SQSQueue(urls.dlq_url, client=client), 2)


def drain(queue: Any, visibility_timeout: int | None = None) -> list[QueueMessage]:
    received: list[QueueMessage] = []
    while batch := queue.receive(10, 0, visibility_timeout):
        received.extend(batch)
    return received


def test_fits_the_port(harness: Harness) -> None:
    port: MessageQueue = harness.queue
    assert port.url == harness.queue.url


def test_receive_returns_body_attributes_and_counts(harness: Harness) -> None:
    before = datetime.now(timezone.utc) - timedelta(seconds=2)
    attributes = {"kind": {"DataType": "String", "StringValue": "twilio"}}
    message_id = harness.queue.send('{"a": 1}', message_attributes=attributes)

    [message] = harness.queue.receive(max_messages=10, wait_time_seconds=0)

    assert message.message_id == message_id
    assert message.body == '{"a": 1}'
    assert message.queue_url == harness.queue.url
    assert message.receive_count == 1
    assert message.attributes["ApproximateReceiveCount"] == "1"
    assert "ApproximateFirstReceiveTimestamp" in message.attributes
    assert message.sent_at is not None and message.sent_at.tzinfo is not None
    assert before <= message.sent_at <= datetime.now(timezone.utc) + timedelta(seconds=2)
    assert message.message_attributes["kind"]["StringValue"] == "twilio"
    assert message.receipt_handle


def test_a_received_message_is_invisible_until_deleted(harness: Harness) -> None:
    harness.queue.send("one")
    [message] = harness.queue.receive(wait_time_seconds=0)
    assert harness.queue.receive(wait_time_seconds=0) == []

    result = harness.queue.delete_batch([message.receipt_handle, "not-a-receipt-handle"])

    assert result.succeeded == (message.receipt_handle,)
    [(handle, code, text)] = result.failed
    assert handle == "not-a-receipt-handle"
    assert code == "ReceiptHandleIsInvalid"
    assert text
    assert harness.queue.approximate_depth() == 0


def test_visibility_zero_redelivers_with_a_new_handle(harness: Harness) -> None:
    harness.queue.send("again")
    [first] = harness.queue.receive(wait_time_seconds=0)

    result = harness.queue.change_visibility_batch([VisibilityChange(first.receipt_handle, 0)])
    assert result.succeeded == (first.receipt_handle,)
    [second] = harness.queue.receive(wait_time_seconds=0)

    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.receipt_handle != first.receipt_handle
    harness.queue.delete_message(second.receipt_handle)
    assert harness.queue.approximate_depth() == 0


def test_redrive_to_the_dead_letter_queue_after_max_receive_count(harness: Harness) -> None:
    message_id = harness.queue.send("poison")
    for attempt in range(1, harness.max_receive_count + 1):
        [message] = harness.queue.receive(wait_time_seconds=0, visibility_timeout=0)
        assert message.receive_count == attempt

    # The receive after the last allowed one moves the message instead of returning it.
    assert harness.queue.receive(wait_time_seconds=0) == []
    [dead] = harness.dlq.receive(wait_time_seconds=0)
    assert dead.message_id == message_id
    assert dead.body == "poison"
    assert harness.queue.approximate_depth() == 0


def test_batches_are_split_into_tens(harness: Harness) -> None:
    for index in range(23):
        harness.queue.send(f"m{index}")
    received = drain(harness.queue)
    assert sorted(m.body for m in received) == sorted(f"m{index}" for index in range(23))
    assert all(len(batch) <= 10 for batch in [received[i : i + 10] for i in range(0, 23, 10)])
    harness.queue.calls.clear()

    changes = [VisibilityChange(m.receipt_handle, 60) for m in received]
    assert len(harness.queue.change_visibility_batch(changes).succeeded) == 23
    result = harness.queue.delete_batch([m.receipt_handle for m in received])

    assert len(result.succeeded) == 23 and result.failed == ()
    assert harness.queue.calls["DeleteMessageBatch"] == 3
    assert harness.queue.calls["ChangeMessageVisibilityBatch"] == 3
    assert harness.queue.approximate_depth() == 0


def test_empty_batches_make_no_call(harness: Harness) -> None:
    assert harness.queue.delete_batch([]).succeeded == ()
    assert harness.queue.change_visibility_batch([]).failed == ()
    assert harness.queue.calls["DeleteMessageBatch"] == 0


def test_out_of_range_arguments_are_clamped(harness: Harness) -> None:
    for index in range(12):
        harness.queue.send(f"m{index}")
    batch = harness.queue.receive(max_messages=50, wait_time_seconds=-3, visibility_timeout=99_999)
    assert 1 <= len(batch) <= 10
    result = harness.queue.change_visibility_batch([VisibilityChange(batch[0].receipt_handle, -5)])
    assert result.failed == ()


def test_depth_counts_waiting_messages(harness: Harness) -> None:
    for index in range(3):
        harness.queue.send(f"m{index}")
    assert harness.queue.approximate_depth() == 3
    assert harness.queue.calls["GetQueueAttributes"] == 1
