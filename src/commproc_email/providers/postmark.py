"""Postmark webhooks (one object per post, typed by ``RecordType``), normalized.

Only Bounce and SpamComplaint records carry an ``ID`` (an integer that can
exceed 2**53, which Python's JSON parser keeps exact); every other record's
dedupe key is derived from the message, type, recipient and timestamp.

A Bounce of Type ``Unsubscribe`` (TypeCode 16) may arrive without ``Email``
and ``BouncedAt``: it is accepted, timed by its transport, and marked
``recipient_unresolved`` so the processor can take the recipient from the
outbound message named by ``MessageID``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from commproc_email.addresses import parse_address
from commproc_email.converter import structure
from commproc_email.events import EmailEvent, derive_dedupe_key
from commproc_email.providers._common import (
    Arrival,
    enhanced_status,
    join_text,
    key_time,
    recipient_fields,
    reject_recipient,
    scalar_metadata,
)

__all__ = ["PostmarkRecord", "bounce_type", "normalize_postmark"]

PROVIDER: Final = "postmark"


@attrs.frozen(kw_only=True)
class PostmarkRecord:
    __wire_case__ = "pascal"
    record_type: str
    message_id: str | None = attrs.field(default=None, metadata={"wire": "MessageID"})
    id: int | None = attrs.field(default=None, metadata={"wire": "ID"})
    recipient: str | None = None
    email: str | None = None
    type: str | None = None
    type_code: int | None = None
    description: str | None = None
    details: str | None = None
    inactive: bool | None = None
    tag: str | None = None
    metadata: dict[str, Any] | None = None
    message_stream: str | None = None
    delivered_at: datetime | None = None
    bounced_at: datetime | None = None
    received_at: datetime | None = None
    changed_at: datetime | None = None
    original_link: str | None = None
    user_agent: str | None = None
    suppress_sending: bool | None = None
    suppression_reason: str | None = None
    origin: str | None = None


#: Bounce ``Type`` → EmailEvent fields. After anymail's table, except that
#: spam-filter and virus bounces are soft bounces, not complaints: the
#: receiving system refused this message; the person never complained.
_BOUNCE_TYPES: Final[Mapping[str, Mapping[str, Any]]] = {
    "HardBounce": {"event_type": "bounced", "bounce_class": "hard", "reject_reason": "bounced"},
    "SoftBounce": {"event_type": "bounced", "bounce_class": "soft", "reject_reason": "bounced"},
    "Unknown": {"event_type": "bounced", "bounce_class": "undetermined", "reject_reason": "other"},
    "SpamNotification": {"event_type": "bounced", "bounce_class": "soft", "reject_reason": "spam"},
    "VirusNotification": {"event_type": "bounced", "bounce_class": "soft", "reject_reason": "other"},
    "Transient": {"event_type": "deferred"},
    "DnsError": {"event_type": "deferred"},
    "OpenRelayTest": {"event_type": "deferred"},
    "Unsubscribe": {"event_type": "unsubscribed", "reject_reason": "unsubscribed"},
    "Subscribe": {"event_type": "subscribed"},
    "AutoResponder": {"event_type": "autoresponded"},
    "AddressChange": {"event_type": "autoresponded"},
    "ChallengeVerification": {"event_type": "autoresponded"},
    "BadEmailAddress": {"event_type": "rejected", "reject_reason": "invalid", "provider_suppressed": True},
    "ManuallyDeactivated": {
        "event_type": "rejected",
        "reject_reason": "blocked",
        "provider_suppressed": True,
    },
    "Unconfirmed": {"event_type": "rejected", "reject_reason": "other"},
    "Blocked": {"event_type": "rejected", "reject_reason": "blocked"},
    "DMARCPolicy": {"event_type": "rejected", "reject_reason": "blocked"},
    "SMTPApiError": {"event_type": "failed", "reject_reason": "other"},
    "TemplateRenderingFailed": {"event_type": "failed", "reject_reason": "other"},
    "InboundError": {"event_type": "inbound_failed"},
    "SpamComplaint": {"event_type": "complained", "reject_reason": "spam"},
}

#: Bounce ``TypeCode`` → ``Type``, for a record that carries only the code.
_TYPE_CODES: Final = {
    1: "HardBounce",
    2: "Transient",
    16: "Unsubscribe",
    32: "Subscribe",
    64: "AutoResponder",
    128: "AddressChange",
    256: "DnsError",
    512: "SpamNotification",
    1024: "OpenRelayTest",
    2048: "Unknown",
    4096: "SoftBounce",
    8192: "VirusNotification",
    16384: "ChallengeVerification",
    100000: "BadEmailAddress",
    100001: "SpamComplaint",
    100002: "ManuallyDeactivated",
    100003: "Unconfirmed",
    100006: "Blocked",
    100007: "SMTPApiError",
    100008: "InboundError",
    100009: "DMARCPolicy",
    100010: "TemplateRenderingFailed",
}

#: SubscriptionChange ``SuppressionReason`` → anymail reject reason.
_SUPPRESSION_REASONS: Final = {
    "HardBounce": "bounced",
    "SpamComplaint": "spam",
    "ManualSuppression": "unsubscribed",
}

#: RecordType → (field holding the event's time, the address field).
_RECORDS: Final = {
    "Delivery": ("delivered_at", "recipient"),
    "Bounce": ("bounced_at", "email"),
    "SpamComplaint": ("bounced_at", "email"),
    "Open": ("received_at", "recipient"),
    "Click": ("received_at", "recipient"),
    "SubscriptionChange": ("changed_at", "recipient"),
}


def _wire(field: str) -> str:
    return {"message_id": "MessageID"}.get(field, "".join(p.capitalize() for p in field.split("_")))


def bounce_type(record: PostmarkRecord) -> str | None:
    """The bounce ``Type``, or the name of its ``TypeCode`` when only the code came."""
    if record.type:
        return record.type
    return _TYPE_CODES.get(record.type_code) if record.type_code is not None else None


def _classify(record: PostmarkRecord) -> dict[str, Any]:
    kind = record.record_type
    if kind == "Delivery":
        return {"event_type": "delivered"}
    if kind == "Open":
        return {"event_type": "opened"}
    if kind == "Click":
        return {"event_type": "clicked", "click_url": record.original_link}
    if kind == "SpamComplaint":
        return dict(_BOUNCE_TYPES["SpamComplaint"])
    if kind == "Bounce":
        return dict(_BOUNCE_TYPES.get(bounce_type(record) or "", {"event_type": "unknown"}))
    if kind == "SubscriptionChange":
        reason = _SUPPRESSION_REASONS.get(record.suppression_reason or "", "other")
        if record.suppress_sending is not False:
            # Postmark deactivated the address (or the recipient unsubscribed):
            # mirror it without counting a new bounce. anymail reads a missing
            # SuppressSending as true too.
            return {"event_type": "unsubscribed", "reject_reason": reason, "provider_suppressed": True}
        return {"event_type": "subscribed"}
    return {"event_type": "unknown"}


def _texts(record: PostmarkRecord) -> dict[str, Any]:
    """smtp_status, mta_response and description, each from the field that holds it.

    A bounce's or delivery's ``Details`` is the receiving server's reply; a
    spam complaint's is Postmark's account of the complaint, so it joins the
    description (anymail files both as mta_response).
    """
    if record.record_type == "SpamComplaint":
        return {"description": join_text(record.description, record.details)}
    details = record.details if record.record_type in ("Bounce", "Delivery") else None
    return {
        "smtp_status": enhanced_status(details),
        "mta_response": details or None,
        "description": record.description or None,
    }


def _recipient(record: PostmarkRecord, address_field: str, rejected: bool) -> tuple[dict[str, Any], bool]:
    value = getattr(record, address_field)
    field = f"$.{_wire(address_field)}"
    if value is None and record.recipient is not None:
        value, field = record.recipient, "$.Recipient"
    elif value is None:
        value, field = record.email, "$.Email"
    if value is None:
        # Postmark's Unsubscribe bounce (TypeCode 16) names only the message:
        # its outbound record names the recipient.
        return {"recipient_unresolved": record.message_id is not None}, False
    if rejected:
        return reject_recipient(value, field)
    return recipient_fields(parse_address(value, field)), False


def normalize_postmark(data: Mapping[str, Any], transport: Arrival) -> Sequence[EmailEvent]:
    """The normalized event of one Postmark webhook."""
    record = structure(data, PostmarkRecord, provider=PROVIDER)
    time_field, address_field = _RECORDS.get(record.record_type, ("received_at", "recipient"))
    own = getattr(record, time_field)
    if own is None and record.record_type not in _RECORDS:
        # An unknown record type: timed by whatever stamp it carries.
        stamps = (record.received_at, record.delivered_at, record.bounced_at, record.changed_at)
        own = next((s for s in stamps if s is not None), None)
    occurred_at, time_source = transport.pick_time(own)
    fields = _classify(record)
    recipient, invalid = _recipient(record, address_field, fields["event_type"] == "rejected")
    if invalid:
        fields["reject_reason"] = "invalid"
    if record.id is not None:
        dedupe_key = f"postmark:{record.record_type}:{record.id}"
    else:
        who = recipient.get("recipient_key") or recipient.get("recipient_raw")
        parts = (record.message_id, record.record_type, who, key_time(occurred_at, time_source))
        dedupe_key = derive_dedupe_key(PROVIDER, *parts, record.original_link)
    kind = record.record_type
    return [
        EmailEvent(
            provider=PROVIDER,
            provider_event_type=f"Bounce/{bounce_type(record)}" if kind == "Bounce" else kind,
            dedupe_key=dedupe_key,
            occurred_at=occurred_at,
            time_source=time_source,
            provider_message_id=record.message_id,
            provider_event_id=str(record.id) if record.id is not None else None,
            user_agent=record.user_agent,
            tags=(record.tag,) if record.tag else (),
            metadata=scalar_metadata(record.metadata or {}),
            raw=data,
            transport=transport.facts,
            **_texts(record),
            **recipient,
            **fields,
        )
    ]
