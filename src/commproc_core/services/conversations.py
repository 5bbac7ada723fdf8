"""ConversationService: conversations, threads, participants and messages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from commproc_core.model import Conversation, Message, Participant, Thread
from commproc_core.services._base import Service

__all__ = ["ConversationService"]


class ConversationService(Service):
    """Keeps conversations and threads; every write is a get-or-create on a unique key.

    Two workers handling messages of one conversation at once cannot create
    two conversations for one external id or two open threads for one lead
    and channel: the store's unique keys decide, and the loser reads the
    winner's row.
    """

    def get_or_create_conversation(
        self,
        external_id: str,
        *,
        channel: str,
        lead_id: str | None = None,
        campaign_id: str | None = None,
        subject: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[Conversation, bool]:
        """The conversation with ``external_id``; a missing lead or campaign is filled in."""
        now = self.clock.now()
        candidate = Conversation(
            external_id=external_id,
            channel=channel,
            lead_id=lead_id,
            campaign_id=campaign_id,
            subject=subject,
            created_at=now,
            updated_at=now,
            metadata=dict(metadata or {}),
        )
        conversation, created = self.uow.conversations.get_or_create(candidate, key="external_id")
        if not created:
            fill: dict[str, Any] = {
                name: value
                for name, value in (("lead_id", lead_id), ("campaign_id", campaign_id), ("subject", subject))
                if value is not None and getattr(conversation, name) is None
            }
            if fill:
                conversation = self.uow.conversations.update(
                    attrs.evolve(conversation, updated_at=now, **fill)
                )
        return conversation, created

    def get_or_create_thread(
        self, lead_id: str, channel: str, *, conversation_id: str | None = None
    ) -> tuple[Thread, bool]:
        """The lead's open thread on ``channel``."""
        now = self.clock.now()
        thread, created = self.uow.threads.get_or_create(
            Thread(
                lead_id=lead_id,
                channel=channel,
                conversation_id=conversation_id,
                created_at=now,
                updated_at=now,
            ),
            key="open_thread",
        )
        if not created and thread.conversation_id is None and conversation_id is not None:
            thread = self.uow.threads.update(
                attrs.evolve(thread, conversation_id=conversation_id, updated_at=now)
            )
        return thread, created

    def close_thread(self, thread: Thread) -> Thread:
        return self.uow.threads.update(attrs.evolve(thread, status="closed", updated_at=self.clock.now()))

    def get_or_create_participant(
        self,
        conversation_id: str,
        address: str,
        *,
        role: str = "lead",
        lead_id: str | None = None,
        display_name: str | None = None,
    ) -> tuple[Participant, bool]:
        return self.uow.participants.get_or_create(
            Participant(
                conversation_id=conversation_id,
                address=address,
                role=role,
                lead_id=lead_id,
                display_name=display_name,
                created_at=self.clock.now(),
            ),
            key="conversation_address",
        )

    def add_message(self, message: Message) -> tuple[Message, bool]:
        """Store a message once per provider message id and bump its conversation and thread."""
        if message.provider_message_id is not None:
            stored, created = self.uow.messages.get_or_create(message, key="provider_message")
        else:
            stored, created = self.uow.messages.add(message), True
        if created:
            self._touch(stored.conversation_id, stored.thread_id, stored.created_at)
        return stored, created

    def recent_messages(self, conversation_id: str, limit: int = 10) -> list[Message]:
        """The conversation's last ``limit`` messages, oldest first."""
        newest = self.uow.messages.find(
            conversation_id=conversation_id, order_by="created_at", descending=True, limit=limit
        )
        return list(reversed(newest))

    def _touch(self, conversation_id: str, thread_id: str | None, at: datetime) -> None:
        conversation = self.uow.conversations.get(conversation_id)
        if conversation is not None and (
            conversation.last_message_at is None or conversation.last_message_at < at
        ):
            self.uow.conversations.update(
                attrs.evolve(conversation, last_message_at=at, updated_at=self.clock.now())
            )
        thread = self.uow.threads.get(thread_id) if thread_id else None
        if thread is not None and (thread.last_message_at is None or thread.last_message_at < at):
            self.uow.threads.update(attrs.evolve(thread, last_message_at=at, updated_at=self.clock.now()))
