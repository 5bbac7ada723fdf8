"""Authenticity checks: SNS message signatures, Mailgun HMAC, SendGrid ECDSA.

Every check raises :class:`~commproc_core.errors.SignatureError` (permanent:
the message is recorded as failed and acknowledged) and never says more
than which check failed and where; a network failure fetching an SNS
certificate is a :class:`~commproc_core.errors.TransientError` instead, so
the message is retried rather than lost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from commproc_core.errors import ConfigError, SignatureError, TransientError

__all__ = [
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "CertificateFetcher",
    "SnsVerifier",
    "fetch_certificate",
    "load_sendgrid_public_key",
    "sns_signing_string",
    "verify_mailgun",
    "verify_sendgrid",
]

#: Header names as they travel in ``envelope.headers`` (lower-cased).
SENDGRID_SIGNATURE_HEADER: Final = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP_HEADER: Final = "x-twilio-email-event-webhook-timestamp"

#: Takes a certificate URL, returns the PEM bytes.
CertificateFetcher = Callable[[str], bytes]

# Amazon SNS signing certificates live on the regional SNS endpoints only.
# Anything else (an S3 bucket, a look-alike host) could be an attacker's
# certificate that would make any forged message verify.
_SNS_HOST: Final = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")

_SIGNED_KEYS: Final = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_HASHES: Final = {"1": hashes.SHA1, "2": hashes.SHA256}


def sns_signing_string(message: Mapping[str, Any]) -> bytes:
    """The text SNS signs: ``key\\nvalue\\n`` for the type's keys in order, absent ones skipped."""
    kind = message.get("Type")
    if kind not in _SIGNED_KEYS:
        raise SignatureError("unknown SNS message type", field="$.Type")
    parts = []
    for key in _SIGNED_KEYS[str(kind)]:
        value = message.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise SignatureError("signed SNS field is not a string", field=f"$.{key}")
        parts.append(f"{key}\n{value}\n")
    return "".join(parts).encode("utf-8")


