"""Which provider sent a payload, told from the payload's own shape.

Each provider's format has a key no other uses, so detection needs no
configuration and one queue may carry events from several providers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from commproc_core.errors import InvalidPayload, UnknownEventShape

__all__ = ["PROVIDERS", "detect_provider"]

#: The providers this package understands.
PROVIDERS: Final = ("ses", "sendgrid", "mailgun", "postmark")

_LEGACY_MAILGUN: Final = frozenset({"signature", "token", "timestamp", "event"})


def detect_provider(data: Any) -> str:
    """``ses``, ``sendgrid``, ``mailgun`` or ``postmark``; UnknownEventShape for anything else."""
    if not isinstance(data, Mapping):
        raise InvalidPayload(f"expected a JSON object, got {type(data).__name__}", field="$")
    if "event-data" in data:
        return "mailgun"
    if "RecordType" in data:
        return "postmark"
    if "eventType" in data or "notificationType" in data:
        return "ses"
    if "sg_event_id" in data or {"event", "email", "timestamp"} <= data.keys():
        return "sendgrid"
    if data.keys() >= _LEGACY_MAILGUN:
        raise UnknownEventShape(
            "a legacy form-encoded Mailgun webhook; configure the webhook for the JSON format "
            "(signature and event-data)",
            field="$",
        )
    raise UnknownEventShape(
        "no email provider recognised: expected SES (eventType or notificationType), SendGrid "
        "(event, email, timestamp), Mailgun (event-data) or Postmark (RecordType)",
        field="$",
    )
