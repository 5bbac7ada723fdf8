"""Amazon SES: event publishing and classic notifications, normalized.

One SES notification may cover several recipients; it becomes one event per
recipient. Opens, clicks and subscription changes are reported per message:
they are attributed to the recipient only when the message had exactly one,
otherwise the event is kept with ``recipient_ambiguous`` set and no one's
state changes (blaming every recipient for one person's action is a known
over-suppression bug in other systems).

SES gives no event id: the dedupe key is derived from the message id, the
event type, the recipient and the event's own timestamp. The same bounce
reaching us both through a configuration set and an identity notification
therefore deduplicates too.

Times: each event carries its own (``bounce.timestamp``, ``open.timestamp``
...); Send, Reject and Rendering Failure have none and take
``mail.timestamp``. An event without a usable time takes the SNS envelope's
``Timestamp``, then the queue's, and says so in ``time_source``.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Final, TypeVar

from commproc_core.errors import InvalidPayload
from commproc_email.addresses import parse_address, parse_header_address
from commproc_email.converter import structure
from commproc_email.events import EmailEvent, derive_dedupe_key
from commproc_email.providers._common import (
    Arrival,
    enhanced_status,
    key_time,
    recipient_fields,
    reject_recipient,
    sender_fields,
)
from commproc_email.providers.ses_wire import (
    SesBounce,
    SesClick,
    SesComplaint,
    SesDelivery,
    SesDeliveryDelay,
    SesFailure,
    SesMail,
    SesOpen,
    SesReceipt,
    SesReject,
    SesSubscription,
)

__all__ = ["CONTROL_NOTIFICATIONS", "normalize_ses", "ses_event_kind"]

PROVIDER: Final = "ses"
T = TypeVar("T")

#: Notification types about the subscription itself, not about mail.
CONTROL_NOTIFICATIONS: Final = frozenset({"AmazonSnsSubscriptionSucceeded"})

#: Bounce subtypes meaning SES refused to send because the address was on a suppression list.
_SUPPRESSED_SUBTYPES: Final = frozenset({"Suppressed", "OnAccountSuppressionList", "OnSuppressionList"})


def ses_event_kind(data: Mapping[str, Any]) -> str | None:
    """The SES type named by ``eventType`` (event publishing) or ``notificationType``."""
    kind = data.get("eventType", data.get("notificationType"))
    return kind if isinstance(kind, str) else None


class _Builder:
    """Builds the events of one SES notification."""

    def __init__(self, data: Mapping[str, Any], transport: Arrival) -> None:
        self.data = data
        self.arrival = transport
        self.kind = ses_event_kind(data) or ""
        self.mail = structure(data.get("mail"), SesMail, provider=PROVIDER, path="$.mail")
        self.metadata = {k: v[0] if len(v) == 1 else tuple(v) for k, v in self.mail.tags.items()}

    def section(self, key: str, cls: type[T]) -> T:
        return structure(self.data.get(key), cls, provider=PROVIDER, path=f"$.{key}")

    def time(self, own: datetime | None, *, of_mail: bool = False) -> tuple[datetime, str]:
        """The event's time: its own, else (for events timed by the mail) the mail's, else the transport's."""
        return self.arrival.pick_time(own, self.mail.timestamp if of_mail else None)

    def event(
        self,
        event_type: str,
        when: tuple[datetime, str],
        recipient: Mapping[str, Any],
        *extra_key: object,
        **fields: Any,
    ) -> EmailEvent:
        occurred_at, source = when
        who = recipient.get("recipient_key") or recipient.get("recipient_raw")
        key_parts = (self.mail.message_id, self.kind, event_type, who, key_time(occurred_at, source))
        return EmailEvent(
            provider=PROVIDER,
            event_type=event_type,
            provider_event_type=self.kind,
            dedupe_key=derive_dedupe_key(PROVIDER, *key_parts, *extra_key),
            occurred_at=occurred_at,
            time_source=source,
            provider_message_id=self.mail.message_id,
            metadata=self.metadata,
            raw=self.data,
            transport=self.arrival.facts,
            **recipient,
            **fields,
        )

    def destinations(self, *, lenient: bool = False) -> list[tuple[dict[str, Any], bool]]:
        """Recipient fields for every ``mail.destination``, and whether each failed validation.

        Only a rejection (``lenient``) keeps an address that does not validate.
        """
        found = []
        for i, value in enumerate(self.mail.destination):
            field = f"$.mail.destination[{i}]"
            if lenient:
                found.append(reject_recipient(value, field))
            else:
                found.append((recipient_fields(parse_address(value, field)), False))
        return found

    def per_message(
        self, event_type: str, when: tuple[datetime, str], *extra_key: object, **fields: Any
    ) -> EmailEvent:
        found = [recipient for recipient, _ in self.destinations()]
        single = found[0] if len(found) == 1 else {}
        return self.event(event_type, when, single, *extra_key, recipient_ambiguous=len(found) > 1, **fields)


