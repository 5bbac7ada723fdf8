"""The seed's usage example, as written (only the import path changed), against moto's SQS."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from sms_support import LEAD_NUMBER, apigw_v1, form, inbound, payload_text

from commproc_core.stores.sql import SQLStore

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def seed_env(monkeypatch, tmp_path):
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    return url


def test_seed_usage_example(seed_env):
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="sms-events")["QueueUrl"]
        for body in (
            json.dumps(inbound("Hi, is this still available?")),
            form(inbound("STOP", sender="+14155550124")),
            json.dumps(apigw_v1(form(inbound("Hello again")), token=None)),
            payload_text("sns_status_delivered.json"),
        ):
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)

        from commproc_sms import SMSProcessor

        processor = SMSProcessor(queue_url=queue_url, config={"agent_mode": True})
        stats = processor.process_messages(max_messages=10)

        assert stats["processed"] == 4 and stats["failed"] == 0 and stats["deleted"] == 4
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
        processor.close()

    store = SQLStore(seed_env)
    try:
        with store.unit_of_work() as uow:
            reasons = sorted(m.reason or "" for m in uow.outbox.find())
            assert reasons == ["agent_reply", "agent_reply", "keyword_reply"]
            assert uow.agent_events.count(outcome="replied") == 2
            assert uow.leads.find_one(phone=LEAD_NUMBER) is not None
            assert uow.consents.find_one(address="+14155550124").status == "opted_out"
    finally:
        store.close()
