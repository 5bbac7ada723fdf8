"""What the email channel writes into core records: event data, failure facts, statuses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeVar

import attrs

from commproc_core.model import Message, OutboundMessage
from commproc_email.converter import parse_timestamp
from commproc_email.detect import detect_provider
from commproc_email.events import EmailEvent
from commproc_email.providers.sendgrid import message_id as sendgrid_message_id

__all__ = ["DELIVERY_RANK", "event_data", "failure_fields", "message_status_update"]

#: Statuses a delivery event gives a message, ranked so that two events with
#: the same timestamp settle the same way in any order.
DELIVERY_RANK: Final = {
    "queued": 0,
    "sent": 1,
    "deferred": 2,
    "delivered": 3,
    "bounced": 4,
    "rejected": 4,
    "failed": 4,
}

R = TypeVar("R", Message, OutboundMessage)


def event_data(event: EmailEvent) -> dict[str, Any]:
    """The channel facts stored in ``CommunicationEvent.data`` (JSON-safe, no empty values).

    The raw provider event is kept for ``unknown`` events only: those are the
    ones someone will need to read later, and the rest is all normalized.
    ``recipient_source`` and ``time_source`` appear only when they are not
    the event's own field (a recipient from the ``To`` header or the outbound
    message, a time from the transport).
    """
    data: dict[str, Any] = {
        "provider_event_type": event.provider_event_type,
        "recipient": event.recipient,
        "recipient_raw": event.recipient_raw,
        "recipient_ambiguous": event.recipient_ambiguous or None,
        "recipient_source": event.recipient_source if event.recipient_source != "event" else None,
        "recipient_unresolved": event.recipient_unresolved or None,
        "time_source": event.time_source if event.time_source != "event" else None,
        "sender": event.sender,
        "bounce_class": event.bounce_class,
        "reject_reason": event.reject_reason,
        "provider_suppressed": event.provider_suppressed or None,
        "smtp_status": event.smtp_status,
        "mta_response": event.mta_response,
        "description": event.description,
        "click_url": event.click_url,
        "user_agent": event.user_agent,
        "machine_open": event.machine_open or None,
        "subscription_group": event.subscription_group,
        "subject": event.subject,
        "to_address": event.to_address,
        "tags": list(event.tags) or None,
        "metadata": dict(event.metadata) or None,
        "transport": dict(event.transport) or None,
    }
    if event.event_type == "unknown":
        data["raw"] = dict(event.raw)
    return {k: v for k, v in data.items() if v is not None}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def failure_fields(data: Any) -> dict[str, Any]:
    """Provider, event type and message id of a payload that failed, read defensively.

    Only ids and type names: a failure record never holds an address.
    """
    try:
        provider = detect_provider(data)
    except Exception:  # anything unrecognisable is described as such
        return {"event_type": "invalid"}
    message_id: Any = None
    if provider == "ses":
        message_id = _dig(data, "mail", "messageId")
    elif provider == "sendgrid":
        message_id = sendgrid_message_id(_text(_dig(data, "sg_message_id")))
    elif provider == "mailgun":
        raw = _text(_dig(data, "event-data", "message", "headers", "message-id"))
        message_id = raw.strip("<>") if raw else None
    elif provider == "postmark":
        message_id = _dig(data, "MessageID")
    fields = {"provider": provider, "event_type": "invalid"}
    if _text(message_id):
        fields["provider_message_id"] = message_id
    return fields


def _status_at(record: Message | OutboundMessage) -> datetime | None:
    if isinstance(record, Message):
        stamp = record.metadata.get("status_at")
        try:
            return parse_timestamp(stamp) if stamp is not None else None
        except (TypeError, ValueError):
            return None
    # The outbox row's last change is when it was handed to the provider, or
    # the time of the delivery event that last set its status.
    return record.updated_at


def message_status_update(record: R, event: EmailEvent) -> R | None:
    """``record`` with the status ``event`` reports, or None when a later status is already set."""
    rank = DELIVERY_RANK.get(event.event_type)
    if rank is None:
        return None
    at = event.occurred_at
    current_at = _status_at(record)
    current_rank = DELIVERY_RANK.get(record.status or "", -1)
    if current_at is not None and (current_at, current_rank) >= (at, rank):
        return None
    if isinstance(record, Message):
        metadata = {**record.metadata, "status_at": at.isoformat()}
        return attrs.evolve(record, status=event.event_type, metadata=metadata, updated_at=at)
    return attrs.evolve(record, status=event.event_type, updated_at=at)