def _bounce_class(bounce: SesBounce, status: str | None) -> tuple[str, str]:
    """(event type, bounce class) for one bounced recipient."""
    if bounce.bounce_sub_type in _SUPPRESSED_SUBTYPES:
        return "rejected", "hard"
    if bounce.bounce_type == "Permanent":
        return "bounced", "hard"
    if bounce.bounce_type == "Transient":
        # SES labels some 5.1.x ("bad mailbox", "bad domain") replies as
        # Transient/General. X.1.X codes are about the address, so the
        # address is dead whatever the label. Other 5.x.x codes on Transient
        # (5.2.2 mailbox full, 5.3.4 too large, 5.7.1 content) are about the
        # message or a full mailbox and stay soft.
        if bounce.bounce_sub_type == "General" and status and status.startswith("5.1."):
            return "bounced", "hard"
        return "bounced", "soft"
    return "bounced", "undetermined"


def _bounces(b: _Builder) -> list[EmailEvent]:
    bounce = b.section("bounce", SesBounce)
    when = b.time(bounce.timestamp)
    events = []
    for i, item in enumerate(bounce.bounced_recipients):
        field = f"$.bounce.bouncedRecipients[{i}].emailAddress"
        status = item.status or enhanced_status(item.diagnostic_code)
        event_type, bounce_class = _bounce_class(bounce, status)
        invalid = False
        if event_type == "rejected":
            recipient, invalid = reject_recipient(item.email_address, field)
        else:
            recipient = recipient_fields(parse_address(item.email_address, field))
        events.append(
            b.event(
                event_type,
                when,
                recipient,
                bounce_class=bounce_class,
                reject_reason="invalid" if invalid else "bounced",
                provider_suppressed=event_type == "rejected",
                provider_event_id=bounce.feedback_id,
                smtp_status=status,
                mta_response=item.diagnostic_code,
                description=f"{bounce.bounce_type}/{bounce.bounce_sub_type or ''}".rstrip("/"),
            )
        )
    return events


def _complaints(b: _Builder) -> list[EmailEvent]:
    complaint = b.section("complaint", SesComplaint)
    when = b.time(complaint.timestamp)
    kind = complaint.complaint_feedback_type or complaint.complaint_sub_type
    return [
        b.event(
            "complained",
            when,
            recipient_fields(
                parse_address(item.email_address, f"$.complaint.complainedRecipients[{i}].emailAddress")
            ),
            provider_event_id=complaint.feedback_id,
            user_agent=complaint.user_agent,
            description=kind,
            # A "not-spam" feedback report withdraws a complaint rather than making one.
            reject_reason=None if (kind or "").lower() == "not-spam" else "spam",
        )
        for i, item in enumerate(complaint.complained_recipients)
    ]


def _deliveries(b: _Builder) -> list[EmailEvent]:
    delivery = b.section("delivery", SesDelivery)
    when = b.time(delivery.timestamp)
    return [
        b.event(
            "delivered",
            when,
            recipient_fields(parse_address(address, f"$.delivery.recipients[{i}]")),
            mta_response=delivery.smtp_response,
            smtp_status=enhanced_status(delivery.smtp_response),
        )
        for i, address in enumerate(delivery.recipients)
    ]


def _delays(b: _Builder) -> list[EmailEvent]:
    delay = b.section("deliveryDelay", SesDeliveryDelay)
    when = b.time(delay.timestamp)
    return [
        b.event(
            "deferred",
            when,
            recipient_fields(
                parse_address(item.email_address, f"$.deliveryDelay.delayedRecipients[{i}].emailAddress")
            ),
            smtp_status=item.status or enhanced_status(item.diagnostic_code),
            mta_response=item.diagnostic_code,
            description=delay.delay_type,
        )
        for i, item in enumerate(delay.delayed_recipients)
    ]


def _per_recipient(b: _Builder, event_type: str, **fields: Any) -> list[EmailEvent]:
    when = b.time(None, of_mail=True)
    events = []
    for recipient, invalid in b.destinations(lenient=event_type == "rejected"):
        extra = {**fields, "reject_reason": "invalid"} if invalid else fields
        events.append(b.event(event_type, when, recipient, **extra))
    return events


