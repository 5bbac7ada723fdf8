"""AI agent replies: asked for inside a batch, answered after it commits.

An agent call takes a network round trip of its own (seconds, for a large
model), far longer than a batch's transaction should stay open. So the
pipeline never calls the agent inside the batch:

1. While a batch is processed, :meth:`AIAgentService.request` records an
   :class:`~commproc_core.model.AgentEvent` with outcome ``pending`` and the
   reply's address, in the batch's unit of work: it commits, or rolls back,
   with the inbound message it answers.
2. Once the batch has committed, :class:`AgentReplies` answers the pending
   requests: it claims them (``pending`` to ``running``, one transaction),
   builds each request from the conversation's recent messages, calls the
   :class:`~commproc_core.ports.AgentResponder` with no transaction open,
   then records the outcome (``replied``, ``skipped`` or ``failed``) and
   queues the reply in the outbox (one transaction).
3. A process that dies between 1 and 2 leaves requests ``pending``;
   :meth:`AgentReplies.sweep` answers those later. One that dies during the
   call leaves them ``running``; the sweep marks those ``failed``
   (``interrupted``) rather than risk a second reply.

A responder failure is recorded as outcome ``failed`` and never raised: the
inbound message it answers is kept either way. Whether to ask the agent at
all (consent, keywords, duplicates, unknown senders) is the channel's
decision. :meth:`AIAgentService.reply_to` answers at once, in the caller's
unit of work, for code that wants that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import attrs

from commproc_core.agents import DEFAULT_AGENT_PROMPT
from commproc_core.model import AgentEvent, ChatTurn, Message, OutboundMessage
from commproc_core.parsing import POSITIVE, not_blank, parse_settings
from commproc_core.ports import AgentReply, AgentRequest, AgentResponder, Clock, Store, UnitOfWork
from commproc_core.services._base import Service, SystemClock
from commproc_core.services.conversations import ConversationService
from commproc_core.stores.session import BatchSession
from commproc_core.stores.spec import Range

__all__ = ["AIAgentService", "AgentConfig", "AgentReplies", "ReplyAddress"]

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


@attrs.frozen(kw_only=True)
class ReplyAddress:
    """Where an agent's reply goes, and what it is linked to."""

    #: The address to answer (the sender of the inbound message).
    to: str
    #: The channel consent and replies use (``sms``, ``whatsapp``...).
    channel: str
    #: Our address to send from, or None to let the messaging service pick.
    sender: str | None = None
    messaging_service_sid: str | None = None
    campaign_id: str | None = None
    #: The communication event of the inbound message.
    caused_by_event_id: str | None = None


@attrs.frozen
class _Call:
    """A responder's answer (or failure) and how long it took."""

    answer: AgentReply | None
    error: str | None
    latency_ms: float


class AIAgentService(Service):
    """Asks the agent about one inbound message (see the module docstring)."""

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

    def request(self, message: Message, address: ReplyAddress, *, lead_id: str | None = None) -> AgentEvent:
        """Record a ``pending`` request to answer ``message``; :class:`AgentReplies` answers it."""
        return self.uow.agent_events.add(
            AgentEvent(
                conversation_id=message.conversation_id,
                message_id=message.id,
                lead_id=lead_id,
                responder=self.responder.name,
                prompt=self.config.prompt,
                outcome="pending",
                delivery=attrs.asdict(address),
                created_at=self.clock.now(),
            )
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
        """Answer ``message`` now, in this unit of work; the recorded AgentEvent.

        ``reply_to``, ``sender`` and ``messaging_service_sid`` address the
        reply; ``channel`` is the channel consent and replies use.
        """
        address = ReplyAddress(
            to=reply_to,
            channel=channel,
            sender=sender,
            messaging_service_sid=messaging_service_sid,
            campaign_id=campaign_id,
            caused_by_event_id=caused_by_event_id,
        )
        call = self.call(self.build_request(message.conversation_id, channel), message.id)
        pending = AgentEvent(
            conversation_id=message.conversation_id,
            message_id=message.id,
            lead_id=lead_id,
            responder=self.responder.name,
            prompt=self.config.prompt,
            outcome="running",
            delivery=attrs.asdict(address),
            created_at=self.clock.now(),
        )
        return self.settle(self.uow.agent_events.add(pending), message, call)

    def call(self, request: AgentRequest, message_id: str) -> _Call:
        """Ask the responder; its failure is returned, never raised."""
        started = time.perf_counter()
        try:
            answer = self.responder.respond(request)
        except Exception as exc:
            latency = (time.perf_counter() - started) * 1000
            log.warning(
                "agent %s failed for message %s: %s", self.responder.name, message_id, type(exc).__name__
            )
            return _Call(None, f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT], latency)
        return _Call(answer, None, (time.perf_counter() - started) * 1000)

    def settle(self, event: AgentEvent, message: Message, call: _Call) -> AgentEvent:
        """Record how ``call`` went on the stored ``event``, queueing the reply it gave."""
        now = self.clock.now()
        if call.answer is None:
            done = attrs.evolve(event, outcome="failed", error=call.error, latency_ms=call.latency_ms)
            return self.uow.agent_events.update(done)
        text = call.answer.text.strip()[: self.config.max_reply_chars].strip()
        if not text:
            return self.uow.agent_events.update(
                attrs.evolve(event, outcome="skipped", latency_ms=call.latency_ms)
            )
        address = ReplyAddress(**event.delivery)
        from commproc_core.services.outbox import queue_outbound  # the outbox imports services: import late

        queue_outbound(
            self.uow,
            OutboundMessage(
                channel=address.channel,
                to=address.to,
                sender=address.sender,
                messaging_service_sid=address.messaging_service_sid,
                body=text,
                reason="agent_reply",
                lead_id=event.lead_id,
                campaign_id=address.campaign_id,
                conversation_id=message.conversation_id,
                caused_by_event_id=address.caused_by_event_id,
                created_at=now,
                updated_at=now,
            ),
            conversations=self.conversations,
            in_reply_to=message,
        )
        replied = attrs.evolve(event, outcome="replied", reply=text, latency_ms=call.latency_ms)
        return self.uow.agent_events.update(replied)


