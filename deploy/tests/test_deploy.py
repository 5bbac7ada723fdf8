"""deploy/: the SAM template (cfn-lint, and its mapping template through the real processors),
the Dockerfiles (hadolint), the Lambda function, and docker-compose's worker configuration run for real."""

from __future__ import annotations

import base64
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
import tomllib
import yaml
from conftest import DEPLOY, ROOT, render
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from twilio.request_validator import RequestValidator

from commproc_core.queues import SQSQueue
from commproc_core.stores import MemoryStore
from commproc_core.testing import drain
from commproc_email import EmailProcessor
from commproc_sms import SMSProcessor

TOKEN = "12345678901234567890123456789012"
DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
INBOUND = {
    "MessageSid": "SM40000000000000000000000000000001",
    "AccountSid": "AC40000000000000000000000000000001",
    "From": "+14155550123",
    "To": "+14155550199",
    "Body": "Is the offer still on?",
    "NumMedia": "0",
}
FORM = "&".join(f"{k}={v.replace('+', '%2B').replace(' ', '+')}" for k, v in INBOUND.items())
TWILIO_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "TwilioProxy/1.1"}
PG_URL = os.environ.get("DEPLOY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def message_body(rendered: str) -> str:
    """The SQS message API Gateway's SendMessage call would create."""
    form = parse_qs(rendered, keep_blank_values=True, strict_parsing=True)
    assert form["Action"] == ["SendMessage"]
    return form["MessageBody"][0]


def twilio_signature(url: str) -> str:
    return RequestValidator(TOKEN).compute_signature(url, INBOUND)


# -- the SAM template -----------------------------------------------------------------------------


def test_the_template_passes_cfn_lint() -> None:
    cfn_lint = shutil.which("cfn-lint")
    assert cfn_lint, "cfn-lint is not installed (the deploy dependency group installs it)"
    done = subprocess.run([cfn_lint, str(DEPLOY / "template.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_queue_has_a_dead_letter_queue_and_the_mapping_reports_item_failures(template) -> None:
    resources = template["Resources"]
    for channel in ("Sms", "Email"):
        queue = resources[f"{channel}Queue"]["Properties"]
        assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"GetAtt": f"{channel}DeadLetterQueue.Arn"}
        dlq = resources[f"{channel}DeadLetterQueue"]["Properties"]
        assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
        function = resources[f"{channel}Function"]["Properties"]
        event = function["Events"]["Queue"]["Properties"]
        assert event["Queue"] == {"GetAtt": f"{channel}Queue.Arn"}
        assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # Lambda's SQS mapping wants the visibility timeout at six times the function's timeout.
        assert queue["VisibilityTimeout"] >= 6 * template["Globals"]["Function"]["Timeout"]
        assert function["Environment"]["Variables"]["COMMPROC_CHANNEL"] == channel.lower()


def test_the_three_mapping_templates_are_one(mapping_templates) -> None:
    assert set(mapping_templates) == {"application/x-www-form-urlencoded", "application/json", "text/plain"}
    assert len(set(mapping_templates.values())) == 1


def test_a_signed_twilio_webhook_goes_through_api_gateway_into_the_processor(
    mapping_templates, moto_sqs
) -> None:
    url = f"https://{DOMAIN}/Prod/sms/twilio"
    headers = {**TWILIO_HEADERS, "X-Twilio-Signature": twilio_signature(url)}
    rendered = render(mapping_templates["application/x-www-form-urlencoded"], body=FORM, headers=headers)
    queue_url = moto_sqs.create_queue(QueueName="sms")["QueueUrl"]
    moto_sqs.send_message(QueueUrl=queue_url, MessageBody=message_body(rendered))

    store = MemoryStore()
    config = {"auth_token": TOKEN, "require_signature": True, "wait_time": 0}
    stats = drain(SMSProcessor(queue=SQSQueue(queue_url, client=moto_sqs), store=store, config=config))
    assert (stats["processed"], stats["failed"]) == (1, 0)
    with store.unit_of_work() as uow:
        assert uow.messages.find_one(provider_message_id=INBOUND["MessageSid"]).body == INBOUND["Body"]


def test_the_event_keeps_the_query_string_and_only_the_signature_headers(mapping_templates) -> None:
    url = f"https://{DOMAIN}/Prod/sms/twilio?attempt=2&tag=a%22b%5Cc"
    headers = {
        **TWILIO_HEADERS,
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, INBOUND),
        "Cookie": "session=secret",
        "Authorization": "Basic c2VjcmV0",
    }
    rendered = render(
        mapping_templates["application/json"],
        body=FORM,
        headers=headers,
        query={"attempt": "2", "tag": 'a"b\\c'},
    )
    event = json.loads(message_body(rendered))
    assert event["queryStringParameters"] == {"attempt": "2", "tag": 'a"b\\c'}
    assert event["requestContext"]["path"] == "/Prod/sms/twilio"
    assert set(event["headers"]) == {"host", "Content-Type", "X-Twilio-Signature"}
    assert base64.b64decode(event["body"]).decode() == FORM


def test_the_signature_over_a_url_with_a_query_still_verifies(mapping_templates) -> None:
    url = f"https://{DOMAIN}/Prod/sms/twilio?attempt=2"
    headers = {
        **TWILIO_HEADERS,
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, INBOUND),
    }
    body = message_body(
        render(mapping_templates["text/plain"], body=FORM, headers=headers, query={"attempt": "2"})
    )
    store = MemoryStore()
    processor = SMSProcessor(store=store, config={"auth_token": TOKEN, "require_signature": True})
    from commproc_core.testing import make_message

    report = processor.process_batch([make_message(body)], acknowledge=False)
    assert report.outcomes[0].outcome == "processed", report.outcomes[0].detail


def test_an_apostrophe_in_a_query_value_is_recorded_not_lost(mapping_templates) -> None:
    # API Gateway's escapeJavaScript writes ' as \', which JSON refuses: commproc records the
    # message as an invalid payload (and acknowledges it) rather than losing it silently.
    headers = {**TWILIO_HEADERS, "X-Twilio-Signature": "irrelevant"}
    body = message_body(
        render(mapping_templates["text/plain"], body=FORM, headers=headers, query={"q": "it's"})
    )
    processor = SMSProcessor(store=MemoryStore())
    from commproc_core.testing import make_message

    outcome = processor.process_batch([make_message(body)], acknowledge=False).outcomes[0]
    assert (outcome.outcome, outcome.reason) == ("rejected", "invalid_payload")


def test_a_signed_sendgrid_batch_goes_through_api_gateway_into_the_processor(
    mapping_templates, moto_sqs
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode()
    batch = json.dumps(
        [
            {
                "email": "jane@example.com",
                "timestamp": 1513299569,
                "event": "delivered",
                "sg_event_id": "sg_event_delivered_9",
                "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
            }
        ]
    )
    timestamp = str(int(time.time()))
    signature = base64.b64encode(key.sign((timestamp + batch).encode(), ec.ECDSA(hashes.SHA256()))).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }
    rendered = render(
        mapping_templates["application/json"], body=batch, headers=headers, path="/Prod/email/sendgrid"
    )
    queue_url = moto_sqs.create_queue(QueueName="email")["QueueUrl"]
    moto_sqs.send_message(QueueUrl=queue_url, MessageBody=message_body(rendered))

    config = {"sendgrid_public_key": public, "sendgrid_signature": "required", "wait_time": 0}
    stats = drain(
        EmailProcessor(queue=SQSQueue(queue_url, client=moto_sqs), store=MemoryStore(), config=config)
    )
    assert (stats["processed"], stats["failed"]) == (1, 0)


# -- the Lambda function --------------------------------------------------------------------------


@pytest.fixture
def lambda_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from commproc_core.lambda_handler import clear_cache
    from commproc_core.stores.sql import upgrade

    url = f"sqlite:///{tmp_path / 'lambda.db'}"
    upgrade(url)  # the deploy step: `commproc db upgrade`
    monkeypatch.setenv("COMMPROC_CHANNEL", "sms")
    monkeypatch.setenv(
        "COMMPROC_CHANNEL_CONFIG", json.dumps({"auth_token": TOKEN, "require_signature": True})
    )
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    monkeypatch.delenv("COMMPROC_SCHEMA", raising=False)
    yield url
    clear_cache()


def test_the_lambda_function_processes_what_api_gateway_queued(mapping_templates, lambda_env) -> None:
    handler = runpy.run_path(str(DEPLOY / "lambda" / "app.py"))["handler"]
    url = f"https://{DOMAIN}/Prod/sms/twilio"
    headers = {**TWILIO_HEADERS, "X-Twilio-Signature": twilio_signature(url)}
    good = message_body(
        render(mapping_templates["application/x-www-form-urlencoded"], body=FORM, headers=headers)
    )
    forged = good.replace(headers["X-Twilio-Signature"], base64.b64encode(b"x" * 20).decode())
    event = {
        "Records": [
            {
                "messageId": f"m{number}",
                "receiptHandle": f"handle-{number}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:commproc-sms",
            }
            for number, body in enumerate((good, forged), 1)
        ]
    }
    # Both are done: the good one processed, the forged one recorded as failed; neither is retried.
    assert handler(event, None) == {"batchItemFailures": []}
    engine = sa.create_engine(lambda_env)
    with engine.connect() as conn:
        statuses = dict(
            conn.execute(sa.text("SELECT queue_message_id, status FROM processing_records")).all()
        )
    engine.dispose()
    assert statuses == {"m1": "processed", "m2": "failed"}


# -- the images -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "lambda.Dockerfile"])
def test_the_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    hadolint = shutil.which("hadolint")
    assert hadolint, "hadolint is not installed (the deploy dependency group installs it from PyPI)"
    done = subprocess.run([hadolint, str(DEPLOY / dockerfile)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "lambda.Dockerfile"])
def test_the_images_copy_only_what_exists(dockerfile: str) -> None:
    text = (DEPLOY / dockerfile).read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile}: COPY {source} names nothing in the build context"


