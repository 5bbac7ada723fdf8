"""EmailProcessor: email provider events from SQS into leads, conversations and consent.

``validate_event`` tells the provider from the payload, checks per-item
signatures (Mailgun) and normalizes into :class:`EmailEvent` values;
``authenticate`` checks envelope-level signatures (SNS, SendGrid) once per
queue message. ``process_event`` ties each event to its lead, campaign and
conversation and applies the suppression policy of
:mod:`commproc_email.suppression`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from commproc_core.errors import InvalidPayload, PermanentError, SignatureError
from commproc_core.model import (
    Campaign,
    CommunicationEvent,
    Conversation,
    Lead,
    Message,
    OutboundMessage,
    Participant,
)
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload, ReplayGuard
from commproc_core.ports import AgentResponder, Clock, MessageQueue, Sender, Store
from commproc_core.stores.session import BatchSession
from commproc_core.stores.spec import Range
from commproc_email import addresses
from commproc_email.certificate_sources import certificate_source
from commproc_email.certificates import CertificateCache, CertificateFetcher, shared_certificate_cache
from commproc_email.detect import detect_provider
from commproc_email.events import CHANNEL, EmailEvent, with_outbound_recipient
from commproc_email.providers._common import Arrival, arrival
from commproc_email.providers.mailgun import normalize_mailgun, parse_mailgun
from commproc_email.providers.postmark import normalize_postmark
from commproc_email.providers.sendgrid import normalize_sendgrid
from commproc_email.providers.ses import normalize_ses
from commproc_email.records import event_data, failure_fields, message_status_update
from commproc_email.settings import EmailSettings
from commproc_email.signatures import (
    MISSING_SIGNATURE,
    SENDGRID_SIGNATURE_HEADER,
    SnsVerifier,
    check_mailgun_signature,
    load_sendgrid_public_key,
    verify_sendgrid,
)
from commproc_email.suppression import (
    ConsentChange,
    apply_change,
    consent_changes,
    counts_as_soft_bounce,
    soft_bounce_identity,
    soft_bounce_suppression,
    stored_soft_bounce_window,
)

__all__ = ["EmailProcessor"]

#: How long a Mailgun token is remembered when signatures never grow too old.
_TOKEN_MEMORY = timedelta(days=7)

#: Metadata keys naming a campaign (our id or name), in the order tried.
CAMPAIGN_KEYS = ("campaign_id", "campaign", "campaign_name", "marketing_campaign_name")


class EmailProcessor(BaseChannelProcessor[EmailEvent]):
    """Processes SES, SendGrid, Mailgun and Postmark events from one SQS queue.

    SNS signing certificates come from the source the settings describe
    (HTTPS downloads, or ``sns_certificate_dir``) through the process's
    shared :class:`~commproc_email.certificates.CertificateCache`.
    ``certificate_fetcher`` replaces that source (tests hand in their own)
    and then gets a cache of its own; ``certificate_cache`` replaces the
    cache.
    """

    channel_type = CHANNEL
    settings_class = EmailSettings
    default_provider = "unknown"
    settings: EmailSettings

    def __init__(
        self,
        queue_url: str | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        store: Store | None = None,
        queue: MessageQueue | None = None,
        clock: Clock | None = None,
        sender: Sender | None = None,
        agent_responder: AgentResponder | None = None,
        certificate_fetcher: CertificateFetcher | None = None,
        certificate_cache: CertificateCache | None = None,
    ) -> None:
        super().__init__(
            queue_url,
            config,
            store=store,
            queue=queue,
            clock=clock,
            sender=sender,
            agent_responder=agent_responder,
        )
        settings = self.settings
        if certificate_fetcher is None:
            certificate_fetcher = certificate_source(
                settings.sns_certificate_dir,
                connect_timeout=settings.sns_certificate_connect_timeout,
                read_timeout=settings.sns_certificate_read_timeout,
            )
            cache = certificate_cache or shared_certificate_cache()
        else:
            cache = certificate_cache or CertificateCache()
        self._sns = SnsVerifier(certificate_fetcher, settings.sns_topic_arns, cache=cache)
        self._sendgrid_key = (
            load_sendgrid_public_key(settings.sendgrid_public_key) if settings.sendgrid_public_key else None
        )

    # -- validation ----------------------------------------------------------------

    def authenticate(self, envelope: Envelope) -> None:
        """SNS signature and topic (any SNS envelope), SendGrid's signed webhook headers."""
        settings = self.settings
        if envelope.sns is not None and settings.sns_signature != "off":
            self._sns.verify(envelope.sns, required=settings.sns_signature == "required")
        if (
            self._sendgrid_key is not None
            and settings.sendgrid_signature != "off"
            and SENDGRID_SIGNATURE_HEADER in envelope.headers
        ):
            verify_sendgrid(
                self._sendgrid_key,
                envelope.headers,
                envelope.raw_body,
                now=self._signed_reference(envelope),
                max_age_seconds=settings.signature_max_age_seconds,
            )

    def validate_event(self, event_data: EventPayload) -> Sequence[EmailEvent]:
        data = event_data.data
        envelope = event_data.envelope
        provider = detect_provider(data)
        transport = self._transport(envelope)
        settings = self.settings
        if provider == "ses":
            if settings.sns_signature == "required" and envelope.sns is None:
                raise SignatureError(
                    "SES events must arrive in a signed SNS notification", field="$", code=MISSING_SIGNATURE
                )
            return normalize_ses(data, transport)
        if provider == "sendgrid":
            if (
                settings.sendgrid_signature == "required"
                and SENDGRID_SIGNATURE_HEADER not in envelope.headers
            ):
                raise SignatureError(
                    "SendGrid signature required but the headers did not travel with the body",
                    field=f"headers.{SENDGRID_SIGNATURE_HEADER}",
                    code=MISSING_SIGNATURE,
                )
            return normalize_sendgrid(data, transport)
        if provider == "mailgun":
            verified = False

            def authenticate(block: object) -> None:
                nonlocal verified
                if check_mailgun_signature(
                    block,
                    policy=settings.mailgun_signature,
                    signing_key=settings.mailgun_signing_key,
                    now=self._signed_reference(envelope),
                    max_age_seconds=settings.signature_max_age_seconds,
                ):
                    verified = True

            webhook = parse_mailgun(data, authenticate=authenticate)
            events = normalize_mailgun(webhook, data, transport)
            if verified and webhook.signature is not None:
                # A captured signature block must not sign a second, forged event.
                guard = self._mailgun_guard(webhook.signature.token, webhook.signature.timestamp)
                events = [attrs.evolve(e, replay_guard=guard) for e in events]
            return events
        return normalize_postmark(data, transport)

    def describe_failure(self, payload: EventPayload | None, error: PermanentError) -> Mapping[str, Any]:
        return failure_fields(payload.data if payload is not None else None)

    def _mailgun_guard(self, token: str, timestamp: str) -> ReplayGuard:
        """The token's one-time use, remembered until its signature is too old to be accepted."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()
        max_age = self.settings.signature_max_age_seconds
        try:
            signed_at = datetime.fromtimestamp(float(timestamp), timezone.utc)
        except (ValueError, OverflowError, OSError):
            # Unchecked for age (no max age set) and no usable time: count from now.
            signed_at = self.now()
        keep = timedelta(seconds=max_age) if max_age is not None else _TOKEN_MEMORY
        return ReplayGuard(scope="mailgun", token=digest, expires_at=signed_at + keep)

    def _signed_reference(self, envelope: Envelope) -> datetime:
        # Signature freshness is judged against the time the message entered
        # the queue: a backlog or a retry must not turn valid events stale.
        message = envelope.queue_message
        if message is not None and message.sent_at is not None:
            return message.sent_at
        now: datetime = self.now()
        return now

    def _transport(self, envelope: Envelope) -> Arrival:
        return arrival(envelope, received_at=self.now())

    # -- the seed's helpers --------------------------------------------------------

    @staticmethod
    def _is_valid_email(email: object) -> bool:
        """True when ``email`` is a syntactically valid address (no DNS lookups)."""
        return addresses.is_valid_email(email)

    def _determine_event_type(self, event_data: EmailEvent | Mapping[str, Any]) -> str:
        """The normalized event type of an event, or of a raw provider payload (its first event)."""
        if isinstance(event_data, EmailEvent):
            return event_data.event_type
        envelope = Envelope(kind="json", body_format="json", raw_body="")
        events = self.validate_event(EventPayload(data=event_data, envelope=envelope))
        return events[0].event_type if events else "unknown"

    def _get_lead_by_email(self, email: str | None) -> Lead | None:
        """The lead whose email match key is ``email``'s (any case, any IDN form)."""
        key = addresses.match_key(email) if email else None
        return self.leads.find_by_email(key) if key else None

    def _get_or_create_conversation(
        self,
        event: EmailEvent,
        lead: Lead | None = None,
        campaign: Campaign | None = None,
        outbound: OutboundMessage | None = None,
    ) -> Conversation | None:
        """The conversation of the message thread ``event`` belongs to.

        An outbound message commproc sent keeps the conversation it was sent
        in; otherwise each provider message is its own thread, keyed
        ``email:<provider>:<message id>``.
        """
        if outbound is not None and outbound.conversation_id:
            found = self.uow.conversations.get(outbound.conversation_id)
            if found is not None:
                return found
        if not event.provider_message_id:
            return None
        return self.get_or_create_conversation(
            _conversation_key(event.provider, event.provider_message_id),
            lead_id=lead.id if lead else None,
            campaign_id=campaign.id if campaign else None,
            subject=event.subject,
        )

    def _get_or_create_participant(
        self, conversation: Conversation, address: str, lead: Lead | None = None, role: str = "lead"
    ) -> Participant:
        participant, _ = self.conversations.get_or_create_participant(
            conversation.id, address, role=role, lead_id=lead.id if lead else None
        )
        return participant

    def _create_conversation_message(
        self, event: EmailEvent, conversation: Conversation, lead: Lead | None
    ) -> Message:
        """The message ``event`` is about: the inbound message, or the outbound one it reports on.

        Stored once per provider message id; an outbound message's status
        follows the latest delivery event by the event's own time.
        """
        thread_id = (
            self.get_or_create_thread(lead.id, CHANNEL, conversation_id=conversation.id).id if lead else None
        )
        inbound = event.event_type == "inbound"
        candidate = Message(
            conversation_id=conversation.id,
            thread_id=thread_id,
            direction="inbound" if inbound else "outbound",
            channel=CHANNEL,
            provider=event.provider,
            provider_message_id=event.provider_message_id,
            sender=event.sender if inbound else None,
            recipient=event.to_address if inbound else event.recipient,
            subject=event.subject,
            body=event.body,
            status="received" if inbound else None,
            created_at=event.occurred_at if inbound else self.now(),
            updated_at=self.now(),
        )
        message, _ = self.conversations.add_message(candidate)
        if not inbound:
            changed = message_status_update(message, event)
            if changed is not None:
                message = self.uow.messages.update(changed)
        return message

    # -- processing -------------------------------------------------------------------

    # -- reading in sets -------------------------------------------------------------

    def prefetch(self, events: Sequence[EmailEvent], session: BatchSession) -> None:
        message_ids = [e.provider_message_id for e in events]
        session.want("outbox", "provider_message_id", message_ids)
        session.want("leads", "email_key", [k for e in events for k in (e.recipient_key, e.sender_key)])
        session.want("consents", "address", [e.recipient_key for e in events])
        references = [c for e in events for r in e.in_reply_to for c in _reference_ids(r)]
        session.want("messages", "provider_message_id", [*message_ids, *references])
        session.want(
            "conversations",
            "external_id",
            [
                *(
                    _conversation_key(e.provider, e.provider_message_id)
                    for e in events
                    if e.provider_message_id
                ),
                *(_conversation_key("ses", c) for c in references),
            ],
        )
        session.fetch()
        # Second round: what hangs off the rows just read.
        outbound = session.rows("outbox")
        session.want("leads", "id", [o.lead_id for o in outbound])
        conversation_ids = [o.conversation_id for o in outbound]
        conversation_ids += [m.conversation_id for m in session.rows("messages")]
        session.want("conversations", "id", conversation_ids)
        session.fetch()
        lead_ids = [lead.id for lead in session.rows("leads")]
        session.want("threads", "lead_id", lead_ids, status="open")
        session.want("campaign_participants", "lead_id", lead_ids)
        session.want("participants", "conversation_id", [c.id for c in session.rows("conversations")])

    # -- processing -------------------------------------------------------------------

    def process_event(self, event_data: EmailEvent) -> CommunicationEvent:
        event = event_data
        self.log.debug("email %s event %s", event.provider, event.event_type)
        if event.event_type == "unknown":
            # Never guessed at: recorded as rejected with its own reason, the provider's event kept whole.
            return attrs.evolve(
                self._communication_event(event),
                status="failed",
                error_code="unknown_event_type",
                error_detail=f"{event.provider} event type not known to commproc",
            )
        if event.event_type == "inbound":
            return self._process_inbound(event)
        return self._process_delivery_event(event)

    def _communication_event(self, event: EmailEvent, **links: Any) -> CommunicationEvent:
        return CommunicationEvent(
            channel=CHANNEL,
            provider=event.provider,
            event_type=event.event_type,
            provider_message_id=event.provider_message_id,
            provider_event_id=event.provider_event_id,
            sender=event.sender_key,
            recipient=event.recipient_key,
            occurred_at=event.occurred_at,
            recorded_at=self.now(),
            data=event_data(event),
            **links,
        )

    def _process_delivery_event(self, event: EmailEvent) -> CommunicationEvent:
        outbound = None
        if event.provider_message_id:
            outbound = self.uow.outbox.find_one(provider_message_id=event.provider_message_id)
        if event.recipient_unresolved and outbound is not None:
            # The payload names no recipient (a Postmark Unsubscribe bounce): the message we sent does.
            event = with_outbound_recipient(event, outbound.to)
        lead = self.leads.find_by_email(event.recipient_key) if event.recipient_key else None
        if lead is None and outbound is not None and outbound.lead_id and event.recipient_key is None:
            lead = self.leads.find_by_id(outbound.lead_id)
        campaign = self._campaign_for(event, outbound)
        if campaign is not None and lead is not None:
            self.campaigns.join(campaign, lead)
        conversation = self._get_or_create_conversation(event, lead, campaign, outbound)
        message = None
        if conversation is not None:
            if event.recipient:
                self._get_or_create_participant(conversation, event.recipient, lead)
            message = self._create_conversation_message(event, conversation, lead)
        if outbound is not None:
            self._update_outbound(outbound, event)
        self._apply_suppression(event, lead)
        return self._communication_event(
            event,
            lead_id=lead.id if lead else None,
            campaign_id=campaign.id if campaign else (conversation.campaign_id if conversation else None),
            conversation_id=conversation.id if conversation else None,
            message_id=message.id if message else None,
        )

    def _process_inbound(self, event: EmailEvent) -> CommunicationEvent:
        lead = self.leads.find_by_email(event.sender_key) if event.sender_key else None
        if lead is None and self.settings.create_leads and event.sender and event.sender_key:
            lead, _ = self.leads.get_or_create_by_email(event.sender, event.sender_key, source="email")
        conversation = self._reply_conversation(event)
        campaign = (
            self.campaigns.by_id(conversation.campaign_id)
            if conversation and conversation.campaign_id
            else None
        )
        if campaign is None:
            campaign = self._campaign_for(event, None)
        if campaign is None and event.to_address:
            campaign = self.campaigns.match(lead=lead, channel=CHANNEL, address=event.to_address)
        if campaign is None and lead is not None:
            campaign = self._find_nurturing_campaign(event, lead)
        if conversation is None:
            conversation = self._get_or_create_conversation(event, lead, campaign)
        if conversation is None:  # SES always names the message; a guard, not a code path
            raise InvalidPayload("inbound email without a message id", field="$.mail.messageId")
        if campaign is not None and lead is not None:
            self.campaigns.record_response(campaign, lead)
        if event.sender:
            self._get_or_create_participant(conversation, event.sender, lead)
        message = self._create_conversation_message(event, conversation, lead)
        return self._communication_event(
            event,
            lead_id=lead.id if lead else None,
            campaign_id=campaign.id if campaign else None,
            conversation_id=conversation.id,
            message_id=message.id,
        )

    def _reply_conversation(self, event: EmailEvent) -> Conversation | None:
        """The conversation of the message an inbound email replies to, if commproc knows it."""
        for reference in event.in_reply_to:
            for candidate in _reference_ids(reference):
                known = self.uow.messages.find_one(provider_message_id=candidate)
                if known is not None:
                    return self.uow.conversations.get(known.conversation_id)
                found = self.uow.conversations.find_one(external_id=_conversation_key("ses", candidate))
                if found is not None:
                    return found
        return None

    def _campaign_for(self, event: EmailEvent, outbound: OutboundMessage | None) -> Campaign | None:
        """The campaign by the outbound record, else by metadata keys, else by a tag naming one."""
        if outbound is not None and outbound.campaign_id:
            found = self.campaigns.by_id(outbound.campaign_id)
            if found is not None:
                return found
        for key in CAMPAIGN_KEYS:
            value = event.metadata.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                found = self.campaigns.by_id(str(value)) or self.campaigns.by_name(str(value))
                if found is not None:
                    return found
        for tag in event.tags:
            found = self.campaigns.by_name(tag)
            if found is not None:
                return found
        return None

    def _update_outbound(self, outbound: OutboundMessage, event: EmailEvent) -> None:
        changed = message_status_update(outbound, event)
        if changed is not None:
            self.uow.outbox.update(changed)

    def _apply_suppression(self, event: EmailEvent, lead: Lead | None) -> None:
        key = event.recipient_key
        if key is None or event.recipient_ambiguous:
            return
        lead_id = lead.id if lead else None
        changes = consent_changes(event)
        for change in changes:
            apply_change(self.consents, key, change, event.occurred_at, lead_id)
        if not counts_as_soft_bounce(event):
            return
        settings = self.settings
        window = timedelta(days=settings.soft_bounce_window_days)
        low, high = stored_soft_bounce_window(event.occurred_at, window)
        stored = self.uow.events.find(
            recipient=key,
            channel=CHANNEL,
            event_type="bounced",
            status="processed",
            occurred_at=Range(low, high),
        )
        at = soft_bounce_suppression(
            stored,
            (soft_bounce_identity(event), event.occurred_at),
            limit=settings.soft_bounce_limit,
            window=window,
        )
        if at is not None:
            reason = (
                f"{settings.soft_bounce_limit} soft bounces within {settings.soft_bounce_window_days} days"
            )
            apply_change(
                self.consents, key, ConsentChange("all", "suppressed", "soft_bounce", reason), at, lead_id
            )


def _conversation_key(provider: str, message_id: str) -> str:
    """A conversation's external id: the provider and the id of the message that began it."""
    return f"email:{provider}:{message_id}"


def _reference_ids(reference: str) -> list[str]:
    """The provider message ids a Message-ID header value may stand for."""
    message_id = reference.strip("<>")
    local, _, domain = message_id.partition("@")
    # SES sets Message-ID to <message id>@<region>.amazonses.com.
    return [c for c in (message_id, local if domain.endswith("amazonses.com") else None) if c]
