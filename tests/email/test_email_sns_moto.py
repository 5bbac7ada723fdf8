"""SES through SNS with raw message delivery, against moto's SNS and SQS, under each policy."""

from __future__ import annotations

import json

import pytest
from email_support import payload

from commproc_core.stores import MemoryStore


@pytest.mark.parametrize(
    ("config", "processed", "failures"),
    [
        ({}, 3, []),
        ({"sns_signature": "off"}, 3, []),
        ({"sns_signature": "required"}, 0, ["missing_signature"]),
    ],
)
def test_raw_message_delivery(
    aws_env: None,  # noqa: F811
    config: dict[str, str],
    processed: int,
    failures: list[str],
) -> None:
    import boto3
    from moto import mock_aws

    from commproc_email import EmailProcessor

    store = MemoryStore()
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        sns = boto3.client("sns", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="ses-events")["QueueUrl"]
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        topic_arn = sns.create_topic(Name="ses-events")["TopicArn"]
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=attributes["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        sns.publish(TopicArn=topic_arn, Message=json.dumps(payload("ses_notifications.json", "BounceMulti")))

        processor = EmailProcessor(queue_url=queue_url, config=config, store=store)
        stats = processor.process_messages(max_messages=10, wait_time=0)
        processor.close()
    assert (stats["received"], stats["processed"], stats["deleted"]) == (1, processed, 1)
    with store.unit_of_work() as uow:
        recorded = uow.events.find(channel="email")
    assert [e.error_code for e in recorded if e.status == "failed"] == failures
    # Raw delivery strips the envelope: no SNS ids travel with the event.
    assert all("sns_TopicArn" not in e.data.get("transport", {}) for e in recorded if e.status == "processed")