def fetch_certificate(url: str) -> bytes:
    """Download a certificate (the default fetcher; only ever called with a checked SNS URL)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - https SNS host, checked
            data: bytes = response.read(65536)
            return data
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise TransientError(f"could not fetch the SNS signing certificate ({type(exc).__name__})") from exc


def _check_cert_url(url: object) -> str:
    if not isinstance(url, str):
        raise SignatureError("missing signing certificate URL", field="$.SigningCertURL")
    parts = urlsplit(url)
    if parts.scheme != "https" or not _SNS_HOST.match(parts.hostname or "") or parts.port not in (None, 443):
        raise SignatureError("signing certificate URL is not an Amazon SNS host", field="$.SigningCertURL")
    if not parts.path.endswith(".pem") or parts.query or parts.fragment or parts.username:
        raise SignatureError("signing certificate URL is not an SNS .pem", field="$.SigningCertURL")
    return url


def _validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    # ``*_utc`` arrived in cryptography 42; 41 has naive UTC datetimes only.
    before = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(tzinfo=timezone.utc)
    after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=timezone.utc)
    return before, after


class SnsVerifier:
    """Verifies SNS signatures (versions 1 and 2) and the topic allow-list.

    Certificates are fetched once per URL and kept for the verifier's life;
    ``fetch`` is injectable so tests never touch the network. An empty
    ``topic_arns`` allows every topic.
    """

    def __init__(
        self,
        fetch: CertificateFetcher | None = None,
        topic_arns: Collection[str] = (),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._fetch = fetch or fetch_certificate
        self._topics = frozenset(topic_arns)
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._certs: dict[str, x509.Certificate] = {}
        self._lock = threading.Lock()

    def certificate(self, url: str) -> x509.Certificate:
        """The certificate at ``url``, fetched on first use."""
        with self._lock:
            cached = self._certs.get(url)
        if cached is not None:
            return cached
        pem = self._fetch(url)
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise SignatureError(
                "signing certificate is not a PEM certificate", field="$.SigningCertURL"
            ) from exc
        with self._lock:
            return self._certs.setdefault(url, cert)

    def verify(self, message: Mapping[str, Any]) -> None:
        """Raise SignatureError unless ``message`` is signed by SNS for an allowed topic."""
        topic = message.get("TopicArn")
        if self._topics and topic not in self._topics:
            raise SignatureError("SNS topic is not in the allowed list", field="$.TopicArn")
        version = message.get("SignatureVersion")
        algorithm = _HASHES.get(str(version)) if isinstance(version, (str, int)) else None
        if algorithm is None:
            raise SignatureError("unsupported SNS SignatureVersion", field="$.SignatureVersion")
        url = _check_cert_url(message.get("SigningCertURL"))
        raw_signature = message.get("Signature")
        try:
            signature = base64.b64decode(str(raw_signature), validate=True) if raw_signature else b""
        except (binascii.Error, ValueError):
            signature = b""
        if not signature:
            raise SignatureError("missing or malformed SNS Signature", field="$.Signature")
        signed = sns_signing_string(message)
        cert = self.certificate(url)
        before, after = _validity(cert)
        if not before <= self._clock() <= after:
            raise SignatureError("SNS signing certificate is not currently valid", field="$.SigningCertURL")
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise SignatureError("SNS signing certificate has no RSA key", field="$.SigningCertURL")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), algorithm())
        except InvalidSignature as exc:
            raise SignatureError("SNS signature does not verify", field="$.Signature") from exc


def verify_mailgun(
    signature: Mapping[str, str] | Any,
    signing_key: str,
    *,
    now: datetime,
    max_age_seconds: int | None,
) -> None:
    """Check a Mailgun ``signature`` block: HMAC-SHA256(key, timestamp + token), hex.

    ``now`` is the reference time for the freshness window; the processor
    passes the time the message entered the queue, so a backlog does not
    turn valid events into failures.
    """
    timestamp = getattr(signature, "timestamp", None)
    token = getattr(signature, "token", None)
    given = getattr(signature, "signature", None)
    if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(given, str)):
        raise SignatureError("missing Mailgun signature", field="$.signature")
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise SignatureError("Mailgun signature does not verify", field="$.signature.signature")
    if max_age_seconds is not None:
        _check_age(timestamp, now, max_age_seconds, "$.signature.timestamp")


def _check_age(timestamp: str, now: datetime, max_age_seconds: int, field: str) -> None:
    try:
        signed_at = float(timestamp)
    except ValueError as exc:
        raise SignatureError("signature timestamp is not a number", field=field) from exc
    if abs(now.timestamp() - signed_at) > max_age_seconds:
        raise SignatureError(f"signature timestamp is more than {max_age_seconds}s away", field=field)


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or as PEM; ConfigError if neither."""
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ConfigError(
            "invalid EmailSettings", ["not a base64 DER or PEM public key @ config.sendgrid_public_key"]
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError("invalid EmailSettings", ["not an ECDSA public key @ config.sendgrid_public_key"])
    return key


def verify_sendgrid(
    key: ec.EllipticCurvePublicKey,
    headers: Mapping[str, str],
    raw_body: str,
    *,
    now: datetime,
    max_age_seconds: int | None,
) -> None:
    """Check SendGrid's signed event webhook: ECDSA P-256/SHA-256 over timestamp + raw body."""
    signature = headers.get(SENDGRID_SIGNATURE_HEADER)
    timestamp = headers.get(SENDGRID_TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureError(
            "missing SendGrid signature headers", field=f"headers.{SENDGRID_SIGNATURE_HEADER}"
        )
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, (timestamp + raw_body).encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise SignatureError(
            "SendGrid signature does not verify", field=f"headers.{SENDGRID_SIGNATURE_HEADER}"
        ) from exc
    if max_age_seconds is not None:
        _check_age(timestamp, now, max_age_seconds, f"headers.{SENDGRID_TIMESTAMP_HEADER}")
