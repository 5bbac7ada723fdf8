"""Fixtures: moto's SQS as an HTTP server (the app sends from worker threads), queues, the app."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from webhook_receiver import ReceiverSettings, SqsForwarder, create_app

from commproc_core.queues import SQSQueue

# moto_endpoint: the moto server shared by the session, emptied for each test.
pytest_plugins = ["commproc_core.testing.moto"]

PUBLIC = "https://hooks.example.com"


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    # Imported here: the module is a pytest plugin, registered (and rewritten) before any import of it.
    from commproc_core.testing.moto import sqs_client

    return sqs_client(moto_endpoint)


@pytest.fixture
def queues(sqs: Any) -> dict[str, str]:
    return {name: sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"] for name in ("sms", "email")}


@pytest.fixture
def make_client(sqs: Any, queues: dict[str, str]) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(app_options: dict[str, Any] | None = None, **settings: Any) -> TestClient:
        app = create_app(
            ReceiverSettings(
                sms_queue_url=queues["sms"],
                email_queue_url=queues["email"],
                public_base_url=PUBLIC,
                **settings,
            ),
            forwarder=SqsForwarder(sqs),
            **(app_options or {}),
        )
        client = TestClient(app)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def queue_for(sqs: Any, url: str) -> SQSQueue:
    return SQSQueue(url, client=sqs)


def depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])
