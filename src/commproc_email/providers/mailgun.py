"""Mailgun webhooks (the JSON format with ``signature`` and ``event-data``), normalized.

``event-data.id`` is unique only within a day, so the dedupe key pairs it
with the event's timestamp. A ``rejected`` event names no ``recipient``:
the message's ``To`` header does. Legacy form-encoded webhooks are not accepted:
they carry a different field set and Mailgun has replaced them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from commproc_email.addresses import parse_address
from commproc_email.converter import structure
from commproc_email.events import EmailEvent, derive_dedupe_key
from commproc_email.providers._common import (
    Arrival,
    enhanced_status,
    header_recipient,
    join_text,
    key_time,
    recipient_fields,
    reject_recipient,
    scalar_metadata,
)

__all__ = ["MailgunSignature", "MailgunWebhook", "normalize_mailgun", "parse_mailgun"]

PROVIDER: Final = "mailgun"


@attrs.frozen(kw_only=True)
class MailgunSignature:
    timestamp: str
    token: str
    signature: str


@attrs.frozen(kw_only=True)
class MailgunDeliveryStatus:
    code: int | None = None
    message: str | None = None
    description: str | None = None
    enhanced_code: str | None = attrs.field(default=None, metadata={"wire": "enhanced-code"})


@attrs.frozen(kw_only=True)
class MailgunHeaders:
    message_id: str | None = attrs.field(default=None, metadata={"wire": "message-id"})
    to: str | None = None


@attrs.frozen(kw_only=True)
class MailgunReject:
    reason: str | None = None
    description: str | None = None


@attrs.frozen(kw_only=True)
class MailgunMessage:
    headers: MailgunHeaders = attrs.field(factory=MailgunHeaders)


@attrs.frozen(kw_only=True)
class MailgunClientInfo:
    user_agent: str | None = attrs.field(default=None, metadata={"wire": "user-agent"})


@attrs.frozen(kw_only=True)
class MailgunEventData:
    event: str
    timestamp: datetime | None = None
    id: str | None = None
    recipient: str | None = None
    severity: str | None = None
    reason: str | None = None
    url: str | None = None
    tags: list[str] = attrs.field(factory=list)
    user_variables: dict[str, Any] = attrs.field(factory=dict, metadata={"wire": "user-variables"})
    delivery_status: MailgunDeliveryStatus | None = attrs.field(
        default=None, metadata={"wire": "delivery-status"}
    )
    message: MailgunMessage | None = None
    client_info: MailgunClientInfo | None = attrs.field(default=None, metadata={"wire": "client-info"})
    reject: MailgunReject | None = None


@attrs.frozen(kw_only=True)
class MailgunWebhook:
    signature: MailgunSignature | None = None
    event_data: MailgunEventData = attrs.field(metadata={"wire": "event-data"})


_SIMPLE: Final = {
    "accepted": "queued",
    "delivered": "delivered",
    "opened": "opened",
    "clicked": "clicked",
    "unsubscribed": "unsubscribed",
    "complained": "complained",
    "rejected": "rejected",
}

#: Permanent failures because Mailgun had the address on a suppression list.
_SUPPRESS_REASONS: Final = {
    "suppress-bounce": "bounced",
    "suppress-unsubscribe": "unsubscribed",
    "suppress-complaint": "spam",
}


def parse_mailgun(
    data: Mapping[str, Any], *, authenticate: Callable[[object], None] | None = None
) -> MailgunWebhook:
    """The webhook as wire classes; InvalidPayload naming the field when malformed.

    ``authenticate`` gets the raw ``signature`` block (None when absent)
    before anything else is looked at: a forged event must fail as a bad
    signature, not as whatever else is wrong with its payload.
    """
    if authenticate is not None:
        authenticate(data.get("signature") if isinstance(data, Mapping) else None)
    return structure(data, MailgunWebhook, provider=PROVIDER)


def _failure(data: MailgunEventData) -> dict[str, Any]:
    if data.severity == "temporary":
        # anymail's reading: Mailgun names a reason ("generic", "greylisted")
        # for a retry, which is no rejection of the address.
        return {"event_type": "deferred", "reject_reason": "other"}
    reason = data.reason or ""
    if reason in _SUPPRESS_REASONS:
        return {
            "event_type": "rejected",
            "reject_reason": _SUPPRESS_REASONS[reason],
            "provider_suppressed": True,
        }
    # "old": Mailgun gave up retrying a temporary failure; the address may
    # still work, as with SES Transient bounces.
    if reason in ("old", "esp-block"):
        return {"event_type": "bounced", "bounce_class": "soft", "reject_reason": "timed_out"}
    return {"event_type": "bounced", "bounce_class": "hard", "reject_reason": "bounced"}


def _classify(data: MailgunEventData) -> dict[str, Any]:
    if data.event == "failed":
        return _failure(data)
    if data.event == "rejected":
        # Mailgun refused the message at submission (sandbox limits, policy).
        return {"event_type": "rejected", "reject_reason": "other"}
    if data.event == "complained":
        return {"event_type": "complained", "reject_reason": "spam"}
    return {"event_type": _SIMPLE.get(data.event, "unknown")}


def _recipient(data: MailgunEventData, rejected: bool) -> tuple[dict[str, Any], bool]:
    """Recipient fields and whether the address failed validation.

    ``rejected`` events carry no ``recipient``; the message's ``To`` header
    names who it was for.
    """
    if data.recipient is not None:
        if rejected:
            return reject_recipient(data.recipient, "$.event-data.recipient")
        return recipient_fields(parse_address(data.recipient, "$.event-data.recipient")), False
    to = data.message.headers.to if data.message else None
    if rejected and to:
        return header_recipient(to, "$.event-data.message.headers.to", lenient=True)
    return {}, False


def normalize_mailgun(
    webhook: MailgunWebhook, raw: Mapping[str, Any], transport: Arrival
) -> Sequence[EmailEvent]:
    """The normalized event of one Mailgun webhook."""
    data = webhook.event_data
    fields = _classify(data)
    recipient, invalid = _recipient(data, fields["event_type"] == "rejected")
    if invalid:
        fields["reject_reason"] = "invalid"
    status = data.delivery_status or MailgunDeliveryStatus()
    reject = data.reject or MailgunReject()
    message_id = data.message.headers.message_id if data.message else None
    message_id = message_id.strip("<>") if message_id else None
    occurred_at, time_source = transport.pick_time(data.timestamp)
    if data.id and data.timestamp is not None:
        dedupe_key = f"mailgun:{data.id}:{data.timestamp.isoformat()}"
    else:
        who = recipient.get("recipient_key") or recipient.get("recipient_raw")
        parts = (message_id, data.event, who, key_time(occurred_at, time_source), data.url)
        dedupe_key = derive_dedupe_key(PROVIDER, *parts)
    event_data = raw.get("event-data")
    return [
        EmailEvent(
            provider=PROVIDER,
            provider_event_type=data.event,
            dedupe_key=dedupe_key,
            occurred_at=occurred_at,
            time_source=time_source,
            provider_message_id=message_id,
            provider_event_id=data.id,
            smtp_status=status.enhanced_code or enhanced_status(status.message, status.description),
            mta_response=status.message or None,
            description=join_text(reject.reason, reject.description) or status.description or data.reason,
            click_url=data.url,
            user_agent=data.client_info.user_agent if data.client_info else None,
            tags=tuple(data.tags),
            metadata=scalar_metadata(data.user_variables),
            raw=event_data if isinstance(event_data, Mapping) else raw,
            transport=transport.facts,
            **recipient,
            **fields,
        )
    ]