class AgentReplies:
    """Answers pending agent requests once the batch that made them has committed."""

    def __init__(
        self,
        store: Store,
        *,
        responder: AgentResponder,
        config: AgentConfig | Mapping[str, Any] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.responder = responder
        self.config = AIAgentService.validate_config(config)
        self.clock: Clock = clock or SystemClock()

    def _service(self, uow: UnitOfWork) -> AIAgentService:
        return AIAgentService(uow, self.clock, responder=self.responder, config=self.config)

    def answer(self, agent_event_ids: Sequence[str]) -> list[AgentEvent]:
        """Answer the requests named, those still pending; the settled AgentEvents."""
        if not agent_event_ids:
            return []
        claimed: list[tuple[AgentEvent, Message, AgentRequest]] = []
        with self.store.unit_of_work() as uow:
            session = BatchSession(uow)
            session.want("agent_events", "id", agent_event_ids)
            session.fetch()
            service = self._service(session)
            for event_id in agent_event_ids:
                event = session.agent_events.get(event_id)
                if event is None or event.outcome != "pending":
                    continue
                message = session.messages.get(event.message_id) if event.message_id else None
                if message is None:
                    session.agent_events.update(
                        attrs.evolve(event, outcome="failed", error="message not found")
                    )
                    continue
                channel = str(event.delivery.get("channel", ""))
                request = service.build_request(message.conversation_id, channel)
                claimed.append(
                    (session.agent_events.update(attrs.evolve(event, outcome="running")), message, request)
                )
            session.commit()
        # No transaction is open while the agent thinks.
        calls = [(event, message, service.call(request, message.id)) for event, message, request in claimed]
        settled: list[AgentEvent] = []
        with self.store.unit_of_work() as uow:
            session = BatchSession(uow)
            session.want("agent_events", "id", [event.id for event, _, _ in calls])
            session.fetch()
            service = self._service(session)
            for event, message, call in calls:
                current = session.agent_events.get(event.id)
                if current is None or current.outcome != "running":
                    continue  # settled by a sweep meanwhile
                settled.append(service.settle(current, message, call))
            session.commit()
        return settled

    def sweep(
        self,
        *,
        pending_after: timedelta = timedelta(minutes=2),
        running_after: timedelta = timedelta(minutes=15),
    ) -> list[AgentEvent]:
        """Answer requests left ``pending`` too long; mark those left ``running`` as interrupted."""
        now = self.clock.now()
        with self.store.unit_of_work() as uow:
            pending = [
                e.id
                for e in uow.agent_events.find(outcome="pending", created_at=Range(high=now - pending_after))
            ]
            stale = uow.agent_events.find(outcome="running", created_at=Range(high=now - running_after))
            for event in stale:
                # The call may have been answered and the reply lost, or not: no second reply.
                uow.agent_events.update(attrs.evolve(event, outcome="failed", error="interrupted"))
            uow.commit()
        if stale:
            log.warning("agent: %d requests interrupted during the call, marked failed", len(stale))
        return self.answer(pending)


def _content(message: Message) -> str:
    if message.body:
        return message.body
    if message.media:
        kinds = ", ".join(m.content_type or "file" for m in message.media)
        return f"[attachment: {kinds}]"
    return ""
