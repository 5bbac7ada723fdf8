"""Every ```python block of docs/email.md runs, in order, in one namespace.

The seed's quick-start example needs an SQS queue: the test serves one with
moto (fake credentials, a message waiting so the long poll returns at once)
and a throwaway database in ``COMMPROC_DATABASE_URL``, and hands the block
``queue_url``. Every other block is self-contained.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from email_support import payload

PAGE = Path(__file__).resolve().parents[2] / "docs" / "email.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_docs_email_examples_run(aws_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import boto3
    from moto import mock_aws

    blocks = BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMMPROC_DATABASE_URL", f"sqlite:///{tmp_path / 'docs.db'}")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="email-events")["QueueUrl"]
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(payload("ses_events.json", "Delivery")))
        namespace: dict[str, object] = {"__name__": "docs_email", "queue_url": queue_url}
        for number, block in enumerate(blocks, 1):
            exec(compile(block, f"email.md#example{number}", "exec"), namespace)
