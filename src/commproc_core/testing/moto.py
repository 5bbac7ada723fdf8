"""Run moto's SQS for tests: in-process, or as an HTTP server on a free port.

moto is a test dependency, imported only when a helper runs. The context
managers work anywhere; the pytest fixtures can be imported into a
``conftest.py``::

    from commproc_core.testing.moto import aws_env, moto_endpoint, moto_sqs  # noqa: F401

``moto_sqs`` patches botocore inside the process (fast, one thread only);
``moto_endpoint`` serves the same API over HTTP from a ThreadedMotoServer,
shared by the test session and reset for each test, with
``AWS_ENDPOINT_URL_SQS`` pointing at it, which is what threaded consumers and
SQS-compatible endpoints need. Keep moto queues small and waits short: moto
scans a queue on every call and its timeouts run in real time.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import pytest

__all__ = [
    "FAKE_AWS_ENV",
    "QueueWithDLQ",
    "aws_env",
    "create_queue_with_dlq",
    "fake_aws_env",
    "mock_sqs",
    "moto_endpoint",
    "moto_server",
    "moto_server_url",
    "moto_sqs",
    "reset_moto_server",
    "sqs_client",
]

#: Credentials and region moto accepts; no real account is reachable with them.
FAKE_AWS_ENV: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
# Settings from the developer's shell that would send test calls elsewhere.
_CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS")


@attrs.frozen
class QueueWithDLQ:
    """A queue and its dead-letter queue, as made by :func:`create_queue_with_dlq`."""

    queue_url: str
    dlq_url: str
    dlq_arn: str
    max_receive_count: int


def _env_changes(region: str, extra: Mapping[str, str | None]) -> dict[str, str | None]:
    changes: dict[str, str | None] = dict.fromkeys(_CLEARED)
    changes.update(FAKE_AWS_ENV)
    changes["AWS_DEFAULT_REGION"] = region
    changes.update(extra)
    return changes


@contextmanager
def fake_aws_env(region: str = "us-east-1", **extra: str | None) -> Iterator[None]:
    """Fake credentials and ``region`` in ``os.environ`` (``extra`` set too; None unsets), then restore."""
    saved = {name: os.environ.get(name) for name in _env_changes(region, extra)}
    try:
        for name, value in _env_changes(region, extra).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def sqs_client(endpoint_url: str | None = None, region: str = "us-east-1") -> Any:
    """A boto3 SQS client with the fake credentials, optionally for ``endpoint_url``."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )
    return session.client("sqs", endpoint_url=endpoint_url)


@contextmanager
def mock_sqs(region: str = "us-east-1") -> Iterator[Any]:
    """moto in-process (``mock_aws``) with fake credentials; yields an SQS client."""
    from moto import mock_aws

    with fake_aws_env(region), mock_aws():
        yield sqs_client(region=region)


@contextmanager
def moto_server(host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """A ThreadedMotoServer on ``port`` (0: a free one); yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        bound_host, bound_port = server.get_host_and_port()
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.stop()


def reset_moto_server(endpoint_url: str) -> None:
    """Forget every queue and message a moto server holds."""
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (a local test server)
        pass


def create_queue_with_dlq(
    client: Any,
    name: str = "commproc-test",
    *,
    max_receive_count: int = 3,
    fifo: bool = False,
    visibility_timeout: int = 30,
    attributes: Mapping[str, str] | None = None,
) -> QueueWithDLQ:
    """Create ``name`` with a dead-letter queue ``<name>-dlq`` and a redrive policy."""
    suffix = ".fifo" if fifo else ""
    base: dict[str, str] = {"FifoQueue": "true"} if fifo else {}
    dlq_url = client.create_queue(QueueName=f"{name}-dlq{suffix}", Attributes=dict(base))["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": "{max_receive_count}"}}'
    queue_attributes = {
        **base,
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": redrive,
        **(attributes or {}),
    }
    queue_url = client.create_queue(QueueName=f"{name}{suffix}", Attributes=queue_attributes)["QueueUrl"]
    return QueueWithDLQ(
        queue_url=queue_url, dlq_url=dlq_url, dlq_arn=dlq_arn, max_receive_count=max_receive_count
    )


# -- pytest fixtures ------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials and region us-east-1 for one test; shell AWS settings removed."""
    for name, value in _env_changes("us-east-1", {}).items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.fixture
def moto_sqs(aws_env: None) -> Iterator[Any]:
    """moto in-process for one test; yields a boto3 SQS client."""
    from moto import mock_aws

    with mock_aws():
        yield sqs_client()


@pytest.fixture(scope="session")
def moto_server_url() -> Iterator[str]:
    """The endpoint URL of a ThreadedMotoServer shared by the test session."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def moto_endpoint(moto_server_url: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The shared moto server, emptied, with ``AWS_ENDPOINT_URL_SQS`` pointing at it."""
    reset_moto_server(moto_server_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_server_url)
    return moto_server_url