def _subscription(b: _Builder) -> list[EmailEvent]:
    change = b.section("subscription", SesSubscription)
    when = b.time(change.timestamp)
    prefs = change.new_topic_preferences
    if prefs.unsubscribe_all:
        return [b.per_message("unsubscribed", when, description=change.source)]
    events = []
    for topic in prefs.topic_subscription_status:
        event_type = {"OptOut": "unsubscribed", "OptIn": "subscribed"}.get(
            topic.subscription_status, "unknown"
        )
        group = f"{change.contact_list}/{topic.topic_name}" if change.contact_list else topic.topic_name
        events.append(
            b.per_message(event_type, when, group, subscription_group=group, description=change.source)
        )
    return events


def _text_body(content: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The plain-text body and the replied-to Message-IDs of a raw MIME message."""
    if not content:
        return None, ()
    parsed = email.message_from_string(content, policy=email.policy.default)
    body = None
    if isinstance(parsed, EmailMessage):
        part = parsed.get_body(preferencelist=("plain",))
        if part is not None and isinstance(part, EmailMessage):
            body = str(part.get_content()).strip()
    refs = [str(parsed.get("In-Reply-To") or ""), str(parsed.get("References") or "")]
    return body, tuple(token for value in refs for token in value.split() if token)


def _header_refs(b: _Builder) -> tuple[str, ...]:
    wanted = ("in-reply-to", "references")
    values = sorted(
        (h for h in b.mail.headers if h.name.lower() in wanted), key=lambda h: wanted.index(h.name.lower())
    )
    return tuple(token for h in values for token in h.value.split() if token)


def _received(b: _Builder) -> list[EmailEvent]:
    receipt = b.section("receipt", SesReceipt)
    content = b.data.get("content")
    if content is not None and not isinstance(content, str):
        raise InvalidPayload("ses: expected a string", field="$.content")
    common = b.mail.common_headers
    if common is not None and common.from_:
        sender = parse_header_address(common.from_[0], "$.mail.commonHeaders.from[0]")
    else:
        sender = parse_header_address(b.mail.source, "$.mail.source")
    ours = parse_address(receipt.recipients[0], "$.receipt.recipients[0]") if receipt.recipients else None
    body, mime_refs = _text_body(content)
    occurred_at, time_source = b.time(receipt.timestamp, of_mail=True)
    return [
        EmailEvent(
            provider=PROVIDER,
            event_type="inbound",
            provider_event_type=b.kind,
            dedupe_key=f"ses:inbound:{b.mail.message_id}",
            occurred_at=occurred_at,
            time_source=time_source,
            provider_message_id=b.mail.message_id,
            subject=common.subject if common else None,
            body=body,
            to_address=ours.normalized if ours else None,
            in_reply_to=_header_refs(b) or mime_refs,
            metadata=b.metadata,
            raw=b.data,
            transport=b.arrival.facts,
            **sender_fields(sender),
        )
    ]


def _unknown(b: _Builder) -> list[EmailEvent]:
    # The raw event is kept whole; the description only says what happened.
    when = b.time(None, of_mail=True)
    return [b.event("unknown", when, {}, description="SES event type not known to commproc")]


def normalize_ses(data: Mapping[str, Any], transport: Arrival) -> Sequence[EmailEvent]:
    """The normalized events of one SES notification (none for control notifications)."""
    kind = ses_event_kind(data)
    if kind in CONTROL_NOTIFICATIONS:
        return []
    b = _Builder(data, transport)
    if kind == "Bounce":
        return _bounces(b)
    if kind == "Complaint":
        return _complaints(b)
    if kind == "Delivery":
        return _deliveries(b)
    if kind == "DeliveryDelay":
        return _delays(b)
    if kind == "Send":
        return _per_recipient(b, "sent")
    if kind == "Reject":
        reject = b.section("reject", SesReject)
        return _per_recipient(b, "rejected", reject_reason="blocked", description=reject.reason)
    if kind == "Rendering Failure":
        failure = b.section("failure", SesFailure)
        return _per_recipient(b, "failed", reject_reason="other", description=failure.error_message)
    if kind == "Open":
        opened = b.section("open", SesOpen)
        return [b.per_message("opened", b.time(opened.timestamp), user_agent=opened.user_agent)]
    if kind == "Click":
        click = b.section("click", SesClick)
        return [
            b.per_message(
                "clicked",
                b.time(click.timestamp),
                click.link,
                click_url=click.link,
                user_agent=click.user_agent,
            )
        ]
    if kind == "Subscription":
        return _subscription(b)
    if kind == "Received":
        return _received(b)
    return _unknown(b)
