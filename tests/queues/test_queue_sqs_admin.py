"""SQSQueue's operator calls: check, arn, send_batch, any API by name, and telling unsupported APIs apart."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from commproc_core.errors import QueueError, QueueNotFound, QueueUnavailable
from commproc_core.queues import SQSQueue
from commproc_core.queues.sqs import unsupported_operation
from commproc_core.testing.moto import create_queue_with_dlq

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/commproc"


def client_error(code: str, status: int, message: str = "nope") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListMessageMoveTasks",
    )


def test_check_returns_every_attribute_and_arn_asks_sqs(moto_sqs) -> None:
    pair = create_queue_with_dlq(moto_sqs, "orders", max_receive_count=4)
    queue = SQSQueue(pair.queue_url, client=moto_sqs)
    attributes = queue.check()
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == pair.dlq_arn
    assert attributes["VisibilityTimeout"] == "30"
    assert SQSQueue(pair.dlq_url, client=moto_sqs).arn() == pair.dlq_arn
    with pytest.raises(QueueNotFound, match="no such queue"):
        SQSQueue(pair.queue_url + "-missing", client=moto_sqs).check()


def test_receive_with_every_system_attribute(moto_sqs) -> None:
    url = moto_sqs.create_queue(QueueName="plain")["QueueUrl"]
    moto_sqs.send_message(QueueUrl=url, MessageBody="hi")
    (message,) = SQSQueue(url, client=moto_sqs).receive(1, 0, attribute_names=["All"])
    assert {"SenderId", "SentTimestamp", "ApproximateReceiveCount"} <= set(message.attributes)


def test_send_batch_sends_ten_per_call(moto_sqs) -> None:
    url = moto_sqs.create_queue(QueueName="target")["QueueUrl"]
    queue = SQSQueue(url, client=moto_sqs)
    outcome = queue.send_batch([{"Id": str(i), "MessageBody": f"body {i}"} for i in range(12)])
    assert sorted(outcome.sent, key=int) == [str(i) for i in range(12)] and outcome.failed == ()
    assert queue.calls["SendMessageBatch"] == 2
    assert queue.approximate_depth() == 12


def test_send_batch_reports_failed_entries_without_raising(aws_env) -> None:
    # SQS answers 200 and lists the entries it refused (moto never does, so a stub plays SQS).
    client = boto3.session.Session(region_name="us-east-1").client("sqs")
    with Stubber(client) as stubber:
        stubber.add_response(
            "send_message_batch",
            {
                "Successful": [{"Id": "0", "MessageId": "m0", "MD5OfMessageBody": "x"}],
                "Failed": [
                    {"Id": "1", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}
                ],
            },
        )
        outcome = SQSQueue(URL, client=client).send_batch(
            [{"Id": "0", "MessageBody": "a"}, {"Id": "1", "MessageBody": "b"}]
        )
    assert outcome.sent == ("0",)
    assert outcome.failed == (("1", "InvalidMessageContents", "bad"),)


def test_call_reaches_any_api_and_maps_its_errors(moto_sqs) -> None:
    pair = create_queue_with_dlq(moto_sqs, "fed")
    dlq = SQSQueue(pair.dlq_url, client=moto_sqs)
    assert dlq.call("ListDeadLetterSourceQueues", QueueUrl=pair.dlq_url)["queueUrls"] == [pair.queue_url]
    assert dlq.calls["ListDeadLetterSourceQueues"] == 1
    with pytest.raises(QueueNotFound):
        dlq.call("ListDeadLetterSourceQueues", QueueUrl=pair.dlq_url + "-gone")


def test_unsupported_operation_tells_an_emulator_gap_from_a_real_refusal() -> None:
    # moto in-process raises NotImplementedError; its server answers an HTML 500.
    assert unsupported_operation(
        NotImplementedError("The list_message_move_tasks action has not been implemented")
    )
    html = client_error("500", 500, "<!doctype html>\n<html lang=en><title>500 Internal Server Error</title>")
    assert unsupported_operation(html)
    for code, status in (("InvalidAction", 400), ("UnknownOperationException", 400), ("X", 404), ("X", 501)):
        assert unsupported_operation(client_error(code, status))
    # Mapped errors keep their cause: the check follows it.
    wrapped = QueueUnavailable("SQS server error")
    wrapped.__cause__ = html
    assert unsupported_operation(wrapped)
    # A real SQS refusal, or a plain server error, is not "unsupported".
    assert not unsupported_operation(client_error("InvalidParameterValue", 400, "Source queue must be a DLQ"))
    assert not unsupported_operation(client_error("InternalError", 500, "We encountered an internal error"))
    assert not unsupported_operation(QueueError("anything"))
    assert not unsupported_operation(None)


def test_call_maps_an_unsupported_api_on_a_stub(aws_env) -> None:
    client = boto3.session.Session(region_name="us-east-1").client("sqs")
    with Stubber(client) as stubber:
        stubber.add_client_error("list_message_move_tasks", "InvalidAction", "unknown action", 400)
        with pytest.raises(QueueError) as caught:
            SQSQueue(URL, client=client).call("ListMessageMoveTasks", SourceArn="arn:aws:sqs:us-east-1:1:x")
    assert unsupported_operation(caught.value)
