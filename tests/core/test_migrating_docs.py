"""docs/migrating.md: every example of the guide, as the page writes it, in order, against moto's SQS.

The queues the guide's examples read are created first; before an example
that waits on a queue (the guide's long polls), the messages it will find
are sent, so nothing waits the full 20 seconds.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from moto import mock_aws

from commproc_core import ProcessorFactory
from commproc_core.stores.sql import SQLStore
from commproc_core.testing.moto import sqs_client

DOC = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
BASE = "https://sqs.us-east-1.amazonaws.com/123456789012"
LEAD, OURS = "+14155550123", "+14155550199"


def sms(body: str, number: int) -> str:
    return json.dumps(
        {
            "MessageSid": f"SM{number:032x}",
            "AccountSid": "AC" + "0" * 32,
            "From": LEAD,
            "To": OURS,
            "Body": body,
        }
    )


def postmark_bounce() -> str:
    return json.dumps(
        {
            "RecordType": "Bounce",
            "Type": "HardBounce",
            "TypeCode": 1,
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Email": "someone@example.com",
            "BouncedAt": "2026-01-02T03:04:05Z",
            "Inactive": True,
        }
    )


@pytest.fixture
def page_env(aws_env, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMPROC_DATABASE_URL", "sqlite:///commproc.db")
    ProcessorFactory.set_default(None)
    level = logging.getLogger("commproc").level
    yield tmp_path
    logging.getLogger("commproc").setLevel(level)
    ProcessorFactory.set_default(None)


def test_the_guides_examples_run(page_env, capsys) -> None:
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 11
    namespace: dict = {"__name__": "docs_migrating"}
    with mock_aws():
        sqs = sqs_client()
        for name in ("sms-events", "email-events", "custom-events"):
            sqs.create_queue(QueueName=name)
        for number, text in enumerate(["Hi, is this still available?", "STOP"], 1):
            sqs.send_message(QueueUrl=f"{BASE}/sms-events", MessageBody=sms(text, number))
        sqs.send_message(QueueUrl=f"{BASE}/email-events", MessageBody=postmark_bounce())
        for event_id in ("c1", "c2"):
            sqs.send_message(QueueUrl=f"{BASE}/custom-events", MessageBody=json.dumps({"id": event_id}))
        for number, code in enumerate(blocks, 1):
            if "receive_messages(max_messages=10, wait_time=20)" in code:
                sqs.send_message(QueueUrl=f"{BASE}/sms-events", MessageBody=sms("By hand", 10))
            if "process_messages(max_messages=1)" in code:
                sqs.send_message(QueueUrl=f"{BASE}/sms-events", MessageBody=sms("Integration", 11))
            try:
                exec(compile(code, f"docs/migrating.md block {number}", "exec"), namespace)
            except Exception as error:  # pragma: no cover - the message says which block
                pytest.fail(f"docs/migrating.md block {number} failed: {type(error).__name__}: {error}")
        left = sqs.get_queue_attributes(QueueUrl=f"{BASE}/sms-events", AttributeNames=["All"])["Attributes"]
        assert (left["ApproximateNumberOfMessages"], left["ApproximateNumberOfMessagesNotVisible"]) == (
            "0",
            "0",
        )
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["Processed: 2, Failed: 0", "Processed: 2, Failed: 0"]
    assert logging.getLogger("commproc").level == logging.DEBUG
    store = SQLStore(f"sqlite:///{page_env / 'commproc.db'}")
    try:
        with store.unit_of_work() as uow:
            assert uow.events.count(channel="custom", event_type="custom_event") == 2
            # Two from the usage example, one by hand, one from the integration test; and the STOP's keyword.
            assert uow.events.count(channel="sms", event_type="inbound_message") == 4
            assert uow.events.count(channel="sms", event_type="keyword_opt_out") == 1
            assert uow.events.count(channel="email", event_type="bounced") == 1
            assert uow.consents.find_one(address=LEAD).status == "opted_out"
            assert uow.channel_configs.count(channel_type="sms", is_active=True) == 1
    finally:
        store.close()
