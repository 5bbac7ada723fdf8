"""Acting on a consent keyword: record consent, queue the one confirmation, never call the agent."""

from __future__ import annotations

import logging

import attrs

from commproc_core.model import CommunicationEvent, OutboundMessage, new_id
from commproc_core.ports import Clock, UnitOfWork
from commproc_core.services import CampaignMatchingService, ConsentService, ConversationService
from commproc_core.services.keywords import KeywordOutcome
from commproc_core.services.outbox import queue_outbound
from commproc_sms.context import InboundContext

__all__ = ["apply_keyword", "keyword_key"]

log = logging.getLogger("commproc.sms")

_PARTICIPANT_STATUS = {"opted_out": "opted_out", "opted_in": "active"}


def keyword_key(dedupe_key: str) -> str:
    """The dedupe key of the keyword action event recorded beside a message's own event."""
    return f"{dedupe_key}:keyword"


def apply_keyword(
    uow: UnitOfWork,
    clock: Clock,
    ctx: InboundContext,
    outcome: KeywordOutcome,
    *,
    send_replies: bool,
) -> CommunicationEvent:
    """Apply ``outcome`` for the message in ``ctx``; the primary event to record.

    Besides the primary event, a second communication event
    (``keyword_opt_out``, ``keyword_opt_in`` or ``keyword_help``) records the
    action itself, keyed ``<message key>:keyword`` so it exists once.
    """
    match = outcome.match
    lead_id = ctx.lead.id if ctx.lead else None
    if outcome.consent_status is not None:
        ConsentService(uow, clock).set(
            ctx.address,
            ctx.channel,
            ctx.scope,
            outcome.consent_status,
            "provider" if match.provider_handled else "keyword",
            reason=f"{match.tier}:{match.keyword}",
            lead_id=lead_id,
        )
        _update_participation(uow, clock, ctx, outcome.consent_status)
    reply = outcome.reply if send_replies else None
    if reply:
        now = clock.now()
        queue_outbound(
            uow,
            OutboundMessage(
                channel=ctx.channel,
                to=ctx.address,
                sender=ctx.event.to_address,
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
            conversations=ConversationService(uow, clock),
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
    log.info(
        "sms: keyword %s (%s tier, %s) in message %s; reply queued: %s",
        match.action,
        match.tier,
        match.language,
        ctx.event.twilio.message_sid,
        bool(reply),
    )
    uow.events.add(
        attrs.evolve(
            ctx.record,
            id=new_id(),
            event_type=f"keyword_{match.action}",
            dedupe_key=keyword_key(ctx.event.dedupe_key),
            data=facts,
        )
    )
    return attrs.evolve(ctx.record, data={**ctx.record.data, "route": "keyword", "keyword": facts})


def _update_participation(uow: UnitOfWork, clock: Clock, ctx: InboundContext, consent_status: str) -> None:
    if ctx.campaign is None or ctx.lead is None:
        return
    row = CampaignMatchingService(uow, clock).participation(ctx.campaign.id, ctx.lead.id)
    status = _PARTICIPANT_STATUS[consent_status]
    if row is not None and row.status != status and (status == "opted_out" or row.status == "opted_out"):
        uow.campaign_participants.update(attrs.evolve(row, status=status))
