"""Postmark webhooks (one object per post, typed by ``RecordType``), normalized.

Only Bounce and SpamComplaint records carry an ``ID`` (an integer that can
exceed 2**53, which Python's JSON parser keeps exact); every other record's
dedupe key is derived from the message, type, recipient and timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from commproc_core.errors import InvalidPayload
from commproc_email.addresses import parse_address
from commproc_email.converter import structure
from commproc_email.events import EmailEvent, derive_dedupe_key
from commproc_email.providers._common import enhanced_status, recipient_fields, scalar_metadata

__all__ = ["PostmarkRecord", "normalize_postmark"]

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
    description: str | None = None
    details: str | None = None
    inactive: bool | None = None
    tag: str | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
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
    "SpamComplaint": {"event_type": "complained", "reject_reason": "spam"},
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
        return dict(_BOUNCE_TYPES.get(record.type or "", {"event_type": "unknown"}))
    if kind == "SubscriptionChange":
        reason = _SUPPRESSION_REASONS.get(record.suppression_reason or "", "other")
        if record.suppress_sending:
            # Postmark deactivated the address (or the recipient unsubscribed):
            # mirror it without counting a new bounce.
            return {"event_type": "unsubscribed", "reject_reason": reason, "provider_suppressed": True}
        return {"event_type": "subscribed"}
    return {"event_type": "unknown"}


def normalize_postmark(data: Mapping[str, Any], transport: Mapping[str, str]) -> Sequence[EmailEvent]:
    """The normalized event of one Postmark webhook."""
    record = structure(data, PostmarkRecord, provider=PROVIDER)
    time_field, address_field = _RECORDS.get(record.record_type, ("received_at", "recipient"))
    occurred_at = getattr(record, time_field)
    if occurred_at is None and record.record_type in _RECORDS:
        raise InvalidPayload(f"{PROVIDER}: required field missing", field=f"$.{_wire(time_field)}")
    raw_address = getattr(record, address_field) or record.recipient or record.email
    address = parse_address(raw_address, f"$.{_wire(address_field)}") if raw_address is not None else None
    fields = _classify(record)
    if occurred_at is None:
        # An unknown record type: keep it, timed by whatever it carries.
        stamps = (record.received_at, record.delivered_at, record.bounced_at, record.changed_at)
        occurred_at = next((s for s in stamps if s is not None), None)
        if occurred_at is None:
            raise InvalidPayload(f"{PROVIDER}: no timestamp in record {record.record_type!r}", field="$")
    if record.id is not None:
        dedupe_key = f"postmark:{record.record_type}:{record.id}"
    else:
        parts = (record.message_id, record.record_type, address.key if address else None)
        dedupe_key = derive_dedupe_key(PROVIDER, *parts, occurred_at.isoformat(), record.original_link)
    text = record.details
    return [
        EmailEvent(
            provider=PROVIDER,
            provider_event_type=record.record_type
            if record.record_type != "Bounce"
            else f"Bounce/{record.type}",
            dedupe_key=dedupe_key,
            occurred_at=occurred_at,
            provider_message_id=record.message_id,
            provider_event_id=str(record.id) if record.id is not None else None,
            smtp_status=enhanced_status(text),
            mta_response=text if record.record_type in ("Bounce", "Delivery") else None,
            description=record.description,
            user_agent=record.user_agent,
            tags=(record.tag,) if record.tag else (),
            metadata=scalar_metadata(record.metadata),
            raw=data,
            transport=transport,
            **recipient_fields(address),
            **fields,
        )
    ]
