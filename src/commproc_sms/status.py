"""Status callbacks: move our outbound message forward by rank, keep its first error."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, TypeVar

import attrs

from commproc_core.model import CommunicationEvent, Message, OutboundMessage
from commproc_core.ports import Clock, UnitOfWork
from commproc_core.services import ConsentService
from commproc_sms.events import PROVIDER, SmsStatusUpdate, advances, consent_channel, parse_dlr_date
from commproc_sms.sender import OPTED_OUT_ERROR

__all__ = ["apply_status", "forward"]

R = TypeVar("R", Message, OutboundMessage)

log = logging.getLogger("commproc.sms")


def forward(record: R, event: SmsStatusUpdate, now: datetime) -> R | None:
    """``record`` moved to the event's status, or None when the status would not move it forward.

    The error travels with the status that reported it, and only the first
    error is kept.
    """
    if not advances(record.status, event.status):
        return None
    changes: dict[str, Any] = {"status": event.status, "updated_at": now}
    if event.twilio.error_code and not record.error_code:
        changes.update(error_code=event.twilio.error_code, error_message=event.twilio.error_message)
    return attrs.evolve(record, **changes)


def apply_status(
    uow: UnitOfWork, clock: Clock, event: SmsStatusUpdate, data: dict[str, Any]
) -> CommunicationEvent:
    """Apply a status callback to the outbox row and message it names; the event to record."""
    tw = event.twilio
    now = clock.now()
    outbound = uow.outbox.find_one(provider_message_id=tw.message_sid)
    message = uow.messages.find_one(provider=PROVIDER, provider_message_id=tw.message_sid)
    applied = False
    if outbound is not None and (moved := forward(outbound, event, now)) is not None:
        uow.outbox.update(moved)
        applied = True
    if message is not None and (moved_message := forward(message, event, now)) is not None:
        uow.messages.update(moved_message)
        applied = True
    lead_id = outbound.lead_id if outbound is not None else None
    conversation_id = message.conversation_id if message is not None else None
    if lead_id is None and conversation_id is not None:
        conversation = uow.conversations.get(conversation_id)
        lead_id = conversation.lead_id if conversation is not None else None
    recipient = event.recipient
    if tw.error_code == OPTED_OUT_ERROR and recipient is not None and recipient.value and recipient.is_phone:
        scope = tw.messaging_service_sid or (event.sender.value if event.sender else None) or "all"
        ConsentService(uow, clock).set(
            recipient.value,
            consent_channel(event.channel),
            scope,
            "opted_out",
            "provider",
            reason=f"twilio error {OPTED_OUT_ERROR}",
            lead_id=lead_id,
        )
    if not applied and (outbound is not None or message is not None):
        log.debug("sms: status %s for %s does not move the message forward", event.status, tw.message_sid)
    return CommunicationEvent(
        channel=event.channel,
        provider=PROVIDER,
        event_type=event.event_type,
        provider_message_id=tw.message_sid,
        sender=event.from_address,
        recipient=event.to_address,
        lead_id=lead_id,
        campaign_id=outbound.campaign_id if outbound is not None else None,
        conversation_id=conversation_id,
        message_id=message.id if message is not None else None,
        error_code=tw.error_code,
        error_detail=tw.error_message,
        occurred_at=parse_dlr_date(tw.raw_dlr_done_date) or now,
        recorded_at=now,
        data={
            **data,
            "applied": applied,
            "matched_outbox": outbound is not None,
            "matched_message": message is not None,
        },
    )
