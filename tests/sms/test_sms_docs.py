"""Every ```python block of docs/sms.md runs, in order, in one namespace."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from sms_support import inbound

DOC = Path(__file__).resolve().parents[2] / "docs" / "sms.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_page_has_examples():
    assert len(blocks()) >= 8


def test_examples_run(monkeypatch, tmp_path, capsys):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "COMMPROC_DATABASE_URL": f"sqlite:///{tmp_path / 'docs.db'}",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, object] = {"__name__": "docs_sms"}
    with mock_aws():
        # The quick start reads this queue (moto's default account is 123456789012).
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="sms-events")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(inbound("Hello from the quick start")))
        for number, code in enumerate(blocks(), 1):
            try:
                exec(compile(code, f"docs/sms.md block {number}", "exec"), namespace)
            except Exception as error:  # pragma: no cover - the message says which block
                pytest.fail(f"docs/sms.md block {number} failed: {type(error).__name__}: {error}")
    printed = capsys.readouterr().out
    assert "1 0 1" in printed  # the quick start: processed, failed, deleted
    assert "to +14155550124: You have successfully been unsubscribed" in printed
