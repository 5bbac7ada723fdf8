"""SMSProcessor: Twilio SMS, MMS and WhatsApp webhooks from a queue into commproc's records.

For an inbound message, in this order: the sender's address is classified
(a sender with neither a number nor a WhatsApp user id is recorded and set
aside); the lead and campaign are matched; consent keywords are checked
before anything else acts on the body; conversation, thread, participants
and message are recorded; then the message is either a keyword (consent and
one confirmation, never the agent), a campaign response, or a regular
message, and the agent may be asked to answer the latter two (it answers
once the batch has committed). A status callback moves our outbound message
forward by rank.

A batch's reads are declared in :meth:`SMSProcessor.prefetch`: leads,
conversations, consents, messages and outbox rows in one round of loads,
their threads, participants and campaign memberships in a second.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import attrs

from commproc_core.agents import TemplateResponder
from commproc_core.errors import InvalidPayload, PermanentError, UniqueViolation
from commproc_core.model import Campaign, CommunicationEvent, Lead, Media, Message
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload
from commproc_core.pipeline.stats import MessageOutcome
from commproc_core.services.agent import AgentReplies, AIAgentService, ReplyAddress
from commproc_core.services.keywords import KeywordProcessingService, normalize_text
from commproc_core.stores.session import BatchSession
from commproc_sms.context import InboundContext
from commproc_sms.events import (
    PROVIDER,
    SmsEvent,
    SmsInbound,
    SmsStatusUpdate,
    build_event,
    consent_channel,
)
from commproc_sms.keywords import apply_keyword, keyword_key
from commproc_sms.settings import SMSSettings
from commproc_sms.signature import verify_envelope
from commproc_sms.status import apply_status
from commproc_sms.twilio import determine_kind, parse_twilio

__all__ = ["InboundContext", "SMSProcessor"]

_GEO = tuple(f"{side}_{part}" for side in ("from", "to") for part in ("city", "state", "zip", "country"))
#: Seconds between sweeps for agent requests a crash left unanswered.
_AGENT_SWEEP_SECONDS = 60.0


class SMSProcessor(BaseChannelProcessor[SmsEvent]):
    """Processes Twilio messaging webhooks (SMS, MMS, WhatsApp) from an SQS queue."""

    channel_type: ClassVar[str] = "sms"
    settings_class: ClassVar[type[SMSSettings]] = SMSSettings
    default_provider: ClassVar[str] = PROVIDER
    settings: SMSSettings

    def __init__(
        self,
        queue_url: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        keywords: KeywordProcessingService | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(queue_url, config, **kwargs)
        self.keywords = keywords or KeywordProcessingService(self.settings.keywords)
        self.agent_config = AIAgentService.validate_config(self.settings.agent_config)
        if self.settings.agent_mode and self.agent_responder is None:
            # The seed's config={"agent_mode": True} names no agent: answer from a template.
            self.agent_responder = TemplateResponder()
        # When agent requests a crash left behind were last swept (time.monotonic()); None: not yet.
        self._agent_swept: float | None = None

    # -- validation -------------------------------------------------------------------

    def authenticate(self, envelope: Envelope) -> None:
        verify_envelope(
            envelope,
            self.settings.account_tokens,
            shared_keys=self.settings.shared_keys,
            public_url=self.settings.public_url,
            required=self.settings.require_signature,
        )

    def validate_event(self, event_data: EventPayload) -> Sequence[SmsEvent]:
        data = _parameters(event_data.data)
        parsed = parse_twilio(data)
        verified = bool(self.settings.tokens) and "x-twilio-signature" in event_data.envelope.headers
        return [build_event(parsed, default_region=self.settings.default_region, signature_verified=verified)]

    def describe_failure(self, payload: EventPayload | None, error: PermanentError) -> Mapping[str, Any]:
        described: dict[str, Any] = {"provider": PROVIDER, "event_type": "invalid"}
        try:
            data = _parameters(payload.data) if payload is not None else {}
        except InvalidPayload:
            return described
        sid = data.get("MessageSid") or data.get("SmsSid")
        if isinstance(sid, str) and sid.isascii() and sid.isalnum() and len(sid) <= 64:
            described["provider_message_id"] = sid
        return described

    def _determine_event_type(self, event_data: Mapping[str, Any]) -> str:
        """The seed's classifier: ``inbound_message`` or ``status_update`` for Twilio parameters."""
        return determine_kind(event_data)

    def _extract_event_data(self, event: SmsEvent) -> dict[str, Any]:
        """The channel facts stored in the communication event's ``data``.

        No body and no addresses of its own (those live on the message and the
        event's sender/recipient); parameters Twilio added that commproc does
        not know are kept, as received, under ``extra``.
        """
        tw = event.twilio
        data: dict[str, Any] = {
            "kind": event.event_type,
            "channel": event.channel,
            "account_sid": tw.account_sid,
            "messaging_service_sid": tw.messaging_service_sid,
            "signature_verified": event.signature_verified,
            "from_kind": event.sender.kind if event.sender else None,
            "to_kind": event.recipient.kind if event.recipient else None,
            "extra": dict(tw.extra),
        }
        if isinstance(event, SmsInbound):
            inbound = event.twilio
            data.update(
                num_media=inbound.num_media,
                num_segments=inbound.num_segments,
                from_number_valid=event.sender.valid,
                opt_out_type=inbound.opt_out_type,
                message_type=inbound.message_type,
                geo={name: getattr(inbound, name) for name in _GEO if getattr(inbound, name)},
            )
        else:
            data.update(
                status=event.status,
                rank=event.rank,
                error_code=event.twilio.error_code,
                error_message=event.twilio.error_message,
                raw_dlr_done_date=event.twilio.raw_dlr_done_date,
                whatsapp_event_type=event.twilio.event_type,
            )
        return data

    # -- reading in sets -----------------------------------------------------------------

    def prefetch(self, events: Sequence[SmsEvent], session: BatchSession) -> None:
        inbound = [e for e in events if isinstance(e, SmsInbound) and e.lead_key is not None]
        statuses = [e for e in events if isinstance(e, SmsStatusUpdate)]
        phones = [e.sender.value for e in inbound if e.sender.is_phone]
        session.want("leads", "phone", phones)
        session.want("leads", "whatsapp_id", [e.sender_whatsapp_id for e in inbound])
        session.want("consents", "address", [e.lead_key for e in inbound])
        session.want("conversations", "external_id", [self._conversation_key(e) for e in inbound])
        session.want("events", "dedupe_key", [keyword_key(e.dedupe_key) for e in inbound])
        sids = [e.twilio.message_sid for e in events]
        session.want("messages", "provider_message_id", sids)
        session.want("outbox", "provider_message_id", [e.twilio.message_sid for e in statuses])
        session.fetch()
        # Second round: what hangs off the rows just read.
        lead_ids = [lead.id for lead in session.rows("leads")]
        session.want("threads", "lead_id", lead_ids, status="open")
        session.want("campaign_participants", "lead_id", lead_ids)
        session.want("participants", "conversation_id", [c.id for c in session.rows("conversations")])
        session.want("conversations", "id", [m.conversation_id for m in session.rows("messages")])

    # -- processing --------------------------------------------------------------------

    def process_event(self, event_data: SmsEvent) -> CommunicationEvent:
        if isinstance(event_data, SmsStatusUpdate):
            return apply_status(self.uow, self.clock, event_data, self._extract_event_data(event_data))
        return self._process_incoming_message(event_data)

    @staticmethod
    def _scope(event: SmsInbound) -> str:
        return event.twilio.messaging_service_sid or event.recipient.value or event.recipient.raw

    def _conversation_key(self, event: SmsInbound) -> str:
        return f"twilio:{consent_channel(event.channel)}:{self._scope(event)}:{event.lead_key}"

    def _process_incoming_message(self, event: SmsInbound) -> CommunicationEvent:
        """Resolve sender, lead and campaign, record the message, then route it."""
        tw = event.twilio
        now = self.now()
        data = self._extract_event_data(event)
        if event.sender_whatsapp_id:
            data["sender_whatsapp_id"] = event.sender_whatsapp_id
        record = CommunicationEvent(
            channel=event.channel,
            provider=PROVIDER,
            event_type=event.event_type,
            provider_message_id=tw.message_sid,
            sender=event.from_address,
            recipient=event.to_address,
            occurred_at=now,
            recorded_at=now,
            data=data,
        )
        address = event.lead_key
        if address is None:
            # No number or WhatsApp user id to match a lead or honour consent by:
            # keep everything needed to look at it later, act on nothing.
            self.log.info("sms: inbound %s set aside: sender is %s", tw.message_sid, event.sender.kind)
            return attrs.evolve(
                record,
                status="ignored",
                data={
                    **record.data,
                    "set_aside": "unresolvable_sender",
                    "from_raw": tw.from_,
                    "body": tw.body,
                },
            )
        channel = consent_channel(event.channel)
        scope = self._scope(event)
        lead = self._match_lead(event)
        words = normalize_text(tw.body)
        campaign = self.campaigns.match(
            lead=lead,
            channel=channel,
            address=event.recipient.value,
            messaging_service_sid=tw.messaging_service_sid,
            keyword=words[0].upper() if words else None,
        )
        opted_out = self.consents.is_opted_out(address, channel, [scope])
        outcome = self.keywords.evaluate(
            tw.body,
            opted_out=opted_out,
            provider_opt_out_type=tw.opt_out_type,
            help_overrides=(
                campaign.metadata.get("help_text") if campaign else None,
                self.settings.help_text,
            ),
        )
        if outcome is None and campaign is None and lead is not None:
            campaign = self._find_nurturing_campaign(event, lead)
        message = self._record_message(event, channel, lead, campaign)
        record = attrs.evolve(
            record,
            lead_id=lead.id if lead else None,
            campaign_id=campaign.id if campaign else None,
            conversation_id=message.conversation_id,
            message_id=message.id,
        )
        ctx = InboundContext(
            event=event,
            record=record,
            channel=channel,
            scope=scope,
            address=address,
            lead=lead,
            campaign=campaign,
            message=message,
        )
        if outcome is not None:
            return apply_keyword(
                self.uow, self.clock, ctx, outcome, send_replies=self.settings.send_keyword_replies
            )
        if campaign is not None and lead is not None and self._participating(campaign, lead, words):
            return self._process_campaign_response(ctx)
        return self._process_regular_message(ctx)

    def _find_nurturing_campaign(self, event_data: Any, lead: Lead | None) -> Campaign | None:
        """The active nurturing campaign for ``lead`` on the event's channel (WhatsApp has its own)."""
        channel = (
            consent_channel(event_data.channel) if isinstance(event_data, SmsInbound) else self.channel_type
        )
        return self.campaigns.find_nurturing_campaign(lead, channel)

    def _match_lead(self, event: SmsInbound) -> Lead | None:
        """The sender's lead: by number, else by WhatsApp user id; created when settings allow.

        A lead first known by its WhatsApp user id and later writing with a
        number beside that id is the same lead: the id finds it, and the
        number is remembered on it (and the id on a lead found by number).
        """
        phone = event.sender.value if event.sender.is_phone else None
        user_id = event.sender_whatsapp_id
        leads = self.leads
        lead = leads.find_by_phone(phone) if phone else None
        if lead is None and user_id:
            lead = self.uow.leads.find_one(whatsapp_id=user_id)
        if lead is None:
            if not self.settings.create_leads:
                return None
            fields: dict[str, Any] = {
                "source": f"twilio:{event.channel}",
                "first_name": event.twilio.profile_name,
                "whatsapp_id": user_id,
            }
            if phone:
                lead, _ = leads.get_or_create_by_phone(phone, **fields)
                return lead
            now = self.now()
            lead, _ = self.uow.leads.get_or_create(
                Lead(created_at=now, updated_at=now, **fields), key="whatsapp_id"
            )
            return lead
        missing: dict[str, Any] = {}
        if phone and lead.phone is None:
            missing["phone"] = phone
        if user_id and lead.whatsapp_id is None:
            missing["whatsapp_id"] = user_id
        if missing:
            try:
                lead = self.uow.leads.update(attrs.evolve(lead, updated_at=self.now(), **missing))
            except UniqueViolation:
                # Another lead holds that number or id already: leave both as they are.
                self.log.debug("sms: lead %s keeps its addresses; another lead has them", lead.id)
        return lead

    def _record_message(
        self, event: SmsInbound, channel: str, lead: Lead | None, campaign: Campaign | None
    ) -> Message:
        tw = event.twilio
        conversation, _ = self.conversations.get_or_create_conversation(
            self._conversation_key(event),
            channel=channel,
            lead_id=lead.id if lead else None,
            campaign_id=campaign.id if campaign else None,
        )
        thread_id = None
        if lead is not None:
            thread_id = self.get_or_create_thread(lead.id, channel, conversation_id=conversation.id).id
        self.conversations.get_or_create_participant(
            conversation.id,
            event.sender.canonical,
            role="lead",
            lead_id=lead.id if lead else None,
            display_name=tw.profile_name,
        )
        self.conversations.get_or_create_participant(
            conversation.id, event.recipient.canonical, role="business"
        )
        now = self.now()
        message, _ = self.conversations.add_message(
            Message(
                conversation_id=conversation.id,
                thread_id=thread_id,
                direction="inbound",
                channel=event.channel,
                provider=PROVIDER,
                provider_message_id=tw.message_sid,
                sender=event.sender.canonical,
                recipient=event.recipient.canonical,
                body=tw.body,
                media=tuple(Media(url=m.url, content_type=m.content_type) for m in tw.media),
                status=tw.sms_status or "received",
                created_at=now,
                updated_at=now,
                metadata={
                    "num_segments": tw.num_segments,
                    "profile_name": tw.profile_name,
                    "wa_id": tw.wa_id,
                },
            )
        )
        return message

    def _participating(self, campaign: Campaign, lead: Lead, words: tuple[str, ...]) -> bool:
        """Whether the lead takes part in ``campaign``, joining it when the message is its join keyword."""
        if self.campaigns.participation(campaign.id, lead.id) is not None:
            return True
        if words and words[0].upper() in campaign.keywords:
            # A join keyword (JOIN) makes the sender a participant; that first
            # message is their answer to the campaign's call.
            self.campaigns.join(campaign, lead)
            return True
        return False

    def _process_campaign_response(self, ctx: InboundContext) -> CommunicationEvent:
        """A message from a campaign participant: counted as a response to that campaign."""
        assert ctx.campaign is not None and ctx.lead is not None
        participant = self.campaigns.record_response(ctx.campaign, ctx.lead)
        record = attrs.evolve(
            ctx.record,
            data={**ctx.record.data, "route": "campaign_response", "participant_id": participant.id},
        )
        return self._maybe_agent_reply(attrs.evolve(ctx, record=record))

    def _process_regular_message(self, ctx: InboundContext) -> CommunicationEvent:
        """Any other message: joined to the nurturing campaign it was attributed to, if any."""
        if ctx.campaign is not None and ctx.lead is not None and ctx.campaign.is_nurturing:
            self.campaigns.join(ctx.campaign, ctx.lead)
        record = attrs.evolve(ctx.record, data={**ctx.record.data, "route": "regular"})
        return self._maybe_agent_reply(attrs.evolve(ctx, record=record))

    def _maybe_agent_reply(self, ctx: InboundContext) -> CommunicationEvent:
        """Ask the agent to answer, unless agent mode is off, the lead unknown or the sender opted out.

        The request is recorded now and answered after the batch commits.
        """
        if not self.settings.agent_mode or self.agent_responder is None:
            return ctx.record
        if ctx.lead is None:
            return self._agent_noted(ctx, "skipped:no_lead")
        # Checked again here, not carried over from the keyword step: the
        # consent may have changed earlier in this same batch.
        if self.consents.is_opted_out(ctx.address, ctx.channel, [ctx.scope]):
            return self._agent_noted(ctx, "skipped:opted_out")
        agent = AIAgentService(self.uow, self.clock, responder=self.agent_responder, config=self.agent_config)
        request = agent.request(
            ctx.message,
            ReplyAddress(
                to=ctx.address,
                channel=ctx.channel,
                sender=ctx.event.to_address,
                messaging_service_sid=ctx.event.twilio.messaging_service_sid,
                campaign_id=ctx.campaign.id if ctx.campaign else None,
                caused_by_event_id=ctx.record.id,
            ),
            lead_id=ctx.lead.id,
        )
        return attrs.evolve(
            ctx.record, data={**ctx.record.data, "agent": "requested", "agent_event_id": request.id}
        )

    @staticmethod
    def _agent_noted(ctx: InboundContext, note: str) -> CommunicationEvent:
        return attrs.evolve(ctx.record, data={**ctx.record.data, "agent": note})

    def after_commit(self, outcomes: Sequence[MessageOutcome]) -> None:
        """Answer the agent requests this batch recorded; now and then, those a crash left behind."""
        if self.agent_responder is None:
            return
        requested = [
            str(event.data["agent_event_id"])
            for outcome in outcomes
            for event, duplicate in zip(outcome.events, outcome.duplicates, strict=True)
            if not duplicate and event.data.get("agent_event_id")
        ]
        replies = AgentReplies(
            self.store, responder=self.agent_responder, config=self.agent_config, clock=self.clock
        )
        replies.answer(requested)
        now = time.monotonic()
        if self._agent_swept is None or now - self._agent_swept > _AGENT_SWEEP_SECONDS:
            self._agent_swept = now
            replies.sweep()


def _parameters(data: Any) -> Mapping[str, Any]:
    """Twilio's parameters from a payload item: an object, or a form string inside a JSON string."""
    if isinstance(data, str):
        try:
            return dict(parse_qsl(data.strip(), keep_blank_values=True, strict_parsing=True))
        except ValueError as exc:
            raise InvalidPayload("a string payload that is not form-encoded", field="$") from exc
    if isinstance(data, Mapping):
        return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in data.items()}
    raise InvalidPayload(f"expected Twilio parameters, got {type(data).__name__}", field="$")
