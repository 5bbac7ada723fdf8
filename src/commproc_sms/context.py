"""What an inbound message resolved to, handed between the processing steps."""

from __future__ import annotations

import attrs

from commproc_core.model import Campaign, CommunicationEvent, Lead, Message
from commproc_sms.events import SmsInbound

__all__ = ["InboundContext"]


@attrs.frozen(kw_only=True)
class InboundContext:
    """An inbound message with its lead, campaign and stored message (the seed's ``_process_*`` steps)."""

    event: SmsInbound
    record: CommunicationEvent
    #: ``sms`` or ``whatsapp``: the channel of consent, threads and replies.
    channel: str
    #: The consent scope: the messaging service, else the number messaged.
    scope: str
    #: The sender as consent and replies know them: the E.164 number, else the WhatsApp user id.
    address: str
    lead: Lead | None
    campaign: Campaign | None
    message: Message
