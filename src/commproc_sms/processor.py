"""SMSProcessor: Twilio SMS, MMS and WhatsApp webhooks from a queue into commproc's records.

For an inbound message, in this order: the sender's address is classified
(an unresolvable sender is recorded and set aside); the lead and campaign
are matched; consent keywords are checked before anything else acts on the
body; conversation, thread, participants and message are recorded; then the
message is either a keyword (consent and one confirmation, never the agent),
a campaign response, or a regular message, and the agent may answer the
latter two. A status callback moves our outbound message forward by rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import attrs

from commproc_core.agents import TemplateResponder
from commproc_core.errors import InvalidPayload, PermanentError
from commproc_core.model import Campaign, CommunicationEvent, Lead, Media, Message
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload
from commproc_core.services.agent import AIAgentService
from commproc_core.services.keywords import KeywordProcessingService, normalize_text
from commproc_sms.events import PROVIDER, SmsEvent, SmsInbound, SmsStatusUpdate, build_event, consent_channel
from commproc_sms.keywords import apply_keyword
from commproc_sms.settings import SMSSettings
from commproc_sms.signature import verify_envelope
from commproc_sms.status import apply_status
from commproc_sms.twilio import determine_kind, parse_twilio

__all__ = ["InboundContext", "SMSProcessor"]

_GEO = tuple(f"{side}_{part}" for side in ("from", "to") for part in ("city", "state", "zip", "country"))


@attrs.frozen(kw_only=True)
class InboundContext:
    """What an inbound message resolved to, handed between the seed's ``_process_*`` steps."""

    event: SmsInbound
    record: CommunicationEvent
    #: ``sms`` or ``whatsapp``: the channel of consent, threads and replies.
    channel: str
    #: The consent scope: the messaging service, else the number messaged.
    scope: str
    lead: Lead | None
    campaign: Campaign | None
    message: Message


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

    # -- processing --------------------------------------------------------------------

    def process_event(self, event_data: SmsEvent) -> CommunicationEvent:
        if isinstance(event_data, SmsStatusUpdate):
            return apply_status(self, event_data, self._extract_event_data(event_data))
        return self._process_incoming_message(event_data)

    def _process_incoming_message(self, event: SmsInbound) -> CommunicationEvent:
        """Resolve sender, lead and campaign, record the message, then route it."""
        tw = event.twilio
        now = self.now()
        record = CommunicationEvent(
            channel=event.channel,
            provider=PROVIDER,
            event_type=event.event_type,
            provider_message_id=tw.message_sid,
            sender=event.sender.canonical,
            recipient=event.recipient.canonical,
            occurred_at=now,
            recorded_at=now,
            data=self._extract_event_data(event),
        )
        if not event.sender.is_phone or event.sender.value is None:
            # No number to match a lead or honour consent by: keep everything
            # needed to look at it later, act on nothing.
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
        phone = event.sender.value
        channel = consent_channel(event.channel)
        scope = tw.messaging_service_sid or event.recipient.value or event.recipient.raw
        lead = self._match_lead(phone, event)
        words = normalize_text(tw.body)
        campaign = self.campaigns.match(
            lead=lead,
            channel=channel,
            address=event.recipient.value,
            messaging_service_sid=tw.messaging_service_sid,
            keyword=words[0].upper() if words else None,
        )
        opted_out = self.consents.is_opted_out(phone, channel, [scope])
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
        message = self._record_message(event, phone, channel, scope, lead, campaign)
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
            lead=lead,
            campaign=campaign,
            message=message,
        )
        if outcome is not None:
            return apply_keyword(self, ctx, outcome)
        if campaign is not None and lead is not None and self._participating(campaign, lead, words):
            return self._process_campaign_response(ctx)
        return self._process_regular_message(ctx)

    def _match_lead(self, phone: str, event: SmsInbound) -> Lead | None:
        if not self.settings.create_leads:
            return self.leads.find_by_phone(phone)
        name = event.twilio.profile_name
        lead, _ = self.leads.get_or_create_by_phone(phone, source=f"twilio:{event.channel}", first_name=name)
        return lead

    def _record_message(
        self,
        event: SmsInbound,
        phone: str,
        channel: str,
        scope: str,
        lead: Lead | None,
        campaign: Campaign | None,
    ) -> Message:
        tw = event.twilio
        conversation, _ = self.conversations.get_or_create_conversation(
            f"twilio:{channel}:{scope}:{phone}",
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
                body=tw.body.replace("\x00", ""),
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
        """Let the agent answer, unless agent mode is off, the lead unknown or the sender opted out."""
        if not self.settings.agent_mode or self.agent_responder is None:
            return ctx.record
        phone = ctx.event.sender.value
        if ctx.lead is None or phone is None:
            return self._agent_noted(ctx, "skipped:no_lead")
        # Checked again here, not carried over from the keyword step: the
        # consent may have changed earlier in this same batch.
        if self.consents.is_opted_out(phone, ctx.channel, [ctx.scope]):
            return self._agent_noted(ctx, "skipped:opted_out")
        agent = AIAgentService(self.uow, self.clock, responder=self.agent_responder, config=self.agent_config)
        outcome = agent.reply_to(
            ctx.message,
            reply_to=phone,
            channel=ctx.channel,
            sender=ctx.event.recipient.value,
            messaging_service_sid=ctx.event.twilio.messaging_service_sid,
            lead_id=ctx.lead.id,
            campaign_id=ctx.campaign.id if ctx.campaign else None,
            caused_by_event_id=ctx.record.id,
        )
        return self._agent_noted(ctx, outcome.outcome)

    @staticmethod
    def _agent_noted(ctx: InboundContext, note: str) -> CommunicationEvent:
        return attrs.evolve(ctx.record, data={**ctx.record.data, "agent": note})


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
