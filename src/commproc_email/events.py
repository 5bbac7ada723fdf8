"""The normalized email event: one vocabulary for every provider.

The event types are django-anymail's, so code written against anymail's
tracking signals reads the same here. Where commproc differs from anymail it
is deliberate: SES ``DeliveryDelay`` is ``deferred`` and ``Subscription`` is
``unsubscribed``/``subscribed`` (anymail: ``unknown``), a bounce carries a
``bounce_class``, and a rejection because the provider had already
suppressed the address says so in ``provider_suppressed``. docs/email.md
has the full mapping per provider, with every difference and its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import attrs

from commproc_core.errors import InvalidPayload
from commproc_core.pipeline.records import ReplayGuard
from commproc_email.addresses import parse_address

__all__ = [
    "BOUNCE_CLASSES",
    "CHANNEL",
    "EVENT_TYPES",
    "RECIPIENT_SOURCES",
    "REJECT_REASONS",
    "TIME_SOURCES",
    "EmailEvent",
    "derive_dedupe_key",
    "with_outbound_recipient",
]

#: The channel name every email event and record carries.
CHANNEL: Final = "email"

#: The normalized event types: anymail's ``EventType`` values, no more.
EVENT_TYPES: Final = frozenset(
    {
        "queued",
        "sent",
        "rejected",
        "failed",
        "bounced",
        "deferred",
        "delivered",
        "autoresponded",
        "opened",
        "clicked",
        "complained",
        "unsubscribed",
        "subscribed",
        "inbound",
        "inbound_failed",
        "unknown",
    }
)

#: ``hard``: the address does not work; ``soft``: it may work later;
#: ``undetermined``: the provider could not tell.
BOUNCE_CLASSES: Final = frozenset({"hard", "soft", "undetermined"})

#: anymail's reject reasons.
REJECT_REASONS: Final = frozenset(
    {"invalid", "bounced", "timed_out", "blocked", "spam", "unsubscribed", "other"}
)

#: Where ``occurred_at`` came from, best first: the event's own time; the
#: time of the mail it reports on (SES ``mail.timestamp``); SNS's publish
#: time; the time the message entered the queue; the time commproc handled it.
TIME_SOURCES: Final = frozenset({"event", "mail", "sns", "queue", "received"})

#: Where the recipient came from: the event's own address field; the
#: message's ``To`` header (Mailgun ``rejected``); the outbound message
#: commproc recorded under the event's ``provider_message_id``.
RECIPIENT_SOURCES: Final = frozenset({"event", "to_header", "outbound_message"})


def _check_member(allowed: frozenset[str]) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and value not in allowed:
            # The value is not echoed: provider text must never reach an error.
            raise ValueError(f"{attribute.name} must be one of {sorted(allowed)}")

    return check


@attrs.frozen(kw_only=True)
class EmailEvent:
    """One provider event about one recipient (or one inbound message), normalized.

    ``dedupe_key`` is always set: the provider's own event id where it has a
    usable one, otherwise derived from what identifies the event (see
    :func:`derive_dedupe_key`). ``occurred_at`` is the event's own time in
    UTC; only an event that carries no time of its own is timed by its
    transport, and ``time_source`` then says so.
    """

    provider: str
    event_type: str = attrs.field(validator=_check_member(EVENT_TYPES))
    #: The provider's own name for the event (``Bounce``, ``group_unsubscribe``...).
    provider_event_type: str
    dedupe_key: str
    occurred_at: datetime
    time_source: str = attrs.field(default="event", validator=_check_member(TIME_SOURCES))
    channel: str = CHANNEL
    provider_message_id: str | None = None
    provider_event_id: str | None = None
    #: The address as the provider sent it, its normalized form and its match key.
    recipient_raw: str | None = None
    recipient: str | None = None
    recipient_key: str | None = None
    recipient_source: str | None = attrs.field(default=None, validator=_check_member(RECIPIENT_SOURCES))
    #: The event is about one recipient the payload does not name (a Postmark
    #: Unsubscribe bounce has no ``Email``): the outbound message recorded
    #: under ``provider_message_id`` names it (:func:`with_outbound_recipient`).
    recipient_unresolved: bool = False
    #: True when the provider reports the event per message, not per recipient,
    #: and the message had several recipients: no one recipient can be blamed.
    recipient_ambiguous: bool = False
    sender: str | None = None
    sender_key: str | None = None
    bounce_class: str | None = attrs.field(default=None, validator=_check_member(BOUNCE_CLASSES))
    reject_reason: str | None = attrs.field(default=None, validator=_check_member(REJECT_REASONS))
    #: The provider had already suppressed the address (no new bounce happened).
    provider_suppressed: bool = False
    #: The enhanced status code (``5.1.1``) and the raw SMTP text.
    smtp_status: str | None = None
    mta_response: str | None = None
    #: Human-readable explanation from the provider.
    description: str | None = None
    click_url: str | None = None
    user_agent: str | None = None
    #: The open was made by a machine (an image proxy or privacy feature), not a person.
    machine_open: bool = False
    #: A subscription group or topic the (un)subscribe applies to; None means all marketing mail.
    subscription_group: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    #: Inbound messages: subject, plain-text body, our address it was sent to,
    #: and the Message-IDs it replies to (In-Reply-To, then References).
    subject: str | None = None
    body: str | None = None
    to_address: str | None = None
    in_reply_to: tuple[str, ...] = ()
    #: The provider's event as received, kept whole (unknown events too).
    raw: Mapping[str, Any] = attrs.field(factory=dict)
    #: Transport facts: SNS message id and topic, SQS message id.
    transport: Mapping[str, str] = attrs.field(factory=dict)
    #: The one-time token the event's signature was made with (Mailgun's), refused if used again.
    replay_guard: ReplayGuard | None = None


def with_outbound_recipient(event: EmailEvent, address: str) -> EmailEvent:
    """``event`` with its recipient taken from the outbound message it reports on.

    For events with ``recipient_unresolved`` set: the processor looks up the
    outbound message by ``event.provider_message_id`` and hands its ``to``
    address here. An address that does not validate is kept as raw only.
    """
    try:
        found = parse_address(address, "outbound.to")
    except InvalidPayload:
        return attrs.evolve(
            event, recipient_raw=address, recipient_source="outbound_message", recipient_unresolved=False
        )
    return attrs.evolve(
        event,
        recipient_raw=found.raw,
        recipient=found.normalized,
        recipient_key=found.key,
        recipient_source="outbound_message",
        recipient_unresolved=False,
    )


def derive_dedupe_key(provider: str, *parts: object) -> str:
    """A stable key for an event the provider gives no usable id for.

    ``parts`` are what identifies the event (message id, event type,
    recipient key, the event's timestamp...); the same event redelivered
    yields the same key. Hashed so that no address appears in the key.
    """
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    digest = hashlib.sha256(f"{provider}\x1f{text}".encode()).hexdigest()[:40]
    return f"{provider}:h:{digest}"
