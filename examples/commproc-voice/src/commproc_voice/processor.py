"""VoiceProcessor: Twilio Voice callbacks from a queue into commproc's records.

A call is one :class:`~commproc_core.Message` (``channel="voice"``, its
CallSid as provider message id) in the conversation between the lead and
the business number, on the lead's open voice thread. Each callback is a
communication event of its own:

* call status callbacks move the call's status forward (they may arrive in
  any order) and record ``call_<status>``; an inbound call that ends busy,
  unanswered or canceled is recorded as ``missed_call``;
* recording callbacks attach the recording (its id, URL, duration and
  status) to the call;
* transcription callbacks make the transcript the call's body (a voicemail
  reads like a text message) and record ``transcription_<status>``.

The caller's number finds (or creates) the lead, as an SMS from that number
would. Reads are declared in :meth:`VoiceProcessor.prefetch`, so a batch
costs a few statements whatever its size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from commproc_core import (
    BaseChannelProcessor,
    BatchSession,
    CommunicationEvent,
    Envelope,
    EventPayload,
    Lead,
    Message,
    PermanentError,
)
from commproc_sms import verify_envelope
from commproc_voice.events import (
    CALL_STATUSES,
    CallStatusEvent,
    RecordingEvent,
    TranscriptionEvent,
    VoiceEvent,
    call_rank,
    parse_voice,
)
from commproc_voice.settings import VoiceSettings

__all__ = ["VoiceProcessor"]

_Call = CallStatusEvent | TranscriptionEvent


class VoiceProcessor(BaseChannelProcessor[VoiceEvent]):
    """Processes Twilio Voice call status, recording and transcription callbacks from an SQS queue."""

    channel_type: ClassVar[str] = "voice"
    settings_class: ClassVar[type[VoiceSettings]] = VoiceSettings
    default_provider: ClassVar[str] = "twilio"
    settings: VoiceSettings

    # -- validation -----------------------------------------------------------------------

    def authenticate(self, envelope: Envelope) -> None:
        verify_envelope(
            envelope,
            self.settings.auth_tokens,
            shared_keys=self.settings.shared_keys,
            public_url=self.settings.public_url,
            required=self.settings.require_signature,
        )

    def validate_event(self, event_data: EventPayload) -> Sequence[VoiceEvent]:
        return [parse_voice(event_data.data, default_region=self.settings.default_region)]

    def describe_failure(self, payload: EventPayload | None, error: PermanentError) -> Mapping[str, Any]:
        data = payload.data if payload is not None and isinstance(payload.data, Mapping) else {}
        sid = data.get("CallSid")
        described: dict[str, Any] = {"provider": "twilio", "event_type": "invalid"}
        if isinstance(sid, str) and sid.isascii() and sid.isalnum() and len(sid) <= 64:
            described["provider_message_id"] = sid
        return described

    # -- reading in sets --------------------------------------------------------------------

    def prefetch(self, events: Sequence[VoiceEvent], session: BatchSession) -> None:
        calls = [e for e in events if isinstance(e, (CallStatusEvent, TranscriptionEvent))]
        session.want("leads", "phone", [e.lead_address.value for e in calls if e.lead_address.is_phone])
        session.want("messages", "provider_message_id", [e.call_sid for e in events])
        session.want("conversations", "external_id", [self.conversation_key(e) for e in calls])
        session.fetch()
        session.want("threads", "lead_id", [lead.id for lead in session.rows("leads")], status="open")
        session.want("participants", "conversation_id", [c.id for c in session.rows("conversations")])
        session.want("conversations", "id", [m.conversation_id for m in session.rows("messages")])

    # -- processing ---------------------------------------------------------------------------

    def process_event(self, event_data: VoiceEvent) -> CommunicationEvent:
        if isinstance(event_data, RecordingEvent):
            return self._recording(event_data)
        lead = self._lead(event_data)
        call = self._call_message(event_data, lead)
        record = CommunicationEvent(
            channel="voice",
            provider="twilio",
            event_type=event_data.event_type,
            provider_message_id=event_data.call_sid,
            sender=event_data.caller.value,
            recipient=event_data.callee.value,
            lead_id=lead.id if lead else None,
            conversation_id=call.conversation_id,
            message_id=call.id,
            occurred_at=self.now(),
            recorded_at=self.now(),
            data={
                "direction": event_data.direction,
                "lead_address_kind": event_data.lead_address.kind,
                "call_status": call.status,
            },
        )
        if isinstance(event_data, TranscriptionEvent):
            self._transcribed(call, event_data)
            return attrs.evolve(
                record,
                provider_event_id=event_data.transcription_sid,
                data={**record.data, "transcription_status": event_data.status},
            )
        self._advance(call, event_data)
        return attrs.evolve(
            record,
            data={
                **record.data,
                "status": event_data.status,
                "missed": event_data.missed,
                "duration": event_data.duration,
                "sequence": event_data.sequence,
                "answered_by": event_data.answered_by,
            },
        )

    def conversation_key(self, event: _Call) -> str:
        """The conversation of the lead and the business number, whichever called whom."""
        return f"twilio:voice:{event.business_address.canonical}:{event.lead_address.canonical}"

    def _lead(self, event: _Call) -> Lead | None:
        address = event.lead_address
        if not address.is_phone or address.value is None:
            return None  # a SIP or client identity, or a withheld number: nobody to match
        found = self.leads.find_by_phone(address.value)
        if found is not None or not self.settings.create_leads:
            return found
        name = event.caller_name if isinstance(event, CallStatusEvent) and event.inbound else None
        lead, _ = self.leads.get_or_create_by_phone(address.value, source="twilio:voice", first_name=name)
        return lead

    def _call_message(self, event: _Call, lead: Lead | None) -> Message:
        """The call's message, recorded in the lead's conversation and thread when the call is first seen."""
        existing = self.uow.messages.find_one(provider="twilio", provider_message_id=event.call_sid)
        if existing is not None:
            return existing
        conversation = self.get_or_create_conversation(
            self.conversation_key(event), lead_id=lead.id if lead else None
        )
        thread_id = None
        if lead is not None:
            thread_id = self.get_or_create_thread(lead.id, "voice", conversation_id=conversation.id).id
        self.conversations.get_or_create_participant(
            conversation.id, event.lead_address.canonical, role="lead", lead_id=lead.id if lead else None
        )
        self.conversations.get_or_create_participant(
            conversation.id, event.business_address.canonical, role="business"
        )
        status = event.status if isinstance(event, CallStatusEvent) else (event.call_status or "completed")
        message, _ = self.conversations.add_message(
            Message(
                conversation_id=conversation.id,
                thread_id=thread_id,
                direction="inbound" if event.inbound else "outbound",
                channel="voice",
                provider="twilio",
                provider_message_id=event.call_sid,
                sender=event.caller.canonical,
                recipient=event.callee.canonical,
                status=status,
                created_at=self.now(),
                updated_at=self.now(),
                metadata={"direction": event.direction},
            )
        )
        return message

    def _advance(self, call: Message, event: CallStatusEvent) -> None:
        """Move the call's status forward; a late callback for an earlier status changes nothing."""
        current = call.status if call.status in CALL_STATUSES else "queued"
        new, old = call_rank(event.status), call_rank(current)
        # Equal ranks and different statuses: two final ones; the first stands.
        if new < old or (new == old and event.status != current):
            return
        metadata = dict(call.metadata)
        if event.duration is not None:
            metadata["duration"] = event.duration
        if event.missed:
            metadata["missed"] = True
        if event.answered_by:
            metadata["answered_by"] = event.answered_by
        self.uow.messages.update(
            attrs.evolve(call, status=event.status, updated_at=self.now(), metadata=metadata)
        )

    def _transcribed(self, call: Message, event: TranscriptionEvent) -> None:
        metadata = {
            **call.metadata,
            "transcription": {
                "sid": event.transcription_sid,
                "status": event.status,
                "recording_sid": event.recording_sid,
            },
        }
        body = event.text if event.status == "completed" and event.text else call.body
        self.uow.messages.update(attrs.evolve(call, body=body, metadata=metadata, updated_at=self.now()))

    def _recording(self, event: RecordingEvent) -> CommunicationEvent:
        call = self.uow.messages.find_one(provider="twilio", provider_message_id=event.call_sid)
        recording = {
            "status": event.status,
            "url": event.url,
            "duration": event.duration,
            "channels": event.channels,
            "source": event.source,
            "error_code": event.error_code,
        }
        lead_id = conversation_id = None
        if call is not None:
            recordings = {**call.metadata.get("recordings", {}), event.recording_sid: recording}
            metadata = {**call.metadata, "recordings": recordings}
            self.uow.messages.update(attrs.evolve(call, metadata=metadata, updated_at=self.now()))
            conversation = self.uow.conversations.get(call.conversation_id)
            lead_id = conversation.lead_id if conversation else None
            conversation_id = call.conversation_id
        return CommunicationEvent(
            channel="voice",
            provider="twilio",
            event_type=event.event_type,
            provider_message_id=event.call_sid,
            provider_event_id=event.recording_sid,
            lead_id=lead_id,
            conversation_id=conversation_id,
            message_id=call.id if call else None,
            occurred_at=self.now(),
            recorded_at=self.now(),
            # A recording callback can come before any callback of its call: kept, to look at later.
            data={**recording, "call_known": call is not None},
        )
