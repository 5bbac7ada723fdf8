"""Helpers shared by the provider normalizers: arrival facts, fallback times, recipients."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import getaddresses
from typing import Any

import attrs

from commproc_core.errors import InvalidPayload
from commproc_core.pipeline.envelope import Envelope
from commproc_email.addresses import EmailAddress, parse_address
from commproc_email.converter import parse_timestamp

__all__ = [
    "Arrival",
    "arrival",
    "enhanced_status",
    "header_recipient",
    "join_text",
    "key_time",
    "recipient_fields",
    "reject_recipient",
    "scalar_metadata",
    "sender_fields",
]

_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


@attrs.frozen(kw_only=True)
class Arrival:
    """How a payload reached commproc, and the times an event without its own falls back to.

    ``facts`` are kept on every event as ``EmailEvent.transport`` (SNS
    message id, topic and timestamp, SQS message id and sent time).
    """

    facts: Mapping[str, str] = attrs.field(factory=dict)
    #: The SNS notification's ``Timestamp`` (when SNS published it).
    sns_timestamp: datetime | None = None
    #: When the message entered the queue (SQS ``SentTimestamp``).
    queued_at: datetime | None = None
    #: When commproc handled it: the last resort, and the only time a replayed file may have.
    received_at: datetime

    def pick_time(self, own: datetime | None, mail: datetime | None = None) -> tuple[datetime, str]:
        """The event's time and where it came from (an ``EmailEvent.time_source``).

        The event's own time first; then the time of the mail it reports on
        (SES ``mail.timestamp``, for events that have no time of their own);
        then SNS's publish time, the queue time, and the time it was handled.
        """
        for value, source in (
            (own, "event"),
            (mail, "mail"),
            (self.sns_timestamp, "sns"),
            (self.queued_at, "queue"),
        ):
            if value is not None:
                return value, source
        return self.received_at, "received"


def _sns_time(sns: Mapping[str, Any] | None) -> datetime | None:
    value = sns.get("Timestamp") if sns is not None else None
    try:
        return parse_timestamp(value) if value is not None else None
    except (TypeError, ValueError):
        # The envelope's time is only a fallback; a broken one is not worth refusing the event.
        return None


def arrival(envelope: Envelope, received_at: datetime) -> Arrival:
    """The :class:`Arrival` of a payload that came in ``envelope``, handled at ``received_at``."""
    facts: dict[str, str] = {"kind": envelope.kind}
    sns = envelope.sns
    if sns is not None:
        for key in ("MessageId", "TopicArn", "Timestamp"):
            value = sns.get(key)
            if isinstance(value, str):
                facts[f"sns_{key}"] = value
    queued_at = None
    message = envelope.queue_message
    if message is not None:
        facts["sqs_message_id"] = message.message_id
        queued_at = message.sent_at
        if queued_at is not None:
            facts["sqs_sent_at"] = queued_at.isoformat()
    return Arrival(facts=facts, sns_timestamp=_sns_time(sns), queued_at=queued_at, received_at=received_at)


def key_time(occurred_at: datetime, source: str) -> str | None:
    """The time part of a derived dedupe key.

    The time commproc handled an event differs on every redelivery, so it
    cannot identify the event; every other source is fixed for the payload.
    """
    return None if source == "received" else occurred_at.isoformat()


def enhanced_status(*texts: str | None) -> str | None:
    """The first RFC 3463 enhanced status code (``5.1.1``) found in ``texts``."""
    for text in texts:
        if text:
            found = _ENHANCED.search(text)
            if found:
                return found.group(1)
    return None


def join_text(*texts: str | None) -> str | None:
    """The non-empty ``texts`` joined by ``"; "``, or None when there are none."""
    kept = [t.strip() for t in texts if t and t.strip()]
    return "; ".join(dict.fromkeys(kept)) or None


def recipient_fields(address: EmailAddress | None, source: str = "event") -> dict[str, Any]:
    """EmailEvent keyword arguments for the recipient."""
    if address is None:
        return {}
    return {
        "recipient_raw": address.raw,
        "recipient": address.normalized,
        "recipient_key": address.key,
        "recipient_source": source,
    }


def reject_recipient(value: object, field: str, source: str = "event") -> tuple[dict[str, Any], bool]:
    """Recipient fields of a rejection, and whether the address failed validation.

    A provider rejects a message *because* the address is malformed
    (SendGrid ``dropped``/``Invalid``, Postmark ``BadEmailAddress``), so the
    rejection is recorded with the address as received and no normalized
    form, rather than refused for the very fault it reports. A value that is
    not text at all is still a malformed payload.
    """
    try:
        return recipient_fields(parse_address(value, field), source), False
    except InvalidPayload:
        if not isinstance(value, str):
            raise
        return {"recipient_raw": value, "recipient_source": source}, True


def header_recipient(value: str, field: str, *, lenient: bool) -> tuple[dict[str, Any], bool]:
    """Recipient fields from a ``To`` header value, and whether its one address failed validation.

    A header naming several addresses names no single recipient: the event
    is kept with ``recipient_ambiguous`` set, as for per-message events.
    """
    found = [addr for _, addr in getaddresses([value]) if addr]
    if len(found) != 1:
        return {"recipient_ambiguous": len(found) > 1}, False
    if lenient:
        fields, invalid = reject_recipient(found[0], field, "to_header")
    else:
        fields, invalid = recipient_fields(parse_address(found[0], field), "to_header"), False
    return {**fields, "recipient_raw": value}, invalid


def sender_fields(address: EmailAddress | None) -> dict[str, Any]:
    """EmailEvent keyword arguments for the sender."""
    if address is None:
        return {}
    return {"sender": address.normalized, "sender_key": address.key}


def scalar_metadata(values: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The plain (string, number, boolean) entries of ``values`` not named in ``skip``."""
    return {str(k): v for k, v in values.items() if k not in skip and isinstance(v, (str, int, float, bool))}
