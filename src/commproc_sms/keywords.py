"""Acting on a consent keyword: record consent, queue the one confirmation, never call the agent."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from commproc_core.model import CommunicationEvent, OutboundMessage, new_id
from commproc_core.services.keywords import KeywordOutcome
from commproc_core.services.outbox import queue_outbound

if TYPE_CHECKING:
    from commproc_sms.processor import InboundContext, SMSProcessor

__all__ = ["apply_keyword"]

_PARTICIPANT_STATUS = {"opted_out": "opted_out", "opted_in": "active"}


def apply_keyword(
    processor: SMSProcessor, ctx: InboundContext, outcome: KeywordOutcome
) -> CommunicationEvent:
    """Apply ``outcome`` for the message in ``ctx``; the primary event to record.

    Besides the primary event, a second communication event
    (``keyword_opt_out``, ``keyword_opt_in`` or ``keyword_help``) records the
    action itself, keyed ``<message key>:keyword`` so it exists once.
    """
    match = outcome.match
    phone = ctx.event.sender.value
    assert phone is not None  # unresolvable senders never get here
    lead_id = ctx.lead.id if ctx.lead else None
    if outcome.consent_status is not None:
        processor.consents.set(
            phone,
            ctx.channel,
            ctx.scope,
            outcome.consent_status,
            "provider" if match.provider_handled else "keyword",
            reason=f"{match.tier}:{match.keyword}",
            lead_id=lead_id,
        )
        _update_participation(processor, ctx, outcome.consent_status)
    reply = outcome.reply if processor.settings.send_keyword_replies else None
    if reply:
        now = processor.now()
        queue_outbound(
            processor.uow,
            OutboundMessage(
                channel=ctx.channel,
                to=phone,
                sender=ctx.event.recipient.value,
                messaging_service_sid=ctx.event.twilio.messaging_service_sid,
                body=reply,
                reason="keyword_reply",
                lead_id=lead_id,
                campaign_id=ctx.campaign.id if ctx.campaign else None,
                conversation_id=ctx.message.conversation_id,
                caused_by_event_id=ctx.record.id,
                created_at=now,
                updated_at=now,
            ),
            conversations=processor.conversations,
            in_reply_to=ctx.message,
        )
    facts = {
        "action": match.action,
        "tier": match.tier,
        "keyword": match.keyword,
        "language": match.language,
        "provider_handled": match.provider_handled,
        "consent_status": outcome.consent_status,
        "scope": ctx.scope,
        "replied": bool(reply),
    }
    processor.log.info(
        "sms: keyword %s (%s tier, %s) in message %s; reply queued: %s",
        match.action,
        match.tier,
        match.language,
        ctx.event.twilio.message_sid,
        bool(reply),
    )
    processor.uow.events.add(
        attrs.evolve(
            ctx.record,
            id=new_id(),
            event_type=f"keyword_{match.action}",
            dedupe_key=f"{ctx.event.dedupe_key}:keyword",
            data=facts,
        )
    )
    return attrs.evolve(ctx.record, data={**ctx.record.data, "route": "keyword", "keyword": facts})


def _update_participation(processor: SMSProcessor, ctx: InboundContext, consent_status: str) -> None:
    if ctx.campaign is None or ctx.lead is None:
        return
    row = processor.campaigns.participation(ctx.campaign.id, ctx.lead.id)
    status = _PARTICIPANT_STATUS[consent_status]
    if row is not None and row.status != status and (status == "opted_out" or row.status == "opted_out"):
        processor.uow.campaign_participants.update(attrs.evolve(row, status=status))
