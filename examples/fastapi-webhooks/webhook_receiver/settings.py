"""The receiver's settings, read from the environment once at start-up."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ReceiverSettings", "SettingsError"]


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable, never its value."""


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


@dataclass(frozen=True)
class ReceiverSettings:
    """Where webhooks go and what checks them.

    A provider whose secret is not set is refused (503), never accepted
    unverified: a receiver open to the internet must not put forged events
    on the queue.
    """

    #: The SQS queue of the ``sms`` channel (Twilio messaging webhooks).
    sms_queue_url: str | None = None
    #: The SQS queue of the ``email`` channel (SendGrid, Mailgun, Postmark, SNS).
    email_queue_url: str | None = None
    #: The URL providers call, without a trailing slash (``https://hooks.example.com``).
    #: Signatures cover it, so it must be what the provider used, not what a proxy forwarded.
    public_base_url: str = ""
    #: Twilio auth tokens: the current one first, then any still accepted during a rotation.
    twilio_auth_tokens: tuple[str, ...] = ()
    #: Twilio SharedKey secrets by SharedKey id (Webhook Rules).
    twilio_shared_keys: Mapping[str, str] = field(default_factory=dict)
    mailgun_signing_key: str | None = None
    #: SendGrid's verification key as its console shows it (base64), or PEM.
    sendgrid_public_key: str | None = None
    #: ``user:password`` that Postmark's webhook URL carries (Postmark signs nothing).
    postmark_basic_auth: str | None = None
    #: SNS topics whose notifications are accepted; empty accepts any topic SNS signed.
    sns_topic_arns: tuple[str, ...] = ()
    #: Oldest Mailgun or SendGrid signature accepted, in seconds.
    signature_max_age_seconds: int = 900
    #: SQS's limit on a message; a bigger request is refused with 413.
    max_message_bytes: int = 262_144

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReceiverSettings:
        """Settings from ``WEBHOOKS_*`` variables (see README.md)."""
        env = os.environ if environ is None else environ
        tokens = _list(env.get("WEBHOOKS_TWILIO_AUTH_TOKENS"))
        shared_raw = env.get("WEBHOOKS_TWILIO_SHARED_KEYS", "")
        try:
            shared = json.loads(shared_raw) if shared_raw.strip() else {}
        except ValueError:
            raise SettingsError("WEBHOOKS_TWILIO_SHARED_KEYS is not a JSON object") from None
        if not isinstance(shared, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in shared.items()
        ):
            raise SettingsError("WEBHOOKS_TWILIO_SHARED_KEYS must map SharedKey ids to secrets")
        base = env.get("WEBHOOKS_PUBLIC_BASE_URL", "").rstrip("/")
        if base and not base.startswith(("https://", "http://")):
            raise SettingsError("WEBHOOKS_PUBLIC_BASE_URL must start with https://")
        try:
            max_age = int(env.get("WEBHOOKS_SIGNATURE_MAX_AGE_SECONDS", "900"))
        except ValueError:
            raise SettingsError("WEBHOOKS_SIGNATURE_MAX_AGE_SECONDS must be a whole number") from None
        return cls(
            sms_queue_url=env.get("WEBHOOKS_SMS_QUEUE_URL") or None,
            email_queue_url=env.get("WEBHOOKS_EMAIL_QUEUE_URL") or None,
            public_base_url=base,
            twilio_auth_tokens=tokens,
            twilio_shared_keys=shared,
            mailgun_signing_key=env.get("WEBHOOKS_MAILGUN_SIGNING_KEY") or None,
            sendgrid_public_key=env.get("WEBHOOKS_SENDGRID_PUBLIC_KEY") or None,
            postmark_basic_auth=env.get("WEBHOOKS_POSTMARK_BASIC_AUTH") or None,
            sns_topic_arns=_list(env.get("WEBHOOKS_SNS_TOPIC_ARNS")),
            signature_max_age_seconds=max_age,
        )
