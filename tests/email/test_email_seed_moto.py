"""The seed's usage example, with only the import path changed, against moto's SQS (and SNS)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from email_support import load, payload

from commproc_core.stores.sql import SQLStore


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'commproc.db'}"
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    return url


def test_seed_usage_example(aws_env: None, database: str) -> None:  # noqa: F811
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="email-events")["QueueUrl"]
        bodies: list[Any] = [
            payload("ses_events.json", "Bounce"),
            load("sendgrid_batch.json")[:4],
            payload("mailgun.json", "delivered"),
            payload("postmark.json", "SpamComplaint"),
        ]
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))

        # The seed's example, with only the import path changed:
        from commproc_email import EmailProcessor

        processor = EmailProcessor(queue_url=queue_url)
        stats = processor.process_messages(max_messages=10)

        assert (stats["received"], stats["processed"], stats["failed"], stats["deleted"]) == (4, 7, 0, 4)
        left = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        assert left["Attributes"]["ApproximateNumberOfMessages"] == "0"
        processor.close()

    store = SQLStore(database)
    try:
        with store.unit_of_work() as uow:
            assert uow.events.count(channel="email", status="processed") == 7
            assert uow.consents.count(status="suppressed") == 2
    finally:
        store.close()


def test_ses_through_sns_into_sqs(aws_env: None, database: str) -> None:  # noqa: F811
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        sns = boto3.client("sns", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="ses-events")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        topic_arn = sns.create_topic(Name="ses-events")["TopicArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        sns.publish(TopicArn=topic_arn, Message=json.dumps(payload("ses_notifications.json", "BounceMulti")))

        from commproc_email import EmailProcessor

        # moto signs with a placeholder, so the signature check is off here;
        # test_email_signatures covers real signatures with generated keys.
        processor = EmailProcessor(queue_url=queue_url, config={"sns_signature": "off"})
        stats = processor.process_messages(max_messages=10)
        assert (stats["processed"], stats["failed"]) == (3, 0)
        processor.close()

    store = SQLStore(database)
    try:
        with store.unit_of_work() as uow:
            recorded = uow.events.find(channel="email")
            assert {e.data["transport"]["sns_TopicArn"] for e in recorded} == {topic_arn}
    finally:
        store.close()
