"""Helpers for the email channel tests: fixtures, queues, SNS signing with throwaway keys."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from commproc_core.pipeline.stats import ProcessingStats
from commproc_core.queues import MemoryQueue
from commproc_core.testing import FixedClock, drain
from commproc_email import EmailProcessor, sns_signing_string

PAYLOADS = Path(__file__).parent / "payloads"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def load(name: str) -> Any:
    """A payload file's content (a fresh copy every time)."""
    return json.loads((PAYLOADS / name).read_text())


def payload(file: str, name: str) -> dict[str, Any]:
    return copy.deepcopy(load(file)[name])


class SnsSigner:
    """An RSA key and self-signed certificate standing in for Amazon SNS's."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.fetched: list[str] = []

    def fetch(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.pem

    def sign(self, envelope: dict[str, Any], version: str = "2") -> dict[str, Any]:
        envelope = dict(envelope, SignatureVersion=version)
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.key.sign(sns_signing_string(envelope), padding.PKCS1v15(), digest)
        envelope["Signature"] = base64.b64encode(signature).decode()
        return envelope

    def wrap(
        self,
        message: Mapping[str, Any],
        *,
        version: str = "2",
        message_id: str = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        topic: str = TOPIC_ARN,
        cert_url: str = CERT_URL,
        subject: str | None = None,
    ) -> dict[str, Any]:
        """An SNS Notification carrying ``message``, signed."""
        envelope: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": topic,
            "Message": json.dumps(message),
            "Timestamp": "2017-08-05T00:41:03.000Z",
            "SigningCertURL": cert_url,
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        }
        if subject is not None:
            envelope["Subject"] = subject
        return self.sign(envelope, version)


def processor(store: Any, config: Mapping[str, Any] | None = None, **kwargs: Any) -> EmailProcessor:
    """An EmailProcessor on a fresh in-memory queue."""
    kwargs.setdefault("clock", FixedClock(datetime(2026, 1, 1, tzinfo=timezone.utc)))
    return EmailProcessor(config=config, store=store, queue=MemoryQueue(), **kwargs)


def run(
    proc: EmailProcessor, bodies: Iterable[Any], *, headers: Mapping[str, str] | None = None
) -> ProcessingStats:
    """Send ``bodies`` (JSON-encoded unless strings) through ``proc``'s queue and drain it."""
    queue = proc.queue
    assert isinstance(queue, MemoryQueue)
    for body in bodies:
        queue.send(body if isinstance(body, str) else json.dumps(body))
    return drain(proc)


def consent_state(store: Any) -> dict[tuple[str, str], tuple[str, datetime, str, str | None]]:
    """Every consent row as (address, scope) → (status, updated_at, source, reason)."""
    with store.unit_of_work() as uow:
        return {
            (c.address, c.scope): (c.status, c.updated_at, c.source, c.reason) for c in uow.consents.find()
        }


def events(store: Any, **where: Any) -> list[Any]:
    with store.unit_of_work() as uow:
        return uow.events.find(order_by="recorded_at", **where)
