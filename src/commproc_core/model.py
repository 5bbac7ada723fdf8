"""The records commproc keeps: frozen attrs values, no I/O and no wire formats.

Every record has a string ``id`` (a random UUID in hex unless given) and
timezone-aware UTC timestamps. Changing a record means ``attrs.evolve`` and
handing the new value to its repository.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

__all__ = [
    "AgentEvent",
    "Campaign",
    "CampaignParticipant",
    "ChannelConfig",
    "ChatTurn",
    "CommunicationEvent",
    "Consent",
    "Conversation",
    "Lead",
    "Media",
    "Message",
    "OutboundMessage",
    "Participant",
    "ProcessingRecord",
    "QueueMessage",
    "SeenToken",
    "Thread",
    "as_utc",
    "new_id",
    "utcnow",
]


def new_id() -> str:
    """A fresh record id: 32 lowercase hex characters."""
    # 128 random bits, as a UUID4 carries, without building a UUID object.
    return os.urandom(16).hex()


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def _metadata() -> dict[str, Any]:
    return {}


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime; a naive value is taken to be UTC already."""
    if value is None or value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _utc_timestamps(cls: type, fields: list[attrs.Attribute]) -> list[attrs.Attribute]:  # type: ignore[type-arg]
    # Every timestamp is stored and compared as aware UTC, whatever the caller passed.
    stamps = {"datetime", "datetime | None"}
    return [f.evolve(converter=as_utc) if str(f.type) in stamps else f for f in fields]


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Lead:
    """A person commproc talks to, matched by phone (E.164) or email."""

    id: str = attrs.field(factory=new_id)
    phone: str | None = None
    email: str | None = None
    #: A WhatsApp business-scoped user id (``US.1349...``), for a lead known by no number.
    whatsapp_id: str | None = None
    #: The lowercased match key of ``email``; leads are unique on it.
    email_key: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    status: str = "new"
    source: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    metadata: Mapping[str, Any] = attrs.field(factory=_metadata)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Campaign:
    """An outreach effort; inbound events are attributed to one."""

    id: str = attrs.field(factory=new_id)
    name: str
    #: ``sms``, ``email``... or None for a campaign on every channel.
    channel: str | None = None
    #: ``draft``, ``active``, ``paused`` or ``completed``.
    status: str = "active"
    is_nurturing: bool = False
    #: Higher wins when several campaigns match.
    priority: int = 0
    #: The sending address (E.164 number, short code or email address).
    address: str | None = None
    messaging_service_sid: str | None = None
    #: Join keywords (for example ``JOIN``), uppercase.
    keywords: tuple[str, ...] = ()
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    metadata: Mapping[str, Any] = attrs.field(factory=_metadata)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class CampaignParticipant:
    """A lead's membership in a campaign (unique per campaign and lead)."""

    id: str = attrs.field(factory=new_id)
    campaign_id: str
    lead_id: str
    #: ``active``, ``responded``, ``opted_out`` or ``completed``.
    status: str = "active"
    response_count: int = 0
    joined_at: datetime = attrs.field(factory=utcnow)
    last_response_at: datetime | None = None


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Conversation:
    """An exchange with a lead, unique on its ``external_id``."""

    id: str = attrs.field(factory=new_id)
    external_id: str
    channel: str
    lead_id: str | None = None
    campaign_id: str | None = None
    subject: str | None = None
    #: ``open`` or ``closed``.
    status: str = "open"
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    last_message_at: datetime | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=_metadata)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Participant:
    """An address taking part in a conversation (unique per conversation)."""

    id: str = attrs.field(factory=new_id)
    conversation_id: str
    address: str
    #: ``lead``, ``business``, ``agent`` or ``system``.
    role: str = "lead"
    lead_id: str | None = None
    display_name: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Thread:
    """A lead's running line on one channel; one ``open`` thread per lead and channel."""

    id: str = attrs.field(factory=new_id)
    lead_id: str
    channel: str
    conversation_id: str | None = None
    #: ``open`` or ``closed``.
    status: str = "open"
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    last_message_at: datetime | None = None


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Media:
    """One attachment of a message."""

    url: str
    content_type: str | None = None


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Message:
    """One message in a conversation, inbound or outbound."""

    id: str = attrs.field(factory=new_id)
    conversation_id: str
    thread_id: str | None = None
    #: ``inbound`` or ``outbound``.
    direction: str
    channel: str
    provider: str
    #: Unique per provider where present.
    provider_message_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    body: str | None = None
    subject: str | None = None
    media: tuple[Media, ...] = ()
    status: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)
    metadata: Mapping[str, Any] = attrs.field(factory=_metadata)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class CommunicationEvent:
    """The record of one outcome: every provider event, failures included.

    ``dedupe_key`` is unique: storing an event with a key already stored is
    how a redelivered event is recognised and applied only once.
    """

    id: str = attrs.field(factory=new_id)
    channel: str
    provider: str
    event_type: str
    #: ``processed``, ``failed`` or ``ignored``.
    status: str = "processed"
    dedupe_key: str | None = None
    provider_message_id: str | None = None
    provider_event_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    lead_id: str | None = None
    campaign_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    queue_message_id: str | None = None
    error_code: str | None = None
    error_detail: str | None = None
    occurred_at: datetime | None = None
    recorded_at: datetime = attrs.field(factory=utcnow)
    #: Channel-specific facts (delivery status, bounce class, keyword action...).
    data: Mapping[str, Any] = attrs.field(factory=_metadata)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class QueueMessage:
    """A message as received from a queue; never stored."""

    message_id: str
    receipt_handle: str
    body: str
    queue_url: str = ""
    #: ``ApproximateReceiveCount``; 1 on the first delivery.
    receive_count: int = 1
    sent_at: datetime | None = None
    attributes: Mapping[str, str] = attrs.field(factory=dict)
    message_attributes: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class ProcessingRecord:
    """What happened to one provider event of one queue message.

    Unique per channel, queue message id and item index (the position of the
    event inside the queue message, 0 for a message holding one event).
    """

    id: str = attrs.field(factory=new_id)
    channel: str
    queue_message_id: str
    item_index: int = 0
    #: ``received``, ``processed``, ``failed``, ``duplicate`` or ``ignored``.
    status: str = "received"
    attempts: int = 1
    dedupe_key: str | None = None
    error_code: str | None = None
    error_detail: str | None = None
    received_at: datetime = attrs.field(factory=utcnow)
    processed_at: datetime | None = None
    duration_ms: float | None = None


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class ChannelConfig:
    """A configured channel: which processor reads which queue, with what settings."""

    id: str = attrs.field(factory=new_id)
    channel_type: str
    queue_url: str
    is_active: bool = True
    config: Mapping[str, Any] = attrs.field(factory=_metadata)
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class Consent:
    """Whether an address may be messaged, unique per address, channel and scope.

    ``scope`` is what the consent covers: a sender number or messaging
    service for SMS, ``all`` or ``marketing`` for email.
    """

    id: str = attrs.field(factory=new_id)
    address: str
    channel: str
    scope: str = "all"
    #: ``opted_in``, ``opted_out`` or ``suppressed``.
    status: str
    #: What set it: ``keyword``, ``provider``, ``bounce``, ``complaint``, ``api``...
    source: str
    reason: str | None = None
    lead_id: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class ChatTurn:
    """One turn of a conversation handed to an AI agent."""

    #: ``user`` or ``assistant``.
    role: str
    content: str


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class AgentEvent:
    """One call of the AI agent on an inbound message, and how it went."""

    id: str = attrs.field(factory=new_id)
    conversation_id: str | None = None
    message_id: str | None = None
    lead_id: str | None = None
    responder: str
    prompt: str
    reply: str | None = None
    latency_ms: float | None = None
    #: ``pending`` (asked, not answered yet), ``running`` (the agent is being
    #: called), then ``replied``, ``failed`` or ``skipped``.
    outcome: str
    error: str | None = None
    #: Where the reply goes (see :class:`commproc_core.services.agent.ReplyAddress`).
    delivery: Mapping[str, Any] = attrs.field(factory=_metadata)
    created_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class OutboundMessage:
    """A message waiting to be sent or already sent (the outbox)."""

    id: str = attrs.field(factory=new_id)
    channel: str
    to: str
    sender: str | None = None
    messaging_service_sid: str | None = None
    body: str
    #: ``pending``, ``sending``, ``sent``, ``failed`` or a provider delivery status.
    status: str = "pending"
    #: Why it exists: ``keyword_reply``, ``agent_reply``...
    reason: str | None = None
    provider_message_id: str | None = None
    lead_id: str | None = None
    campaign_id: str | None = None
    conversation_id: str | None = None
    caused_by_event_id: str | None = None
    attempts: int = 0
    error_code: str | None = None
    error_message: str | None = None
    created_at: datetime = attrs.field(factory=utcnow)
    updated_at: datetime = attrs.field(factory=utcnow)


@attrs.frozen(kw_only=True, field_transformer=_utc_timestamps)
class SeenToken:
    """A one-time signature token already accepted (a Mailgun webhook's), unique per scope.

    Kept until ``expires_at``, when the signature it came with is too old to
    be accepted anyway; a second event carrying it is a replay.
    """

    id: str = attrs.field(factory=new_id)
    #: Whose tokens: ``mailgun`` (with the signing key's fingerprint, when several keys are in use).
    scope: str
    #: The token's SHA-256, hex: fixed length whatever the payload sent.
    token: str
    expires_at: datetime
    created_at: datetime = attrs.field(factory=utcnow)
