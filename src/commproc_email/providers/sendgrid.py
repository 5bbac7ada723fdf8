"""SendGrid Event Webhook items, normalized.

SendGrid posts a JSON array; the core splits it so each item arrives here on
its own and is validated, deduplicated (on ``sg_event_id``) and recorded
alone. Custom args are merged into each item by SendGrid, so every key that
is not one of SendGrid's own becomes metadata.

A ``dropped`` event is kept even when its address does not validate
(reason ``Invalid``): that fault is what it reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from commproc_email.addresses import parse_address
from commproc_email.converter import StrOrList, structure
from commproc_email.events import EmailEvent, derive_dedupe_key
from commproc_email.providers._common import (
    Arrival,
    enhanced_status,
    key_time,
    recipient_fields,
    reject_recipient,
    scalar_metadata,
)

__all__ = ["SendGridEvent", "normalize_sendgrid"]

PROVIDER: Final = "sendgrid"


@attrs.frozen(kw_only=True)
class SendGridEvent:
    email: str
    event: str
    timestamp: datetime | None = None
    sg_event_id: str | None = None
    sg_message_id: str | None = None
    smtp_id: str | None = attrs.field(default=None, metadata={"wire": "smtp-id"})
    category: StrOrList | None = None
    reason: str | None = None
    status: str | None = None
    response: str | None = None
    type: str | None = None
    bounce_classification: str | None = None
    useragent: str | None = None
    url: str | None = None
    sg_machine_open: bool = False
    asm_group_id: int | None = None


#: Keys SendGrid itself writes; anything else in an item is a custom arg.
_RESERVED: Final = frozenset(
    {
        "email", "timestamp", "event", "sg_event_id", "sg_message_id", "smtp-id", "category", "reason",
        "status", "response", "attempt", "type", "bounce_classification", "useragent", "ip", "url",
        "url_offset", "sg_machine_open", "asm_group_id", "tls", "cert_err", "pool", "sg_content_type",
        "send_at", "marketing_campaign_version", "marketing_campaign_split_id", "sg_template_id",
        "sg_template_name", "template_id", "singlesend_id", "mc_stats", "phase_id", "newsletter",
    }
)  # fmt: skip

_SIMPLE: Final = {
    "processed": "queued",
    "delivered": "delivered",
    "deferred": "deferred",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "subscribed",
}

#: ``dropped`` reasons (lower-cased, as SendGrid words them in the event and
#: in Email Activity): (anymail reject reason, whether SendGrid holds the
#: address on a suppression list).
_DROP_REASONS: Final = {
    "bounced address": ("bounced", True),
    "unsubscribed address": ("unsubscribed", True),
    "unsubscribed group": ("unsubscribed", True),
    "spam reporting address": ("spam", True),
    "invalid": ("invalid", True),
    "invalid address": ("invalid", True),
}

#: The ``type`` anymail reads on drops and bounces: bounce, blocked, expired.
_DROP_TYPES: Final = {"bounce": "bounced", "blocked": "blocked", "expired": "timed_out"}


def message_id(sg_message_id: str | None) -> str | None:
    """The id the send API returned (``X-Message-Id``): ``sg_message_id`` up to ``.filter``."""
    if not sg_message_id:
        return None
    return sg_message_id.split(".filter", 1)[0]


def _drop(item: SendGridEvent) -> dict[str, Any]:
    reason = (item.reason or "").strip().lower()
    if reason in _DROP_REASONS:
        reject_reason, suppressed = _DROP_REASONS[reason]
    elif reason.startswith("spam content"):
        # The spam checker refused this message's content; the address is fine.
        reject_reason, suppressed = "spam", False
    else:
        reject_reason, suppressed = _DROP_TYPES.get((item.type or "").lower(), "other"), False
    fields = {"event_type": "rejected", "reject_reason": reject_reason, "provider_suppressed": suppressed}
    if item.asm_group_id is not None and reject_reason == "unsubscribed":
        fields["subscription_group"] = str(item.asm_group_id)
    return fields


def _classify(item: SendGridEvent) -> dict[str, Any]:
    if item.event in _SIMPLE:
        fields: dict[str, Any] = {"event_type": _SIMPLE[item.event]}
        if item.event == "spamreport":
            fields["reject_reason"] = "spam"
        if item.event.startswith("group_") and item.asm_group_id is not None:
            fields["subscription_group"] = str(item.asm_group_id)
        return fields
    if item.event == "dropped":
        return _drop(item)
    if item.event in ("bounce", "blocked"):
        kind = "blocked" if item.event == "blocked" else (item.type or "bounce").lower()
        if kind == "expired":
            # SendGrid gave up retrying: the address may still work later.
            return {"event_type": "bounced", "bounce_class": "soft", "reject_reason": "timed_out"}
        if kind == "blocked":
            # Blocks are refusals of this message (reputation, content) and
            # SendGrid does not suppress them; a bounce proper is a dead address.
            return {"event_type": "bounced", "bounce_class": "soft", "reject_reason": "blocked"}
        return {"event_type": "bounced", "bounce_class": "hard", "reject_reason": "bounced"}
    return {"event_type": "unknown"}


def _texts(item: SendGridEvent) -> dict[str, Any]:
    """smtp_status, mta_response and description, each from the field that holds it.

    A drop never reached a mail server: its ``reason`` is SendGrid's own
    explanation. A bounce's ``reason`` is the receiving server's reply.
    """
    status = item.status if item.status and item.status[:1] in "245" else None
    if item.event == "dropped":
        return {"smtp_status": status, "mta_response": None, "description": item.reason}
    text = item.response or item.reason
    return {
        "smtp_status": status or enhanced_status(text),
        "mta_response": text,
        "description": item.bounce_classification,
    }


def normalize_sendgrid(data: Mapping[str, Any], transport: Arrival) -> Sequence[EmailEvent]:
    """The normalized event of one SendGrid item."""
    item = structure(data, SendGridEvent, provider=PROVIDER)
    fields = _classify(item)
    if fields["event_type"] == "rejected":
        recipient, invalid = reject_recipient(item.email, "$.email")
        if invalid:
            fields["reject_reason"] = "invalid"
    else:
        recipient = recipient_fields(parse_address(item.email, "$.email"))
    categories = [item.category] if isinstance(item.category, str) else list(item.category or [])
    occurred_at, time_source = transport.pick_time(item.timestamp)
    if item.sg_event_id:
        dedupe_key = f"sendgrid:{item.sg_event_id}"
    else:
        who = recipient.get("recipient_key") or item.email
        parts = (item.sg_message_id or item.smtp_id, item.event, who, key_time(occurred_at, time_source))
        dedupe_key = derive_dedupe_key(PROVIDER, *parts, item.url)
    return [
        EmailEvent(
            provider=PROVIDER,
            provider_event_type=item.event,
            dedupe_key=dedupe_key,
            occurred_at=occurred_at,
            time_source=time_source,
            provider_message_id=message_id(item.sg_message_id),
            provider_event_id=item.sg_event_id,
            click_url=item.url,
            user_agent=item.useragent,
            machine_open=item.sg_machine_open,
            tags=tuple(categories),
            metadata=scalar_metadata(data, _RESERVED),
            raw=data,
            transport=transport.facts,
            **_texts(item),
            **recipient,
            **fields,
        )
    ]
