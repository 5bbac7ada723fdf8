"""A small but complete channel: the reference for plugin authors and the test bed of the core.

Its payload is a JSON object ``{"id": "e1", "from": "+14155550100",
"text": "hi", "type": "message"}``; ``type`` may also be ``status``
(recorded, no message stored). Use :attr:`ExampleProcessor.inject` to make
chosen events fail, as the core's own tests do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import attrs

from commproc_core.errors import InvalidPayload, UnknownEventShape
from commproc_core.model import CommunicationEvent, Message
from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload

__all__ = ["ExampleEvent", "ExampleProcessor"]


@attrs.frozen
class ExampleEvent:
    """A parsed example event."""

    event_id: str
    sender: str
    text: str
    event_type: str = "message"
    provider: str = "example"
    channel: str = "example"

    @property
    def dedupe_key(self) -> str:
        return f"example:{self.event_type}:{self.event_id}"


class ExampleProcessor(BaseChannelProcessor[ExampleEvent]):
    """Stores each message event as a lead, conversation, thread, participant and message."""

    channel_type: ClassVar[str] = "example"
    default_provider: ClassVar[str] = "example"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Event id -> exception raised by process_event for it (failure injection).
        self.inject: dict[str, BaseException] = {}
        #: How many times process_event ran, per event id.
        self.calls: dict[str, int] = {}

    def validate_event(self, event_data: EventPayload) -> Sequence[ExampleEvent]:
        data = event_data.data
        if not isinstance(data, Mapping):
            raise InvalidPayload("expected an object", field=f"[{event_data.index}]")
        fields: dict[str, str] = {}
        for name in ("id", "from"):
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise InvalidPayload("required string missing", field=name)
            fields[name] = value
        kind = data.get("type", "message")
        if kind not in ("message", "status"):
            raise UnknownEventShape(f"unknown type {kind!r}", field="type")
        text = data.get("text", "")
        if not isinstance(text, str):
            raise InvalidPayload("expected a string", field="text")
        return [ExampleEvent(event_id=fields["id"], sender=fields["from"], text=text, event_type=kind)]

    def process_event(self, event_data: ExampleEvent) -> CommunicationEvent:
        self.calls[event_data.event_id] = self.calls.get(event_data.event_id, 0) + 1
        failure = self.inject.get(event_data.event_id)
        if failure is not None:
            raise failure
        lead, _ = self.leads.get_or_create_by_phone(event_data.sender, source="example")
        message_id = None
        conversation_id = None
        if event_data.event_type == "message":
            conversation = self.get_or_create_conversation(f"example:{lead.id}", lead_id=lead.id)
            thread = self.get_or_create_thread(lead.id, "example", conversation_id=conversation.id)
            self.conversations.get_or_create_participant(conversation.id, event_data.sender, lead_id=lead.id)
            message, _ = self.conversations.add_message(
                Message(
                    conversation_id=conversation.id,
                    thread_id=thread.id,
                    direction="inbound",
                    channel="example",
                    provider="example",
                    provider_message_id=event_data.event_id,
                    sender=event_data.sender,
                    body=event_data.text,
                    created_at=self.now(),
                )
            )
            message_id, conversation_id = message.id, conversation.id
        return CommunicationEvent(
            channel="example",
            provider="example",
            event_type=event_data.event_type,
            provider_message_id=event_data.event_id,
            sender=event_data.sender,
            lead_id=lead.id,
            conversation_id=conversation_id,
            message_id=message_id,
            occurred_at=self.now(),
            recorded_at=self.now(),
        )
