"""Authenticity: SNS signatures, Mailgun HMAC and SendGrid ECDSA, with keys made in the test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from email_support import CERT_URL, TOPIC_ARN, SnsSigner, events, payload, processor, run

from commproc_core.errors import ConfigError, SignatureError, TransientError
from commproc_core.stores import MemoryStore
from commproc_email import SnsVerifier, verify_mailgun, verify_sendgrid
from commproc_email.providers.mailgun import MailgunSignature
from commproc_email.signatures import load_sendgrid_public_key

# Signature timestamps are judged against the time a message entered the queue,
# which the in-memory queue stamps with the real clock.
NOW = datetime.now(timezone.utc)
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner()


# -- SNS ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_sns_signature_versions_verify(signer: SnsSigner, version: str) -> None:
    envelope = signer.wrap(payload("ses_events.json", "Delivery"), version=version)
    SnsVerifier(signer.fetch).verify(envelope)


def test_sns_subject_is_part_of_the_signed_text(signer: SnsSigner) -> None:
    envelope = signer.wrap({"eventType": "Send"}, subject="Amazon SES Email Event Notification")
    SnsVerifier(signer.fetch).verify(envelope)
    with pytest.raises(SignatureError):
        SnsVerifier(signer.fetch).verify(dict(envelope, Subject="Something else"))


def test_sns_subscription_confirmation_signing_string(signer: SnsSigner) -> None:
    envelope = signer.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37",
            "TopicArn": TOPIC_ARN,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription",
            "Timestamp": "2012-04-26T20:45:04.751Z",
            "SigningCertURL": CERT_URL,
        }
    )
    SnsVerifier(signer.fetch).verify(envelope)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"Message": json.dumps({"eventType": "Bounce"})}, "$.Signature"),
        ({"MessageId": "another"}, "$.Signature"),
        ({"Timestamp": "2017-08-05T00:41:04.000Z"}, "$.Signature"),
        ({"Signature": base64.b64encode(b"x" * 256).decode()}, "$.Signature"),
        ({"Signature": "not base64!"}, "$.Signature"),
        ({"Signature": None}, "$.Signature"),
        ({"SignatureVersion": "3"}, "$.SignatureVersion"),
        ({"SigningCertURL": "http://sns.us-east-1.amazonaws.com/cert.pem"}, "$.SigningCertURL"),
        ({"SigningCertURL": "https://s3.amazonaws.com/attacker/cert.pem"}, "$.SigningCertURL"),
        ({"SigningCertURL": "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem"}, "$.SigningCertURL"),
        ({"SigningCertURL": "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem"}, "$.SigningCertURL"),
        ({"SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.txt"}, "$.SigningCertURL"),
        ({"SigningCertURL": "https://user@sns.us-east-1.amazonaws.com/cert.pem"}, "$.SigningCertURL"),
        ({"SigningCertURL": None}, "$.SigningCertURL"),
    ],
)
def test_sns_tampering_is_refused(signer: SnsSigner, change: dict[str, Any], field: str) -> None:
    envelope = dict(signer.wrap(payload("ses_events.json", "Delivery")), **change)
    with pytest.raises(SignatureError) as info:
        SnsVerifier(signer.fetch).verify(envelope)
    assert info.value.field == field


def test_sns_china_regions_are_amazon_hosts(signer: SnsSigner) -> None:
    url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem"
    SnsVerifier(signer.fetch).verify(signer.wrap({"eventType": "Send"}, cert_url=url))


def test_sns_certificates_are_fetched_once() -> None:
    signer = SnsSigner()
    verifier = SnsVerifier(signer.fetch)
    for number in range(3):
        verifier.verify(signer.wrap({"eventType": "Send"}, message_id=f"m-{number}"))
    assert signer.fetched == [CERT_URL]


def test_sns_topic_allow_list(signer: SnsSigner) -> None:
    verifier = SnsVerifier(signer.fetch, topic_arns=[TOPIC_ARN])
    verifier.verify(signer.wrap({"eventType": "Send"}))
    other = signer.wrap({"eventType": "Send"}, topic="arn:aws:sns:us-east-1:999999999999:someone-else")
    with pytest.raises(SignatureError, match="not in the allowed list") as info:
        verifier.verify(other)
    assert info.value.field == "$.TopicArn"


def test_sns_certificate_from_another_key_fails(signer: SnsSigner) -> None:
    impostor = SnsSigner()
    with pytest.raises(SignatureError):
        SnsVerifier(signer.fetch).verify(impostor.wrap({"eventType": "Send"}))


def test_sns_expired_certificate_fails(signer: SnsSigner) -> None:
    later = SnsVerifier(signer.fetch, clock=lambda: datetime.now(timezone.utc) + timedelta(days=365))
    with pytest.raises(SignatureError, match="not currently valid"):
        later.verify(signer.wrap({"eventType": "Send"}))


def test_sns_certificate_fetch_failure_is_transient(signer: SnsSigner) -> None:
    cause = "could not fetch the SNS signing certificate from sns.us-east-1.amazonaws.com: connection refused"

    def broken(url: str) -> bytes:
        raise TransientError(cause)

    with pytest.raises(TransientError) as info:
        SnsVerifier(broken).verify(signer.wrap({"eventType": "Send"}))
    assert str(info.value) == cause
    with pytest.raises(SignatureError, match="not a PEM"):
        SnsVerifier(lambda url: b"<html>").verify(signer.wrap({"eventType": "Send"}))


# -- SNS through the processor -----------------------------------------------------------------


def test_signed_sns_envelopes_are_processed(signer: SnsSigner) -> None:
    store = MemoryStore()
    proc = processor(
        store, {"sns_signature": "required", "sns_topic_arns": [TOPIC_ARN]}, certificate_fetcher=signer.fetch
    )
    bounce = payload("ses_notifications.json", "BounceMulti")
    stats = run(proc, [signer.wrap(bounce, version="1")])
    assert (stats.processed, stats.failed) == (3, 0)
    recorded = events(store, status="processed")
    assert {e.data["transport"]["sns_TopicArn"] for e in recorded} == {TOPIC_ARN}
    # The event's own time, not the SNS timestamp.
    assert {e.occurred_at.isoformat() for e in recorded} == {"2016-01-27T14:59:38.237000+00:00"}


def test_tampered_sns_envelope_is_a_permanent_failure(signer: SnsSigner) -> None:
    store = MemoryStore()
    proc = processor(store, certificate_fetcher=signer.fetch)
    envelope = signer.wrap(payload("ses_events.json", "Delivery"))
    envelope["Message"] = json.dumps(payload("ses_events.json", "Bounce"))
    stats = run(proc, [envelope])
    assert (stats.processed, stats.failed, stats.deleted) == (0, 1, 1)
    (failed,) = events(store)
    assert (failed.status, failed.error_code) == ("failed", "bad_signature")
    with store.unit_of_work() as uow:
        assert uow.consents.count() == 0


def test_sns_required_refuses_raw_ses() -> None:
    store = MemoryStore()
    proc = processor(store, {"sns_signature": "required"})
    stats = run(proc, [payload("ses_events.json", "Bounce")])
    assert stats.failed == 1
    assert events(store)[0].error_code == "missing_signature"


def test_sns_signature_off_accepts_unsigned_envelopes() -> None:
    signer = SnsSigner()
    store = MemoryStore()
    proc = processor(store, {"sns_signature": "off"}, certificate_fetcher=signer.fetch)
    envelope = dict(signer.wrap(payload("ses_events.json", "Delivery")), Signature="bogus")
    assert run(proc, [envelope]).processed == 1
    assert signer.fetched == []


# -- Mailgun ------------------------------------------------------------------------------------


def mailgun_signed(
    name: str, *, key: str = MAILGUN_KEY, timestamp: int = int(NOW.timestamp())
) -> dict[str, Any]:
    data = payload("mailgun.json", name)
    token = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    data["signature"] = {"timestamp": str(timestamp), "token": token, "signature": digest}
    return data


def test_mailgun_hmac_verifies() -> None:
    block = MailgunSignature(**mailgun_signed("delivered")["signature"])
    verify_mailgun(block, MAILGUN_KEY, now=NOW, max_age_seconds=900)


@pytest.mark.parametrize(
    ("data", "now", "message"),
    [
        (mailgun_signed("delivered", key="wrong-key"), NOW, "does not verify"),
        (mailgun_signed("delivered", timestamp=int(NOW.timestamp()) - 3600), NOW, "more than 900s"),
        (mailgun_signed("delivered", timestamp=int(NOW.timestamp()) + 3600), NOW, "more than 900s"),
    ],
)
def test_mailgun_hmac_failures(data: dict[str, Any], now: datetime, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_mailgun(MailgunSignature(**data["signature"]), MAILGUN_KEY, now=now, max_age_seconds=900)


def test_mailgun_through_the_processor() -> None:
    store = MemoryStore()
    proc = processor(store, {"mailgun_signature": "required", "mailgun_signing_key": MAILGUN_KEY})
    good = mailgun_signed("delivered")
    tampered = mailgun_signed("failed_permanent")
    tampered["signature"]["token"] = "b" * 50
    unsigned = payload("mailgun.json", "opened")
    del unsigned["signature"]
    stats = run(proc, [good, tampered, unsigned])
    assert (stats.processed, stats.failed) == (1, 2)
    failures = events(store, status="failed")
    assert [f.error_code for f in failures] == ["bad_signature", "missing_signature"]
    assert {f.provider for f in failures} == {"mailgun"}


def test_mailgun_freshness_is_judged_against_the_queue_time() -> None:
    # A message that waited an hour in the queue is still fresh: what counts is
    # when it was enqueued (QueueMessage.sent_at), not when it is processed.
    from commproc_core.model import QueueMessage
    from commproc_core.pipeline.envelope import unwrap

    store = MemoryStore()
    proc = processor(store, {"mailgun_signing_key": MAILGUN_KEY})
    signed_at = int(NOW.timestamp()) - 3600
    data = mailgun_signed("delivered", timestamp=signed_at)
    message = QueueMessage(
        message_id="q-1",
        receipt_handle="rh",
        body=json.dumps(data),
        sent_at=datetime.fromtimestamp(signed_at + 5, timezone.utc),
    )
    from commproc_core.pipeline.processor import EventPayload

    unwrapped = unwrap(message)
    events_ = proc.validate_event(EventPayload(data=unwrapped.items[0], envelope=unwrapped.envelope))
    assert events_[0].event_type == "delivered"


def test_mailgun_required_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="mailgun_signing_key"):
        processor(MemoryStore(), {"mailgun_signature": "required"})


# -- SendGrid ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sendgrid_public(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_headers(key: ec.EllipticCurvePrivateKey, body: str, timestamp: str) -> dict[str, str]:
    signature = key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def apigw(body: str, headers: dict[str, str]) -> dict[str, Any]:
    """SendGrid's post as an API Gateway (HTTP API) event, so the headers travel with the body."""
    return {
        "version": "2.0",
        "rawPath": "/sendgrid",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "hooks.example.com", **headers},
        "requestContext": {
            "http": {"method": "POST", "path": "/sendgrid"},
            "domainName": "hooks.example.com",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def test_sendgrid_signature_verifies(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    body = json.dumps(payload_batch())
    timestamp = str(int(NOW.timestamp()))
    headers = {k.lower(): v for k, v in sendgrid_headers(sendgrid_key, body, timestamp).items()}
    public = load_sendgrid_public_key(sendgrid_public(sendgrid_key))
    verify_sendgrid(public, headers, body, now=NOW, max_age_seconds=900)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_sendgrid(public, headers, body.replace("processed", "delivered"), now=NOW, max_age_seconds=900)
    with pytest.raises(SignatureError, match="more than"):
        verify_sendgrid(public, headers, body, now=NOW + timedelta(hours=2), max_age_seconds=900)


def test_sendgrid_key_accepts_pem(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    pem = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_sendgrid_public_key(pem.decode()).curve.name == "secp256r1"
    with pytest.raises(ConfigError, match="sendgrid_public_key"):
        load_sendgrid_public_key("not a key")


def payload_batch() -> list[dict[str, Any]]:
    from email_support import load

    return load("sendgrid_batch.json")[:3]


def test_sendgrid_through_the_processor(sendgrid_key: ec.EllipticCurvePrivateKey) -> None:
    store = MemoryStore()
    config = {"sendgrid_signature": "required", "sendgrid_public_key": sendgrid_public(sendgrid_key)}
    proc = processor(store, config)
    body = json.dumps(payload_batch())
    timestamp = str(int(NOW.timestamp()))
    good = apigw(body, sendgrid_headers(sendgrid_key, body, timestamp))
    tampered = apigw(body.replace("250 OK", "250 Fine"), sendgrid_headers(sendgrid_key, body, timestamp))
    unsigned = apigw(body, {})
    stats = run(proc, [good, tampered, unsigned])
    assert stats.processed == 3
    failures = events(store, status="failed")
    # The tampered message fails as a whole; the unsigned one fails item by item.
    assert [f.error_code for f in failures] == ["bad_signature"] + ["missing_signature"] * 3


def test_sendgrid_required_without_a_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="sendgrid_public_key"):
        processor(MemoryStore(), {"sendgrid_signature": "required"})


def test_bad_policy_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"sns_signature"):
        processor(MemoryStore(), {"sns_signature": "sometimes"})
    with pytest.raises(ConfigError, match=r"sns_topic_arns"):
        processor(MemoryStore(), {"sns_topic_arns": TOPIC_ARN})


def test_mailgun_if_present_accepts_unsigned_webhooks() -> None:
    store = MemoryStore()
    proc = processor(store, {"mailgun_signing_key": MAILGUN_KEY})
    unsigned = payload("mailgun.json", "opened")
    del unsigned["signature"]
    assert run(proc, [unsigned, mailgun_signed("delivered")]).processed == 2


def test_required_signature_without_key_is_reported_by_config_validation() -> None:
    from commproc_core.parsing import config_problems
    from commproc_email import EmailSettings

    problems = config_problems(EmailSettings, {"mailgun_signature": "required"})
    assert len(problems) == 1 and "mailgun_signing_key" in problems[0]
