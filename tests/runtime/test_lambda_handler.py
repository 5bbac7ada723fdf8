"""The AWS Lambda handler on SQS event fixtures: partial batch responses, caching, cold start."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from runtime_support import subprocess_env

from commproc_core.errors import ConfigError, ThrottledError
from commproc_core.factory import ProcessorFactory
from commproc_core.lambda_handler import make_handler, queue_url_from_arn, record_to_message
from commproc_core.runtime import lambda_handler
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor, table_counts

FIXTURES = Path(__file__).parent / "fixtures"
ARN = "arn:aws:sqs:eu-west-1:123456789012:example-inbound"


def sqs_event(*bodies: str, receive_count: int = 1) -> dict:
    return {
        "Records": [
            {
                "messageId": f"m{index}",
                "receiptHandle": f"rh{index}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": str(receive_count),
                    "SentTimestamp": "1772442900000",
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": ARN,
                "awsRegion": "eu-west-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def example_body(event_id: str) -> str:
    return json.dumps({"id": event_id, "from": "+14155550100", "text": "hi"})


def test_mixed_batch_reports_exactly_the_transient_failures() -> None:
    store = MemoryStore()
    processor = ExampleProcessor(store=store)
    processor.inject["e2"] = ThrottledError("slow down")
    processor.inject["e4"] = KeyError("a bug")
    handler = make_handler(processor=processor)
    event = sqs_event(
        example_body("e1"),
        example_body("e2"),
        "{not json",
        example_body("e3"),
        example_body("e4"),
        example_body("e1"),
    )
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m4"}]}
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 2
        assert uow.events.count(status="failed") == 1  # recorded, and not retried
    # Lambda redelivers only m1 and m4; with the trouble gone they go through.
    processor.inject.clear()
    retry = sqs_event(example_body("e2"), example_body("e4"), receive_count=2)
    assert handler(retry, None) == {"batchItemFailures": []}
    assert table_counts(store)["messages"] == 4


def test_store_outage_fails_every_record() -> None:
    store = MemoryStore()
    handler = make_handler(processor=ExampleProcessor(store=store))
    store.set_available(False)
    response = handler(sqs_event(example_body("e1"), example_body("e2")), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m0"}, {"itemIdentifier": "m1"}]}


def test_sms_fixture_processed_rejected_and_duplicate(plugins, sqlite_url) -> None:
    event = json.loads((FIXTURES / "lambda_sqs_sms_event.json").read_text())
    handler = make_handler("sms", store_url=sqlite_url)
    assert handler(event, None) == {"batchItemFailures": []}
    report = handler.processor.process_batch(
        [record_to_message(r) for r in event["Records"]], acknowledge=False
    )
    assert [o.outcome for o in report.outcomes] == ["duplicate", "duplicate", "rejected", "duplicate"]
    with handler.processor.store.unit_of_work() as uow:
        assert uow.events.count(event_type="inbound_message") == 2
        assert uow.events.count(event_type="keyword_opt_out") == 1
        assert uow.events.count(status="failed") == 1
        assert uow.consents.count(status="opted_out") == 1


def test_record_conversion() -> None:
    record = json.loads((FIXTURES / "lambda_sqs_sms_event.json").read_text())["Records"][1]
    message = record_to_message(record)
    assert message.message_id == "2e1424d4-f796-459a-8184-9c92662be6da"
    assert message.receipt_handle == record["receiptHandle"]
    assert message.body == record["body"]
    assert message.receive_count == 2
    assert message.sent_at == datetime.fromtimestamp(1772442900, tz=timezone.utc)
    assert message.queue_url == "https://sqs.us-east-1.amazonaws.com/123456789012/sms-inbound"
    assert queue_url_from_arn("arn:aws-cn:sqs:cn-north-1:123456789012:q") == (
        "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q"
    )
    assert queue_url_from_arn("not-an-arn") == ""


def test_store_and_processor_are_created_once_per_container(sqlite_url, monkeypatch) -> None:
    factory = ProcessorFactory()
    factory.register_processor("example", ExampleProcessor)
    monkeypatch.setenv("COMMPROC_CHANNEL", "example")
    monkeypatch.setenv("COMMPROC_CHANNEL_CONFIG", '{"create_leads": false}')
    first = make_handler(factory=factory, store_url=sqlite_url)
    second = make_handler(factory=factory, store_url=sqlite_url)
    assert first.processor is second.processor
    assert first.processor.settings.create_leads is False
    assert len(lambda_handler._STORES) == 1
    other = make_handler(factory=factory, store_url=sqlite_url, config={})
    assert other.processor is not first.processor
    assert other.processor.store is first.processor.store


def test_configuration_errors(monkeypatch) -> None:
    monkeypatch.delenv("COMMPROC_CHANNEL", raising=False)
    with pytest.raises(ConfigError, match="COMMPROC_CHANNEL"):
        make_handler(store_url="memory://")
    monkeypatch.setenv("COMMPROC_CHANNEL_CONFIG", "[1")
    with pytest.raises(ConfigError, match="not valid JSON"):
        make_handler("example", store_url="memory://")
    with pytest.raises(ValueError, match="not an SQS event"):
        make_handler(processor=ExampleProcessor(store=MemoryStore()))({"detail": {}}, None)


def test_cold_start_imports_neither_boto3_nor_sqlalchemy() -> None:
    script = (
        "import json, sys\n"
        "from commproc_core.lambda_handler import make_handler\n"
        "from commproc_core.stores import MemoryStore\n"
        "from commproc_sms import SMSProcessor\n"
        "handler = make_handler(processor=SMSProcessor(store=MemoryStore()))\n"
        "event = json.load(open(sys.argv[1]))\n"
        "print(json.dumps(handler(event, None)))\n"
        "print(json.dumps(sorted(m for m in ('boto3', 'botocore', 'sqlalchemy') if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(FIXTURES / "lambda_sqs_sms_event.json")],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
        check=True,
    )
    response, loaded = result.stdout.splitlines()
    assert json.loads(response) == {"batchItemFailures": []}
    assert json.loads(loaded) == []


def test_store_layout_and_channel_config_come_from_the_environment(tmp_path, monkeypatch) -> None:
    import sqlite3

    from commproc_core.stores.sql import SQLStore, upgrade

    path = tmp_path / "lambda.db"
    url = f"sqlite:///{path}"
    upgrade(url, table_prefix="cp_")
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    monkeypatch.setenv("COMMPROC_TABLE_PREFIX", "cp_")
    factory = ProcessorFactory()
    factory.register_processor("example", ExampleProcessor)
    handler = make_handler("example", factory=factory, config={})
    body = json.dumps({"id": "e1", "from": "+14155550100", "text": "hi"})
    assert handler(sqs_event(body), None) == {"batchItemFailures": []}
    store = SQLStore(url, table_prefix="cp_")
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 1
    store.close()
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert names and all(name.startswith("cp_") for name in names)

    # The channel config in the environment is checked like `channels add` checks one.
    monkeypatch.setenv("COMMPROC_CHANNEL_CONFIG", '{"prompt": "a\\u0000b"}')
    with pytest.raises(ConfigError, match=r"contains a NUL character @ config.prompt"):
        make_handler("example", factory=factory)
