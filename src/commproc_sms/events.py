"""SMS events as the processor handles them: channel, addresses, dedupe keys, status ranks.

Twilio does not guarantee the order of status callbacks, so a message's
status only moves forward by rank (a late ``sent`` after ``delivered`` is
recorded as an event but changes nothing) and its first error is kept.

Addresses: ``from_address``/``to_address`` are what an event records as its
sender and recipient: an E.164 number, a short code or sender id as given,
or a WhatsApp user id, never with the ``whatsapp:`` prefix (that is the
``channel``); None when the address could not be read, the raw parameter
then being in ``from_raw``/``to_raw``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import attrs

from commproc_sms.phones import Address, parse_address
from commproc_sms.twilio import INBOUND, STATUS, TwilioInbound, TwilioStatus

__all__ = [
    "PROVIDER",
    "STATUS_RANKS",
    "TERMINAL_RANK",
    "SmsEvent",
    "SmsInbound",
    "SmsStatusUpdate",
    "advances",
    "build_event",
    "consent_channel",
    "inbound_dedupe_key",
    "parse_dlr_date",
    "status_dedupe_key",
    "status_rank",
    "whatsapp_id_of",
]

PROVIDER = "twilio"

#: Rank of every status Twilio documents. Terminal statuses share rank 4, so
#: the first terminal status reported wins; only ``read`` comes after them.
STATUS_RANKS: dict[str, int] = {
    "scheduled": 0,
    "accepted": 0,
    "queued": 1,
    "sending": 2,
    "receiving": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "canceled": 4,
    "received": 4,
    "partially_delivered": 4,
    "read": 5,
}
TERMINAL_RANK = 4


def status_rank(status: str | None) -> int | None:
    """The rank of a Twilio status; None for statuses Twilio does not document (or ours: pending)."""
    return STATUS_RANKS.get((status or "").lower())


def advances(current: str | None, new: str) -> bool:
    """Whether a message at ``current`` moves to ``new``: only a strictly higher rank does.

    A message with no Twilio status yet (None, or the outbox's own
    ``pending``/``sending``) takes any documented status.
    """
    new_rank = status_rank(new)
    if new_rank is None:
        return False
    current_rank = status_rank(current)
    return current_rank is None or new_rank > current_rank


def inbound_dedupe_key(message_sid: str) -> str:
    return f"twilio:in:{message_sid}"


def status_dedupe_key(message_sid: str, status: str, error_code: str | None) -> str:
    # A later status of the same message is a new event; the same status
    # redelivered (or retried by Twilio) is not.
    return f"twilio:status:{message_sid}:{status}:{error_code or ''}"


def consent_channel(channel: str) -> str:
    """The channel consent, threads and replies use: MMS shares SMS's, WhatsApp has its own."""
    return "whatsapp" if channel == "whatsapp" else "sms"


def parse_dlr_date(raw: str | None) -> datetime | None:
    """``RawDlrDoneDate`` (``YYMMDDhhmm``, UTC) as a datetime; None when absent or malformed."""
    if not raw or len(raw) != 10 or not raw.isascii() or not raw.isdigit():
        return None
    try:
        return datetime.strptime(raw, "%y%m%d%H%M").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def whatsapp_id_of(value: str | None) -> str | None:
    """The WhatsApp business-scoped user id in ``value`` (``whatsapp:US.1234`` gives ``US.1234``)."""
    if not value:
        return None
    address = parse_address(value)
    return address.value if address.is_whatsapp_id else None


@attrs.frozen(kw_only=True)
class SmsInbound:
    """A message someone sent us, with its addresses classified."""

    twilio: TwilioInbound
    sender: Address
    recipient: Address
    #: ``sms``, ``mms`` or ``whatsapp``.
    channel: str
    #: The envelope carried an X-Twilio-Signature that verified.
    signature_verified: bool = False
    provider: str = PROVIDER
    event_type: str = INBOUND
    #: The sender's WhatsApp business-scoped user id: ``From`` itself when the
    #: sender is known only by it, else ``ExternalUserId`` next to their number.
    sender_whatsapp_id: str | None = None

    @property
    def dedupe_key(self) -> str:
        return inbound_dedupe_key(self.twilio.message_sid)

    @property
    def from_address(self) -> str | None:
        return self.sender.value

    @property
    def to_address(self) -> str | None:
        return self.recipient.value

    @property
    def from_raw(self) -> str:
        return self.twilio.from_

    @property
    def to_raw(self) -> str:
        return self.twilio.to

    @property
    def lead_key(self) -> str | None:
        """What the sender's lead is matched and created by: the E.164 number, else the WhatsApp user id."""
        return self.sender.value if self.sender.is_phone else self.sender_whatsapp_id


@attrs.frozen(kw_only=True)
class SmsStatusUpdate:
    """A status callback for a message."""

    twilio: TwilioStatus
    #: The normalised status (lowercase).
    status: str
    sender: Address | None
    recipient: Address | None
    channel: str
    signature_verified: bool = False
    provider: str = PROVIDER
    event_type: str = STATUS

    @property
    def dedupe_key(self) -> str:
        return status_dedupe_key(self.twilio.message_sid, self.status, self.twilio.error_code)

    @property
    def rank(self) -> int | None:
        return status_rank(self.status)

    @property
    def from_address(self) -> str | None:
        return self.sender.value if self.sender else None

    @property
    def to_address(self) -> str | None:
        return self.recipient.value if self.recipient else None

    @property
    def from_raw(self) -> str | None:
        return self.twilio.from_

    @property
    def to_raw(self) -> str | None:
        return self.twilio.to


SmsEvent = SmsInbound | SmsStatusUpdate


def _is_whatsapp(*addresses: Address | None) -> bool:
    return any(a is not None and a.whatsapp for a in addresses)


def build_event(
    parsed: TwilioInbound | TwilioStatus,
    *,
    default_region: str | None = None,
    signature_verified: bool = False,
) -> SmsEvent:
    """Classify addresses and channel of a parsed webhook."""
    if isinstance(parsed, TwilioInbound):
        sender = parse_address(parsed.from_, parsed.from_country, default_region)
        recipient = parse_address(parsed.to, parsed.to_country, default_region)
        if _is_whatsapp(sender, recipient):
            channel = "whatsapp"
        elif parsed.num_media > 0 or parsed.media or parsed.message_sid.startswith("MM"):
            channel = "mms"
        else:
            channel = "sms"
        return SmsInbound(
            twilio=parsed,
            sender=sender,
            recipient=recipient,
            channel=channel,
            signature_verified=signature_verified,
            sender_whatsapp_id=(
                sender.value if sender.is_whatsapp_id else whatsapp_id_of(parsed.external_user_id)
            ),
        )
    status_sender = parse_address(parsed.from_, None, default_region) if parsed.from_ else None
    status_recipient = parse_address(parsed.to, None, default_region) if parsed.to else None
    if _is_whatsapp(status_sender, status_recipient) or (parsed.channel_prefix or "").lower() == "whatsapp":
        channel = "whatsapp"
    elif parsed.message_sid.startswith("MM"):
        channel = "mms"
    else:
        channel = "sms"
    return SmsStatusUpdate(
        twilio=parsed,
        status=parsed.message_status.strip().lower(),
        sender=status_sender,
        recipient=status_recipient,
        channel=channel,
        signature_verified=signature_verified,
    )