# -- docker compose -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def test_compose_wires_the_worker_to_its_database_and_queue(compose) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "sqs", "migrate", "worker"}
    worker = services["worker"]
    env = worker["environment"]
    database = urlsplit(env["COMMPROC_DATABASE_URL"])
    postgres = services["postgres"]["environment"]
    assert database.hostname == "postgres" and database.path == f"/{postgres['POSTGRES_DB']}"
    assert (database.username, database.password) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
    )
    assert urlsplit(env["AWS_ENDPOINT_URL_SQS"]).hostname == "sqs"
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["environment"] == env
    mounted = {v.split(":")[0]: v.split(":")[1] for v in worker["volumes"]}
    assert mounted["./worker.toml"] == worker["command"][-1]
    assert services["sqs"]["volumes"] == ["./elasticmq.conf:/opt/elasticmq.conf:ro"]


def test_the_workers_queues_exist_in_elasticmq_with_a_dead_letter_queue() -> None:
    settings = tomllib.loads((DEPLOY / "worker.toml").read_text())
    conf = (DEPLOY / "elasticmq.conf").read_text()
    for channel in settings["channels"]:
        url = urlsplit(channel["queue_url"])
        assert url.hostname == "sqs" and url.port == 9324
        name = url.path.rsplit("/", 1)[-1]
        block = re.search(rf"^  {re.escape(name)} \{{(.*?)^  \}}", conf, re.S | re.M)
        assert block, f"{name} is not a queue of elasticmq.conf"
        assert f'name = "{name}-dlq"' in block.group(1)
        assert re.search(rf"^  {re.escape(name)}-dlq \{{\}}", conf, re.M)


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"deploy_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:  # pragma: no cover - says what to do
        pytest.fail(f"no PostgreSQL at {PG_URL} (set DEPLOY_TEST_POSTGRES_URL): {exc}")
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    engine.dispose()


