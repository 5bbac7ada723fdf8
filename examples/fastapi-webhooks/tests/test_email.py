"""Email-provider webhooks: SendGrid, Mailgun, Postmark and SNS, verified, queued, processed by EmailProcessor."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import depth, queue_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from commproc_core.stores import MemoryStore
from commproc_core.testing import drain
from commproc_email import EmailProcessor, SnsVerifier, sns_signing_string

MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"


def processed(sqs: Any, url: str, config: dict[str, Any]) -> tuple[Any, MemoryStore]:
    store = MemoryStore()
    processor = EmailProcessor(queue=queue_for(sqs, url), store=store, config={"wait_time": 0, **config})
    return drain(processor), store


# -- SendGrid -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sendgrid_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def sendgrid_public(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sendgrid_headers(key: ec.EllipticCurvePrivateKey, body: str, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    signature = key.sign((timestamp + body).encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


SENDGRID_BATCH = [
    {
        "email": "jane@example.com",
        "timestamp": 1513299569,
        "event": "delivered",
        "sg_event_id": "sg_event_delivered_1",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    },
    {
        "email": "jane@example.com",
        "timestamp": 1513299570,
        "event": "open",
        "sg_event_id": "sg_event_open_1",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    },
]


def test_sendgrid_signed_batch_is_queued_and_processed(make_client, sqs, queues, sendgrid_key) -> None:
    public = sendgrid_public(sendgrid_key)
    client = make_client(sendgrid_public_key=public)
    body = json.dumps(SENDGRID_BATCH)
    answer = client.post("/email/sendgrid", content=body, headers=sendgrid_headers(sendgrid_key, body))
    assert answer.status_code == 204, answer.text

    # The processor checks SendGrid's signature again, from the headers that travelled along.
    stats, store = processed(
        sqs, queues["email"], {"sendgrid_public_key": public, "sendgrid_signature": "required"}
    )
    assert (stats["processed"], stats["failed"]) == (2, 0)
    with store.unit_of_work() as uow:
        kinds = sorted(e.event_type for e in uow.events.find(provider="sendgrid"))
    assert kinds == ["delivered", "opened"]


def test_sendgrid_forged_or_stale_signatures_are_refused(make_client, sqs, queues, sendgrid_key) -> None:
    client = make_client(sendgrid_public_key=sendgrid_public(sendgrid_key))
    body = json.dumps(SENDGRID_BATCH)
    headers = sendgrid_headers(sendgrid_key, body)
    tampered = body.replace("delivered", "bounce")
    assert client.post("/email/sendgrid", content=tampered, headers=headers).status_code == 403
    stale = sendgrid_headers(sendgrid_key, body, at=time.time() - 3600)
    answer = client.post("/email/sendgrid", content=body, headers=stale)
    assert answer.status_code == 403 and "900s" in answer.json()["detail"]
    assert depth(sqs, queues["email"]) == 0


# -- Mailgun --------------------------------------------------------------------------------


def mailgun_webhook(key: str = MAILGUN_KEY) -> dict[str, Any]:
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "event": "delivered",
            "id": "CPgfbmQMTCKtHW6uIWtuVe",
            "timestamp": 1521472262.908181,
            "recipient": "alice@example.com",
            "message": {"headers": {"message-id": "20130503182626.18666.16540@example.com"}},
        },
    }


def test_mailgun_signed_webhook_is_queued_and_processed(make_client, sqs, queues) -> None:
    client = make_client(mailgun_signing_key=MAILGUN_KEY)
    assert client.post("/email/mailgun", json=mailgun_webhook()).status_code == 204

    stats, store = processed(
        sqs, queues["email"], {"mailgun_signing_key": MAILGUN_KEY, "mailgun_signature": "required"}
    )
    assert (stats["processed"], stats["failed"]) == (1, 0)
    with store.unit_of_work() as uow:
        event = uow.events.find_one(provider="mailgun")
    assert event is not None and event.event_type == "delivered"


def test_mailgun_bad_or_missing_signatures_are_refused(make_client, sqs, queues) -> None:
    client = make_client(mailgun_signing_key=MAILGUN_KEY)
    assert client.post("/email/mailgun", json=mailgun_webhook("another-key")).status_code == 403
    unsigned = {"event-data": mailgun_webhook()["event-data"]}
    assert client.post("/email/mailgun", json=unsigned).status_code == 403
    answer = client.post("/email/mailgun", content="event=delivered&recipient=alice%40example.com")
    assert answer.status_code == 400  # Mailgun's legacy form webhooks: use its JSON webhooks
    assert depth(sqs, queues["email"]) == 0


# -- Postmark -------------------------------------------------------------------------------

POSTMARK_DELIVERY = {
    "RecordType": "Delivery",
    "ServerID": 23,
    "MessageStream": "outbound",
    "MessageID": "00000000-0000-0000-0000-000000000001",
    "Recipient": "john@example.com",
    "DeliveredAt": "2019-11-05T16:33:54.9070259Z",
    "Details": "Test delivery webhook details",
}


def test_postmark_needs_the_webhook_urls_credentials(make_client, sqs, queues) -> None:
    client = make_client(postmark_basic_auth="postmark:s3cret")
    assert client.post("/email/postmark", json=POSTMARK_DELIVERY).status_code == 401
    wrong = client.post("/email/postmark", json=POSTMARK_DELIVERY, auth=("postmark", "guess"))
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
    assert depth(sqs, queues["email"]) == 0

    right = client.post("/email/postmark", json=POSTMARK_DELIVERY, auth=("postmark", "s3cret"))
    assert right.status_code == 204
    peeked = sqs.receive_message(QueueUrl=queues["email"])["Messages"][0]
    assert "authorization" not in json.loads(peeked["Body"])["headers"]  # the credentials stay at the door
    sqs.change_message_visibility(
        QueueUrl=queues["email"], ReceiptHandle=peeked["ReceiptHandle"], VisibilityTimeout=0
    )

    stats, store = processed(sqs, queues["email"], {})
    assert stats["processed"] == 1
    with store.unit_of_work() as uow:
        assert uow.events.find_one(provider="postmark").event_type == "delivered"


# -- SNS ------------------------------------------------------------------------------------


class FakeSns:
    """A throwaway RSA key and certificate standing in for SNS's, and its certificate source."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(timezone.utc)
        self.pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )

    def fetch(self, url: str) -> bytes:
        assert url == CERT_URL
        return self.pem

    def sign(self, message: dict[str, Any]) -> dict[str, Any]:
        message = dict(message, SignatureVersion="2", SigningCertURL=CERT_URL)
        signature = self.key.sign(sns_signing_string(message), padding.PKCS1v15(), hashes.SHA256())
        return dict(message, Signature=base64.b64encode(signature).decode())


