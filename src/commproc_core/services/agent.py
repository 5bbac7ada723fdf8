"""AIAgentService: answer an inbound message with an AI agent, inside the event's transaction.

The service builds an :class:`~commproc_core.ports.AgentRequest` from the
channel's agent config and the conversation's recent messages, calls an
:class:`~commproc_core.ports.AgentResponder`, records an
:class:`~commproc_core.model.AgentEvent` (prompt, reply, latency, outcome)
and queues the reply in the outbox. A responder failure is recorded as an
``AgentEvent`` with outcome ``failed`` and never raised: the inbound message
it answers is kept either way.

Whether to call the agent at all (consent, keywords, duplicates, unknown
senders) is the channel's decision; the service answers when asked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import attrs

from commproc_core.agents import DEFAULT_AGENT_PROMPT
from commproc_core.model import AgentEvent, ChatTurn, Message, OutboundMessage
from commproc_core.parsing import POSITIVE, not_blank, parse_settings
from commproc_core.ports import AgentRequest, AgentResponder, Clock, UnitOfWork
from commproc_core.services._base import Service
from commproc_core.services.conversations import ConversationService

__all__ = ["AIAgentService", "AgentConfig"]

log = logging.getLogger("commproc.agent")

_ERROR_LIMIT = 500


@attrs.frozen(kw_only=True)
class AgentConfig:
    """How the AI agent answers: its instructions and the context it is given."""

    prompt: str = attrs.field(metadata=not_blank)
    context: dict[str, Any] = attrs.field(factory=dict)
    #: How many earlier messages of the conversation the agent sees.
    history_limit: int = attrs.field(default=10, metadata=POSITIVE)
    #: Cap on a reply's length in characters; longer replies are cut.
    max_reply_chars: int = attrs.field(default=1600, metadata=POSITIVE)


class AIAgentService(Service):
    """Calls the agent for one inbound message and queues its reply."""

    def __init__(
        self,
        uow: UnitOfWork,
        clock: Clock | None = None,
        *,
        responder: AgentResponder,
        config: AgentConfig | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(uow, clock)
        self.responder = responder
        self.config = self.validate_config(config)
        self.conversations = ConversationService(uow, self.clock)

    @staticmethod
    def validate_config(config: AgentConfig | Mapping[str, Any] | None) -> AgentConfig:
        """An AgentConfig from a channel's ``agent_config``; ConfigError names each problem.

        ``None`` gives the default prompt with no context, which is what
        ``config={"agent_mode": True}`` alone asks for.
        """
        if config is None:
            return AgentConfig(prompt=DEFAULT_AGENT_PROMPT)
        if isinstance(config, AgentConfig):
            return config
        return parse_settings(AgentConfig, config)

    def build_request(self, conversation_id: str, channel: str) -> AgentRequest:
        """The agent's instructions, context and the conversation's last messages, oldest first."""
        history = tuple(
            ChatTurn(role="user" if m.direction == "inbound" else "assistant", content=_content(m))
            for m in self.conversations.recent_messages(conversation_id, limit=self.config.history_limit)
            if m.status not in ("failed", "suppressed") and _content(m)
        )
        return AgentRequest(
            prompt=self.config.prompt,
            history=history,
            context=dict(self.config.context),
            channel=channel,
            conversation_id=conversation_id,
        )

    def reply_to(
        self,
        message: Message,
        *,
        reply_to: str,
        channel: str,
        sender: str | None = None,
        messaging_service_sid: str | None = None,
        lead_id: str | None = None,
        campaign_id: str | None = None,
        caused_by_event_id: str | None = None,
    ) -> AgentEvent:
        """Answer ``message`` (already stored in its conversation); the recorded AgentEvent.

        ``reply_to``, ``sender`` and ``messaging_service_sid`` address the
        reply; ``channel`` is the channel consent and replies use.
        """
        request = self.build_request(message.conversation_id, channel)
        started = time.perf_counter()
        try:
            answer = self.responder.respond(request)
        except Exception as exc:
            latency = (time.perf_counter() - started) * 1000
            log.warning(
                "agent %s failed for message %s: %s", self.responder.name, message.id, type(exc).__name__
            )
            return self._record(
                message,
                lead_id,
                outcome="failed",
                latency=latency,
                error=f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT],
            )
        latency = (time.perf_counter() - started) * 1000
        text = answer.text.strip()[: self.config.max_reply_chars].strip()
        if not text:
            return self._record(message, lead_id, outcome="skipped", latency=latency)
        from commproc_core.services.outbox import queue_outbound  # the outbox imports services: import late

        now = self.clock.now()
        queue_outbound(
            self.uow,
            OutboundMessage(
                channel=channel,
                to=reply_to,
                sender=sender,
                messaging_service_sid=messaging_service_sid,
                body=text,
                reason="agent_reply",
                lead_id=lead_id,
                campaign_id=campaign_id,
                conversation_id=message.conversation_id,
                caused_by_event_id=caused_by_event_id,
                created_at=now,
                updated_at=now,
            ),
            conversations=self.conversations,
            in_reply_to=message,
        )
        return self._record(message, lead_id, outcome="replied", latency=latency, reply=text)

    def _record(
        self,
        message: Message,
        lead_id: str | None,
        *,
        outcome: str,
        latency: float,
        reply: str | None = None,
        error: str | None = None,
    ) -> AgentEvent:
        return self.uow.agent_events.add(
            AgentEvent(
                conversation_id=message.conversation_id,
                message_id=message.id,
                lead_id=lead_id,
                responder=self.responder.name,
                prompt=self.config.prompt,
                reply=reply,
                latency_ms=latency,
                outcome=outcome,
                error=error,
                created_at=self.clock.now(),
            )
        )


def _content(message: Message) -> str:
    if message.body:
        return message.body
    if message.media:
        kinds = ", ".join(m.content_type or "file" for m in message.media)
        return f"[attachment: {kinds}]"
    return ""