def test_the_compose_worker_configuration_runs(compose, pg_schema, moto_endpoint, tmp_path) -> None:
    """The worker's command, settings file and environment from docker-compose.yml, with the service
    hosts pointed at this machine: PostgreSQL (a schema of its own) and moto standing in for ElasticMQ."""
    from commproc_core.testing.moto import create_queue_with_dlq, sqs_client

    sqs = sqs_client(moto_endpoint)
    settings = (DEPLOY / "worker.toml").read_text()
    for channel in tomllib.loads(settings)["channels"]:
        name = channel["queue_url"].rsplit("/", 1)[-1]
        queue = create_queue_with_dlq(sqs, name, max_receive_count=5)
        settings = settings.replace(channel["queue_url"], queue.queue_url)
    config = tmp_path / "worker.toml"
    config.write_text(settings)

    worker = compose["services"]["worker"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMMPROC_", "AWS_"))}
    env.update({k: str(v) for k, v in worker["environment"].items()})
    env.update(
        COMMPROC_DATABASE_URL=PG_URL,
        COMMPROC_SCHEMA=pg_schema,
        AWS_ENDPOINT_URL_SQS=moto_endpoint,
        COMMPROC_WAIT_TIME="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])),
    )
    commproc = [
        sys.executable,
        "-c",
        "import sys; from commproc_core.runtime.cli import main; sys.exit(main())",
    ]
    migrate = subprocess.run(
        [*commproc, *compose["services"]["migrate"]["command"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr

    sms_url = next(u for u in sqs.list_queues()["QueueUrls"] if u.endswith("/sms-events"))
    sqs.send_message(QueueUrl=sms_url, MessageBody=json.dumps(INBOUND))
    command = [part.replace("/etc/commproc/worker.toml", str(config)) for part in worker["command"]]
    process = subprocess.Popen(
        [*commproc, *command], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    engine = sa.create_engine(PG_URL, poolclass=sa.pool.NullPool)
    try:
        deadline = time.monotonic() + 60
        processed = 0
        while time.monotonic() < deadline and process.poll() is None:
            with engine.connect() as conn:
                processed = conn.execute(
                    sa.text(
                        f"SELECT count(*) FROM \"{pg_schema}\".processing_records WHERE status = 'processed'"
                    )
                ).scalar_one()
            if processed:
                break
            time.sleep(0.3)
        assert processed == 1, (
            process.stdout.read() if process.poll() is not None else "not processed in 60 s"
        )
    finally:
        engine.dispose()
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker is the failure
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output[-3000:]