SES_DELIVERY = {
    "notificationType": "Delivery",
    "mail": {
        "timestamp": "2016-01-27T14:59:38.237Z",
        "messageId": "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
        "source": "john@example.com",
        "destination": ["jane@example.com"],
    },
    "delivery": {"timestamp": "2016-01-27T14:59:38.237Z", "recipients": ["jane@example.com"]},
}


def sns_notification(sns: FakeSns, topic: str = TOPIC) -> dict[str, Any]:
    return sns.sign(
        {
            "Type": "Notification",
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": topic,
            "Message": json.dumps(SES_DELIVERY),
            "Timestamp": "2017-08-05T00:41:03.000Z",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
    )


def sns_client(make_client, sns: FakeSns, confirmed: list[str] | None = None) -> Any:
    verifier = SnsVerifier(fetch=sns.fetch, topic_arns=(TOPIC,))
    options: dict[str, Any] = {"sns_verifier": verifier}
    if confirmed is not None:
        options["confirm"] = confirmed.append
    return make_client(app_options=options, sns_topic_arns=(TOPIC,))


def test_sns_notifications_are_queued_as_sns_sent_them(make_client, sqs, queues, tmp_path) -> None:
    sns = FakeSns()
    client = sns_client(make_client, sns)
    notification = sns_notification(sns)
    answer = client.post(
        "/email/sns", content=json.dumps(notification), headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 204, answer.text

    # The processor verifies the SNS signature itself, with the certificate from a directory.
    (tmp_path / "SimpleNotificationService-0000000000000000000000.pem").write_bytes(sns.pem)
    config = {"sns_signature": "required", "sns_topic_arns": [TOPIC], "sns_certificate_dir": str(tmp_path)}
    stats, store = processed(sqs, queues["email"], config)
    assert (stats["processed"], stats["failed"]) == (1, 0)
    with store.unit_of_work() as uow:
        assert uow.events.find_one(provider="ses").event_type == "delivered"


def test_sns_forgeries_and_other_topics_are_refused(make_client, sqs, queues) -> None:
    sns = FakeSns()
    client = sns_client(make_client, sns)
    forged = dict(sns_notification(sns), Message=json.dumps({**SES_DELIVERY, "notificationType": "Bounce"}))
    assert client.post("/email/sns", content=json.dumps(forged)).status_code == 403
    other = sns_notification(sns, topic="arn:aws:sns:us-east-1:999999999999:not-ours")
    assert client.post("/email/sns", content=json.dumps(other)).status_code == 403
    unsigned = {k: v for k, v in sns_notification(sns).items() if k not in ("Signature", "SignatureVersion")}
    assert client.post("/email/sns", content=json.dumps(unsigned)).status_code == 403
    assert depth(sqs, queues["email"]) == 0


def test_sns_subscription_is_confirmed_not_queued(make_client, sqs, queues) -> None:
    sns = FakeSns()
    confirmed: list[str] = []
    client = sns_client(make_client, sns, confirmed)
    subscribe = "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc"
    confirmation = sns.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "abc",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": subscribe,
            "Timestamp": "2012-04-26T20:45:04.751Z",
        }
    )
    assert client.post("/email/sns", content=json.dumps(confirmation)).status_code == 204
    assert confirmed == [subscribe]
    assert depth(sqs, queues["email"]) == 0


def test_a_subscribe_url_elsewhere_than_sns_is_never_visited() -> None:
    from webhook_receiver import confirm_subscription

    with pytest.raises(Exception, match="bad_subscribe_url"):
        confirm_subscription(
            "https://sns.us-east-1.amazonaws.com.attacker.example/?Action=ConfirmSubscription"
        )
    with pytest.raises(Exception, match="bad_subscribe_url"):
        confirm_subscription("http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription")
