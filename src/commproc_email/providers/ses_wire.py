"""Amazon SES notification and event-publishing payloads, as documented.

Event publishing (configuration sets) names the type in ``eventType``;
classic identity notifications and receipt rules use ``notificationType``.
The per-type objects are the same in both. Timestamps are optional here:
an event without one is timed by its transport (see ``ses.py``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

__all__ = [
    "SesBounce",
    "SesBouncedRecipient",
    "SesClick",
    "SesCommonHeaders",
    "SesComplaint",
    "SesDelayedRecipient",
    "SesDelivery",
    "SesDeliveryDelay",
    "SesFailure",
    "SesHeader",
    "SesMail",
    "SesOpen",
    "SesReceipt",
    "SesRecipient",
    "SesReject",
    "SesSubscription",
    "SesTopicPreferences",
    "SesTopicStatus",
]


@attrs.frozen(kw_only=True)
class SesHeader:
    name: str
    value: str


@attrs.frozen(kw_only=True)
class SesCommonHeaders:
    __wire_case__ = "camel"
    from_: list[str] = attrs.field(factory=list, metadata={"wire": "from"})
    to: list[str] = attrs.field(factory=list)
    subject: str | None = None
    message_id: str | None = None


@attrs.frozen(kw_only=True)
class SesMail:
    __wire_case__ = "camel"
    message_id: str
    timestamp: datetime | None = None
    source: str | None = None
    destination: list[str] = attrs.field(factory=list)
    tags: dict[str, list[str]] = attrs.field(factory=dict)
    headers: list[SesHeader] = attrs.field(factory=list)
    common_headers: SesCommonHeaders | None = None


@attrs.frozen(kw_only=True)
class SesBouncedRecipient:
    __wire_case__ = "camel"
    email_address: str
    action: str | None = None
    status: str | None = None
    diagnostic_code: str | None = None


@attrs.frozen(kw_only=True)
class SesBounce:
    __wire_case__ = "camel"
    bounce_type: str
    bounce_sub_type: str | None = None
    bounced_recipients: list[SesBouncedRecipient]
    timestamp: datetime | None = None
    feedback_id: str | None = None
    reporting_mta: str | None = attrs.field(default=None, metadata={"wire": "reportingMTA"})


@attrs.frozen(kw_only=True)
class SesRecipient:
    __wire_case__ = "camel"
    email_address: str


@attrs.frozen(kw_only=True)
class SesComplaint:
    __wire_case__ = "camel"
    complained_recipients: list[SesRecipient]
    timestamp: datetime | None = None
    feedback_id: str | None = None
    complaint_feedback_type: str | None = None
    complaint_sub_type: str | None = None
    user_agent: str | None = None


@attrs.frozen(kw_only=True)
class SesDelivery:
    __wire_case__ = "camel"
    recipients: list[str]
    timestamp: datetime | None = None
    smtp_response: str | None = None
    reporting_mta: str | None = attrs.field(default=None, metadata={"wire": "reportingMTA"})


@attrs.frozen(kw_only=True)
class SesReject:
    reason: str | None = None


@attrs.frozen(kw_only=True)
class SesOpen:
    __wire_case__ = "camel"
    timestamp: datetime | None = None
    user_agent: str | None = None
    ip_address: str | None = None


@attrs.frozen(kw_only=True)
class SesClick:
    __wire_case__ = "camel"
    link: str
    timestamp: datetime | None = None
    user_agent: str | None = None
    ip_address: str | None = None
    link_tags: dict[str, list[str]] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class SesFailure:
    __wire_case__ = "camel"
    error_message: str | None = None
    template_name: str | None = None


@attrs.frozen(kw_only=True)
class SesDelayedRecipient:
    __wire_case__ = "camel"
    email_address: str
    status: str | None = None
    diagnostic_code: str | None = None


@attrs.frozen(kw_only=True)
class SesDeliveryDelay:
    __wire_case__ = "camel"
    timestamp: datetime | None = None
    delay_type: str | None = None
    delayed_recipients: list[SesDelayedRecipient]
    expiration_time: datetime | None = None
    reporting_mta: str | None = attrs.field(default=None, metadata={"wire": "reportingMTA"})


@attrs.frozen(kw_only=True)
class SesTopicStatus:
    __wire_case__ = "camel"
    topic_name: str
    subscription_status: str


@attrs.frozen(kw_only=True)
class SesTopicPreferences:
    __wire_case__ = "camel"
    unsubscribe_all: bool = False
    topic_subscription_status: list[SesTopicStatus] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class SesSubscription:
    __wire_case__ = "camel"
    contact_list: str | None = None
    timestamp: datetime | None = None
    source: str | None = None
    new_topic_preferences: SesTopicPreferences = attrs.field(factory=SesTopicPreferences)


@attrs.frozen(kw_only=True)
class SesReceipt:
    __wire_case__ = "camel"
    recipients: list[str]
    timestamp: datetime | None = None
    action: dict[str, Any] = attrs.field(factory=dict)
    spam_verdict: dict[str, Any] | None = None
    virus_verdict: dict[str, Any] | None = None
