"""SendGrid Event Webhook items, normalized.

SendGrid posts a JSON array; the core splits it so each item arrives here on
its own and is validated, deduplicated (on ``sg_event_id``) and recorded
alone. Custom args are merged into each item by SendGrid, so every key that
is not one of SendGrid's own becomes metadata.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from commproc_email.addresses import parse_address
from commproc_email.converter import StrOrList, structure
from commproc_email.events import EmailEvent, derive_dedupe_key
from commproc_email.providers._common import enhanced_status, recipient_fields, scalar_metadata

__all__ = ["SendGridEvent", "normalize_sendgrid"]

PROVIDER: Final = "sendgrid"


@attrs.frozen(kw_only=True)
class SendGridEvent:
    email: str
    timestamp: datetime
    event: str
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

#: ``dropped`` reasons that mean SendGrid holds the address on a suppression
#: list: (anymail reject reason, provider suppressed).
_DROP_REASONS: Final = {
    "bounced address": ("bounced", True),
    "unsubscribed address": ("unsubscribed", True),
    "unsubscribed group": ("unsubscribed", True),
    "spam reporting address": ("spam", True),
    "invalid": ("invalid", True),
    "invalid address": ("invalid", True),
    "spam content (if spam checker app enabled)": ("spam", False),
}


def message_id(sg_message_id: str | None) -> str | None:
    """The id the send API returned (``X-Message-Id``): ``sg_message_id`` up to ``.filter``."""
    if not sg_message_id:
        return None
    return sg_message_id.split(".filter", 1)[0]


def _classify(item: SendGridEvent) -> dict[str, Any]:
    if item.event in _SIMPLE:
        fields: dict[str, Any] = {"event_type": _SIMPLE[item.event]}
        if item.event.startswith("group_") and item.asm_group_id is not None:
            fields["subscription_group"] = str(item.asm_group_id)
        return fields
    if item.event == "dropped":
        reason, suppressed = _DROP_REASONS.get((item.reason or "").strip().lower(), ("other", False))
        fields = {"event_type": "rejected", "reject_reason": reason, "provider_suppressed": suppressed}
        if item.asm_group_id is not None and reason == "unsubscribed":
            fields["subscription_group"] = str(item.asm_group_id)
        return fields
    if item.event in ("bounce", "blocked"):
        # Blocks are refusals of this message (reputation, content) and
        # SendGrid does not suppress them; a bounce proper is a dead address.
        blocked = item.event == "blocked" or item.type == "blocked"
        return {
            "event_type": "bounced",
            "bounce_class": "soft" if blocked else "hard",
            "reject_reason": "blocked" if blocked else "bounced",
        }
    return {"event_type": "unknown"}


def normalize_sendgrid(data: Mapping[str, Any], transport: Mapping[str, str]) -> Sequence[EmailEvent]:
    """The normalized event of one SendGrid item."""
    item = structure(data, SendGridEvent, provider=PROVIDER)
    address = parse_address(item.email, "$.email")
    fields = _classify(item)
    categories = [item.category] if isinstance(item.category, str) else list(item.category or [])
    text = item.reason or item.response
    if item.sg_event_id:
        dedupe_key = f"sendgrid:{item.sg_event_id}"
    else:
        parts = (item.sg_message_id, item.event, address.key, item.timestamp.isoformat(), item.url)
        dedupe_key = derive_dedupe_key(PROVIDER, *parts)
    return [
        EmailEvent(
            provider=PROVIDER,
            provider_event_type=item.event,
            dedupe_key=dedupe_key,
            occurred_at=item.timestamp,
            provider_message_id=message_id(item.sg_message_id),
            provider_event_id=item.sg_event_id,
            smtp_status=item.status if item.status and item.status[:1] in "245" else enhanced_status(text),
            mta_response=text,
            description=item.bounce_classification,
            click_url=item.url,
            user_agent=item.useragent,
            machine_open=item.sg_machine_open,
            tags=tuple(categories),
            metadata=scalar_metadata(data, _RESERVED),
            raw=data,
            transport=transport,
            **recipient_fields(address),
            **fields,
        )
    ]
