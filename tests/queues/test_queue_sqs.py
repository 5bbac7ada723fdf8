"""SQSQueue specifics: client setup, request shape, error mapping, moto over HTTP with threads."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from commproc_core.errors import (
    QueueCredentialsError,
    QueueError,
    QueueNotFound,
    ThrottledError,
    TransientError,
)
from commproc_core.ports import VisibilityChange
from commproc_core.queues import QueueUnavailable, SQSQueue, region_from_queue_url
from commproc_core.testing.moto import create_queue_with_dlq, sqs_client

URL = "https://sqs.us-east-1.amazonaws.com/123456789012/commproc"


@pytest.fixture(scope="module")
def stub_session():
    # One session for the stubbed clients: a session costs ~70 ms, a client from it ~3 ms.
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@pytest.fixture
def stubbed(aws_env, stub_session):
    client = stub_session.client("sqs")
    with Stubber(client) as stubber:
        yield SQSQueue(URL, client=client), stubber
        stubber.assert_no_pending_responses()


# -- setup --------------------------------------------------------------------------------


def test_importing_the_adapters_does_not_import_boto3():
    code = "import sys, commproc_core.queues; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-2.amazonaws.com/1/q", "eu-west-2"),
        ("https://sqs-fips.us-gov-west-1.amazonaws.com/1/q", "us-gov-west-1"),
        ("https://sqs.cn-north-1.amazonaws.com.cn/1/q", "cn-north-1"),
        ("https://ap-southeast-2.queue.amazonaws.com/1/q", "ap-southeast-2"),
        ("http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q", "us-east-1"),
        ("http://localhost:9324/000000000000/q", None),
        ("memory://queue", None),
    ],
)
def test_region_from_queue_url(url, region):
    assert region_from_queue_url(url) == region


def test_region_comes_from_the_url_when_boto3_has_none(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert SQSQueue("https://sqs.eu-west-2.amazonaws.com/1/q").client.meta.region_name == "eu-west-2"


def test_url_region_beats_ambient_default_and_explicit_beats_both(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    url = "https://sqs.eu-west-2.amazonaws.com/1/q"
    assert SQSQueue(url).client.meta.region_name == "eu-west-2"
    assert SQSQueue(url, region_name="ap-south-1").client.meta.region_name == "ap-south-1"
    assert SQSQueue("http://localhost:9324/000000000000/q").client.meta.region_name == "us-west-2"


def test_no_region_anywhere_is_a_clear_error(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    with pytest.raises(QueueError, match="AWS_DEFAULT_REGION"):
        SQSQueue("http://localhost:9324/000000000000/q").receive(wait_time_seconds=0)


def test_a_host_session_and_endpoint_are_used(aws_env):
    session = boto3.session.Session(region_name="eu-central-1")
    queue = SQSQueue("http://127.0.0.1:9/123456789012/q", session=session, endpoint_url="http://127.0.0.1:9")
    assert queue.client.meta.region_name == "eu-central-1"
    assert queue.client.meta.endpoint_url == "http://127.0.0.1:9"


def test_endpoint_settings_of_boto3_are_honoured(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:4566")
    assert SQSQueue(URL).client.meta.endpoint_url == "http://127.0.0.1:4566"


def test_client_and_session_together_are_refused():
    with pytest.raises(ValueError, match="not both"):
        SQSQueue(URL, client=object(), session=object())


def test_the_client_is_created_once_across_threads(aws_env, monkeypatch):
    queue = SQSQueue(URL)
    made = []
    real = queue._make_client

    def slow_make():
        made.append(1)
        threading.Event().wait(0.05)
        return real()

    monkeypatch.setattr(queue, "_make_client", slow_make)
    clients = []
    threads = [threading.Thread(target=lambda: clients.append(queue.client)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1
    assert len({id(client) for client in clients}) == 1


# -- request shape --------------------------------------------------------------------------


def test_receive_asks_for_attributes_and_clamps(stubbed):
    queue, stubber = stubbed
    stubber.add_response(
        "receive_message",
        {
            "Messages": [
                {
                    "MessageId": "m1",
                    "ReceiptHandle": "r1",
                    "Body": "{}",
                    "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000123"},
                }
            ]
        },
        {
            "QueueUrl": URL,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": 20,
            "VisibilityTimeout": 43200,
            "MessageSystemAttributeNames": [
                "ApproximateReceiveCount",
                "SentTimestamp",
                "ApproximateFirstReceiveTimestamp",
            ],
            "MessageAttributeNames": ["All"],
        },
    )
    [message] = queue.receive(max_messages=50, wait_time_seconds=99, visibility_timeout=10**6)
    assert message.receive_count == 3
    assert message.sent_at is not None and message.sent_at.isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert queue.calls == {"ReceiveMessage": 1}


def test_fifo_receive_asks_for_group_attributes(aws_env, stub_session):
    client = stub_session.client("sqs")
    queue = SQSQueue(URL + ".fifo", client=client, visibility_timeout=45)
    with Stubber(client) as stubber:
        stubber.add_response(
            "receive_message",
            {},
            {
                "QueueUrl": URL + ".fifo",
                "MaxNumberOfMessages": 1,
                "WaitTimeSeconds": 0,
                "VisibilityTimeout": 45,
                "MessageSystemAttributeNames": [
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                    "ApproximateFirstReceiveTimestamp",
                    "MessageGroupId",
                    "MessageDeduplicationId",
                    "SequenceNumber",
                ],
                "MessageAttributeNames": ["All"],
            },
        )
        assert queue.receive(max_messages=0, wait_time_seconds=-1) == []


def test_visibility_batch_clamps_timeouts(stubbed):
    queue, stubber = stubbed
    stubber.add_response(
        "change_message_visibility_batch",
        {"Successful": [{"Id": "0"}, {"Id": "1"}], "Failed": []},
        {
            "QueueUrl": URL,
            "Entries": [
                {"Id": "0", "ReceiptHandle": "a", "VisibilityTimeout": 43200},
                {"Id": "1", "ReceiptHandle": "b", "VisibilityTimeout": 0},
            ],
        },
    )
    result = queue.change_visibility_batch([VisibilityChange("a", 99_999), VisibilityChange("b", -1)])
    assert result.succeeded == ("a", "b")


def test_failed_entries_are_reported_and_logged_without_bodies(stubbed, caplog):
    queue, stubber = stubbed
    stubber.add_response(
        "delete_message_batch",
        {
            "Successful": [{"Id": "0"}],
            "Failed": [{"Id": "1", "SenderFault": True, "Code": "ReceiptHandleIsInvalid", "Message": "bad"}],
        },
        {"QueueUrl": URL, "Entries": ANY},
    )
    with caplog.at_level(logging.WARNING, logger="commproc.queue"):
        result = queue.delete_batch(["good", "stale"])
    assert result.succeeded == ("good",)
    assert result.failed == (("stale", "ReceiptHandleIsInvalid", "bad"),)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "ReceiptHandleIsInvalid" in record.getMessage() and URL in record.getMessage()


# -- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("AWS.SimpleQueueService.NonExistentQueue", 400, QueueNotFound),
        ("QueueDoesNotExist", 400, QueueNotFound),
        ("InvalidClientTokenId", 403, QueueCredentialsError),
        ("UnrecognizedClientException", 400, QueueCredentialsError),
        ("AccessDenied", 403, QueueCredentialsError),
        ("ThrottlingException", 400, ThrottledError),
        ("RequestThrottled", 403, ThrottledError),
        ("OverLimit", 403, ThrottledError),
        ("SlowDown", 503, ThrottledError),
        ("InternalError", 500, QueueUnavailable),
        ("ServiceUnavailable", 503, QueueUnavailable),
        ("InvalidParameterValue", 400, QueueError),
    ],
)
def test_client_errors_are_mapped(stubbed, code, status, error):
    queue, stubber = stubbed
    stubber.add_client_error("receive_message", service_error_code=code, http_status_code=status)
    with pytest.raises(error) as info:
        queue.receive(wait_time_seconds=0)
    assert URL in str(info.value)
    assert info.value.__cause__ is not None
    assert issubclass(error, TransientError) == (error in (ThrottledError, QueueUnavailable))


def test_not_found_says_what_to_check(stubbed):
    queue, stubber = stubbed
    stubber.add_client_error("delete_message_batch", service_error_code="QueueDoesNotExist")
    with pytest.raises(QueueNotFound, match="queue URL.*region.*endpoint"):
        queue.delete_batch(["r"])


def test_credentials_error_says_what_to_check(stubbed):
    queue, stubber = stubbed
    stubber.add_client_error("change_message_visibility", service_error_code="InvalidClientTokenId")
    with pytest.raises(QueueCredentialsError, match="AWS_ACCESS_KEY_ID"):
        queue.change_visibility("r", 10)


def test_missing_credentials_are_mapped(aws_env, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    queue = SQSQueue(URL)
    with pytest.raises(QueueCredentialsError, match="no usable AWS credentials"):
        queue.receive(wait_time_seconds=0)


def test_missing_profile_is_a_credentials_error(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(QueueCredentialsError, match="AWS_PROFILE"):
        SQSQueue(URL).receive(wait_time_seconds=0)


def test_unreachable_endpoint_is_transient(aws_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = boto3.session.Session().client(
        "sqs",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=1),
    )
    queue = SQSQueue(URL, client=client)
    with pytest.raises(QueueUnavailable, match="cannot reach SQS") as info:
        queue.receive(wait_time_seconds=0)
    assert isinstance(info.value, TransientError)
    assert queue.approximate_depth() is None


def test_programming_errors_pass_through(aws_env):
    from botocore.exceptions import ParamValidationError

    queue = SQSQueue(URL, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ParamValidationError):
        queue.send(123)  # type: ignore[arg-type]


# -- moto ---------------------------------------------------------------------------------


def test_fifo_queue_on_moto(moto_sqs):
    urls = create_queue_with_dlq(moto_sqs, "orders", fifo=True, max_receive_count=2)
    queue = SQSQueue(urls.queue_url, client=moto_sqs)
    queue.send("a1", group_id="a", deduplication_id="1")
    queue.send("a2", group_id="a", deduplication_id="2")
    batch = queue.receive(wait_time_seconds=0)
    assert [m.body for m in batch] == ["a1", "a2"]
    assert batch[0].attributes["MessageGroupId"] == "a"
    assert "SequenceNumber" in batch[0].attributes


def test_bad_queue_url_on_moto(moto_sqs):
    queue = SQSQueue("https://sqs.us-east-1.amazonaws.com/123456789012/missing", client=moto_sqs)
    with pytest.raises(QueueNotFound, match="missing"):
        queue.receive(wait_time_seconds=0)
    assert queue.approximate_depth() is None


def test_explicit_client_for_the_moto_server(moto_endpoint):
    client = sqs_client(moto_endpoint)
    url = client.create_queue(QueueName="explicit")["QueueUrl"]
    queue = SQSQueue(url, client=client)
    SQSQueue(url, endpoint_url=moto_endpoint).send("over http")
    [message] = queue.receive(wait_time_seconds=0)
    assert message.body == "over http"
    queue.delete_message(message.receipt_handle)
    assert queue.approximate_depth() == 0


def test_threads_share_one_adapter_over_http(moto_endpoint):
    client = sqs_client(moto_endpoint)
    url = client.create_queue(QueueName="shared", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    for start in range(0, 30, 10):
        client.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 10)],
        )
    queue = SQSQueue(url)
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    failures = []
    deadline = time.monotonic() + 20

    def consume():
        # moto's server is not strictly thread-safe: a short poll may come back
        # empty while messages remain, so consume until all are seen.
        while len(seen) < 30 and time.monotonic() < deadline:
            batch = queue.receive(10, 0)
            with lock:
                seen.update(m.body for m in batch)
            if batch:
                failures.extend(queue.delete_batch([m.receipt_handle for m in batch]).failed)

    workers = [threading.Thread(target=consume) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert set(seen) == {f"m{i}" for i in range(30)}
    assert failures == []
