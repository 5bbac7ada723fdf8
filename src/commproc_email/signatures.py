"""Authenticity checks: SNS message signatures, Mailgun HMAC, SendGrid ECDSA.

Every check raises :class:`~commproc_core.errors.SignatureError` (permanent:
the message is recorded as failed and acknowledged) and never says more
than which check failed and where: code ``bad_signature`` when a signature
is there and fails, ``missing_signature`` when a policy requires one and
none arrived. Getting an SNS signing certificate is the job of
:mod:`commproc_email.certificates` (trusted URLs, the cache) and
:mod:`commproc_email.certificate_sources` (downloads, a directory); their
network failures are
:class:`~commproc_core.errors.TransientError`, so the message is retried
rather than lost.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from commproc_core.errors import ConfigError, SignatureError
from commproc_email.certificate_sources import HttpsCertificateFetcher, fetch_certificate
from commproc_email.certificates import (
    CertificateCache,
    CertificateFetcher,
    check_certificate_url,
    shared_certificate_cache,
)

__all__ = [
    "MISSING_SIGNATURE",
    "SENDGRID_SIGNATURE_HEADER",
    "SENDGRID_TIMESTAMP_HEADER",
    "CertificateFetcher",
    "SnsVerifier",
    "check_mailgun_signature",
    "fetch_certificate",
    "has_sns_signature",
    "load_sendgrid_public_key",
    "sendgrid_key_problem",
    "sns_signing_string",
    "verify_mailgun",
    "verify_sendgrid",
]

#: The error code of a signature a policy requires but that did not arrive.
MISSING_SIGNATURE: Final = "missing_signature"

#: Header names as they travel in ``envelope.headers`` (lower-cased).
SENDGRID_SIGNATURE_HEADER: Final = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP_HEADER: Final = "x-twilio-email-event-webhook-timestamp"

#: The fields that make an SNS message signed; a message with none of them carries no signature.
_SNS_SIGNATURE_FIELDS: Final = ("Signature", "SignatureVersion", "SigningCertURL")

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


def has_sns_signature(message: Mapping[str, Any]) -> bool:
    """Whether ``message`` carries any signature field (a signature that may or may not verify)."""
    return any(message.get(key) not in (None, "") for key in _SNS_SIGNATURE_FIELDS)


def _validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    # ``*_utc`` arrived in cryptography 42; 41 has naive UTC datetimes only.
    before = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(tzinfo=timezone.utc)
    after = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=timezone.utc)
    return before, after


class SnsVerifier:
    """Verifies SNS signatures (versions 1 and 2) and the topic allow-list.

    ``fetch`` is the certificate source (HTTPS downloads by default, see
    :mod:`commproc_email.certificates`); ``cache`` keeps what it returns.
    Without ``fetch`` the verifier uses the process's shared cache; with a
    ``fetch`` of its own it gets a cache of its own unless one is passed, so
    certificates from a custom source never mix into the process's. An empty
    ``topic_arns`` allows every topic.
    """

    def __init__(
        self,
        fetch: CertificateFetcher | None = None,
        topic_arns: Collection[str] = (),
        clock: Callable[[], datetime] | None = None,
        *,
        cache: CertificateCache | None = None,
    ) -> None:
        if cache is None:
            cache = shared_certificate_cache() if fetch is None else CertificateCache()
        self._fetch: CertificateFetcher = fetch or HttpsCertificateFetcher()
        self._cache = cache
        self._topics = frozenset(topic_arns)
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def certificate(self, url: str) -> x509.Certificate:
        """The certificate at ``url`` (checked to be an SNS certificate URL), from the cache or the source."""
        return self._cache.get(check_certificate_url(url), self._fetch)

    def verify(self, message: Mapping[str, Any], *, required: bool = True) -> None:
        """Raise SignatureError unless ``message`` is signed by SNS for an allowed topic.

        A message with no signature fields at all raises ``missing_signature``
        when ``required``, and passes otherwise (after the topic check): a
        missing signature is not a failed one.
        """
        topic = message.get("TopicArn")
        if self._topics and topic not in self._topics:
            raise SignatureError("SNS topic is not in the allowed list", field="$.TopicArn")
        if not has_sns_signature(message):
            if required:
                raise SignatureError(
                    "SNS notification carries no signature", field="$.Signature", code=MISSING_SIGNATURE
                )
            return
        version = message.get("SignatureVersion")
        algorithm = _HASHES.get(str(version)) if isinstance(version, (str, int)) else None
        if algorithm is None:
            raise SignatureError("unsupported SNS SignatureVersion", field="$.SignatureVersion")
        url = check_certificate_url(message.get("SigningCertURL"))
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


def _part(block: object, name: str) -> object:
    return block.get(name) if isinstance(block, Mapping) else getattr(block, name, None)


def verify_mailgun(
    signature: Mapping[str, Any] | Any,
    signing_key: str,
    *,
    now: datetime,
    max_age_seconds: int | None,
) -> None:
    """Check a Mailgun ``signature`` block: HMAC-SHA256(key, timestamp + token), hex.

    ``signature`` is the raw block (a mapping) or an object with the same
    attributes. ``now`` is the reference time for the freshness window; the
    processor passes the time the message entered the queue, so a backlog
    does not turn valid events into failures.
    """
    timestamp = _part(signature, "timestamp")
    token = _part(signature, "token")
    given = _part(signature, "signature")
    if not (isinstance(timestamp, str) and isinstance(token, str) and isinstance(given, str)):
        raise SignatureError("malformed Mailgun signature", field="$.signature")
    # "replace": a lone surrogate in the payload must fail the check, not crash it.
    signed = (timestamp + token).encode("utf-8", "replace")
    expected = hmac.new(signing_key.encode("utf-8", "replace"), signed, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.lower().encode("utf-8", "replace")):
        raise SignatureError("Mailgun signature does not verify", field="$.signature.signature")
    if max_age_seconds is not None:
        _check_age(timestamp, now, max_age_seconds, "$.signature.timestamp")


def check_mailgun_signature(
    block: object,
    *,
    policy: str,
    signing_key: str | None,
    now: datetime,
    max_age_seconds: int | None,
) -> bool:
    """Apply a Mailgun signature policy to a webhook's raw ``signature`` block (None when absent).

    Runs before the rest of the webhook is parsed, so a forged event is
    reported as a bad signature whatever else is wrong with it. True when a
    signature was verified (its token is then the caller's to remember).
    """
    if policy == "off":
        return False
    if block is None:
        if policy == "required":
            raise SignatureError("missing Mailgun signature", field="$.signature", code=MISSING_SIGNATURE)
        return False
    if signing_key:
        verify_mailgun(block, signing_key, now=now, max_age_seconds=max_age_seconds)
        return True
    return False


def _check_age(timestamp: str, now: datetime, max_age_seconds: int, field: str) -> None:
    try:
        signed_at = float(timestamp)
    except ValueError as exc:
        raise SignatureError("signature timestamp is not a number", field=field) from exc
    if not math.isfinite(signed_at):
        # NaN compares false with everything and would pass the window.
        raise SignatureError("signature timestamp is not a number", field=field)
    if abs(now.timestamp() - signed_at) > max_age_seconds:
        raise SignatureError(f"signature timestamp is more than {max_age_seconds}s away", field=field)


def _sendgrid_key(text: str) -> ec.EllipticCurvePublicKey | str:
    try:
        if "BEGIN PUBLIC KEY" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, TypeError, UnicodeEncodeError):
        return "not a base64 DER or PEM public key"
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return "not an ECDSA public key"
    return key


def sendgrid_key_problem(text: str) -> str | None:
    """What is wrong with ``text`` as a SendGrid verification key; None when it loads."""
    if not text.strip():
        return "must not be empty or whitespace"
    key = _sendgrid_key(text)
    return key if isinstance(key, str) else None


def load_sendgrid_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or as PEM; ConfigError if neither."""
    key = _sendgrid_key(text)
    if isinstance(key, str):
        raise ConfigError("invalid EmailSettings", [f"{key} @ config.sendgrid_public_key"])
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
