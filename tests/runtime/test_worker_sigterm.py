"""`commproc run` as a real process against moto's SQS server: SIGTERM mid-stream, restart, exactly once."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from urllib.parse import urlencode

import pytest
from runtime_support import CLI, subprocess_env, wait_for

from commproc_core.model import ChannelConfig
from commproc_core.stores.sql import SQLStore
from commproc_core.testing.moto import FAKE_AWS_ENV, create_queue_with_dlq, sqs_client

pytestmark = pytest.mark.slow

PER_PHASE = 15


def sms_body(i: int) -> str:
    return urlencode(
        {
            "MessageSid": f"SM{i:032x}",
            "AccountSid": "AC00000000000000000000000000000001",
            "From": f"+1415555{i:04d}",
            "To": "+14155550199",
            "Body": f"message number {i}",
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
            "FromCountry": "US",
            "ApiVersion": "2010-04-01",
        }
    )


def email_body(i: int) -> str:
    return json.dumps(
        {
            "email": f"reader{i}@example.com",
            "timestamp": 1772442900 + i,
            "event": "delivered",
            "sg_event_id": f"evt-{i:06d}",
            "sg_message_id": f"msg{i:06d}.filter0001.16648.5515E0B88.0",
            "response": "250 OK",
        }
    )


def send(client, queue_url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        entries = [{"Id": str(n), "MessageBody": b} for n, b in enumerate(bodies[start : start + 10])]
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not response.get("Failed")


def start_worker(database: str, endpoint: str, log_path) -> subprocess.Popen:
    env = subprocess_env(**FAKE_AWS_ENV, AWS_ENDPOINT_URL_SQS=endpoint)
    command = [
        *CLI,
        "run",
        "--database",
        database,
        "--processor",
        "sms=commproc_sms:SMSProcessor",
        "--processor",
        "email=commproc_email:EmailProcessor",
        "--wait-time",
        "1",
        "--pollers",
        "2",
        "--batch-size",
        "5",
        "--log-level",
        "INFO",
    ]
    log = open(log_path, "a")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    return process


def count(store: SQLStore, **where) -> int:
    with store.unit_of_work() as uow:
        return uow.events.count(**where)


def queue_empty(client, url: str) -> bool:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return all(attributes[name] == "0" for name in names)


def test_sigterm_mid_stream_then_restart_records_every_event_once(moto_endpoint, tmp_path) -> None:
    client = sqs_client(moto_endpoint)
    sms = create_queue_with_dlq(client, "sms-inbound", visibility_timeout=30)
    email = create_queue_with_dlq(client, "email-events", visibility_timeout=30)
    database = f"sqlite:///{tmp_path / 'commproc.db'}"
    store = SQLStore(database, auto_upgrade=True)
    with store.unit_of_work() as uow:
        uow.channel_configs.add(ChannelConfig(channel_type="sms", queue_url=sms.queue_url))
        uow.channel_configs.add(ChannelConfig(channel_type="email", queue_url=email.queue_url))
        uow.channel_configs.add(ChannelConfig(channel_type="sms", queue_url="https://x/off", is_active=False))
        uow.commit()
    log_path = tmp_path / "worker.log"

    worker = start_worker(database, moto_endpoint, log_path)
    try:
        send(client, sms.queue_url, [sms_body(i) for i in range(PER_PHASE)])
        send(client, email.queue_url, [email_body(i) for i in range(PER_PHASE)])
        wait_for(lambda: count(store, status="processed") >= 4, timeout=30)
        worker.send_signal(signal.SIGTERM)
        # More events keep arriving while the worker stops: the restart must take them.
        send(client, sms.queue_url, [sms_body(i) for i in range(PER_PHASE, 2 * PER_PHASE)])
        send(client, email.queue_url, [email_body(i) for i in range(PER_PHASE, 2 * PER_PHASE)])
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    first_run = count(store, status="processed")
    assert 4 <= first_run < 4 * PER_PHASE
    with store.unit_of_work() as uow:
        # Every received message was finished or left untouched: nothing half-processed.
        assert uow.processing_records.count(status="received") == 0
        assert uow.messages.count(channel="sms") == uow.events.count(
            channel="sms", event_type="inbound_message"
        )

    worker = start_worker(database, moto_endpoint, log_path)
    try:
        wait_for(lambda: count(store, status="processed") >= 4 * PER_PHASE, timeout=60)
        wait_for(lambda: queue_empty(client, sms.queue_url) and queue_empty(client, email.queue_url))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        if worker.poll() is None:
            worker.kill()

    with store.unit_of_work() as uow:
        events = uow.events.find()
        assert sorted(e.dedupe_key for e in events if e.channel == "sms") == sorted(
            f"twilio:in:SM{i:032x}" for i in range(2 * PER_PHASE)
        )
        assert sorted(e.dedupe_key for e in events if e.channel == "email") == sorted(
            f"sendgrid:evt-{i:06d}" for i in range(2 * PER_PHASE)
        )
        assert all(e.status == "processed" for e in events)
        assert uow.messages.count(channel="sms") == 2 * PER_PHASE
        assert uow.processing_records.count(status="received") == 0
    store.close()
    for queue in (sms, email):
        assert queue_empty(client, queue.dlq_url)

    log = log_path.read_text()
    assert log.count("worker started: 2 channel(s), 2 poller(s) each") == 2
    assert log.count("worker stopped") == 2
    # Phone numbers and addresses never reach the log at INFO and above.
    assert not re.search(r"\+1415555\d{4}", log)
    assert "@example.com" not in log
