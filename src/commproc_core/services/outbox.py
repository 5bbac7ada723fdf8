"""The outbox: replies are written with the event that caused them, and sent after commit.

A processor never calls a provider's send API inside its transaction: it
writes an :class:`~commproc_core.model.OutboundMessage` (:func:`queue_outbound`)
that commits, or rolls back, with everything else the event did. Then
:class:`OutboxDispatcher` hands committed rows to a :class:`~commproc_core.ports.Sender`.

A row is marked ``sending`` in its own transaction before the provider is
called, together with an ``outbound_send`` communication event whose unique
dedupe key (row and attempt) makes the claim exclusive among dispatchers. If
the process dies during the call, the row stays ``sending`` and is not sent
again automatically: a possible duplicate text costs more than a late one,
and :meth:`OutboxDispatcher.stuck` lists such rows for a person or a
reconciliation job to settle.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

import attrs

from commproc_core.errors import CommprocError
from commproc_core.model import CommunicationEvent, Message, OutboundMessage
from commproc_core.ports import Clock, Sender, Store, UnitOfWork
from commproc_core.services._base import SystemClock
from commproc_core.services.consent import ConsentService

if TYPE_CHECKING:
    from commproc_core.services.conversations import ConversationService

__all__ = ["CONSENT_EXEMPT_REASONS", "DispatchCounts", "OutboxDispatcher", "SendError", "queue_outbound"]

log = logging.getLogger("commproc.outbox")

#: Replies sent even to an opted-out address: the one confirmation of an opt-out.
CONSENT_EXEMPT_REASONS = frozenset({"keyword_reply"})


class SendError(CommprocError):
    """A provider refused or failed to take a message.

    ``retryable`` marks failures worth another attempt (timeouts, 5xx, 429);
    ``recipient_opted_out`` marks a refusal because the recipient unsubscribed
    (Twilio's error 21610), which the dispatcher records as consent.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        retryable: bool = False,
        recipient_opted_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retryable = retryable
        self.recipient_opted_out = recipient_opted_out


def queue_outbound(
    uow: UnitOfWork,
    outbound: OutboundMessage,
    *,
    conversations: ConversationService | None = None,
    in_reply_to: Message | None = None,
) -> OutboundMessage:
    """Add ``outbound`` to the outbox, and to its conversation as a pending outbound message.

    The conversation copy shares the outbox row's id, so the dispatcher and
    status callbacks update both, and an agent sees its own earlier replies
    in the conversation history. ``in_reply_to`` (the inbound message
    answered) gives the copy its provider and thread, and keeps the reply
    after it in time even when both were stamped within one clock tick.
    """
    if in_reply_to is not None and outbound.created_at <= in_reply_to.created_at:
        later = in_reply_to.created_at + timedelta(microseconds=1)
        outbound = attrs.evolve(outbound, created_at=later, updated_at=max(later, outbound.updated_at))
    stored = uow.outbox.add(outbound)
    if conversations is not None and outbound.conversation_id and in_reply_to is not None:
        conversations.add_message(
            Message(
                id=outbound.id,
                conversation_id=outbound.conversation_id,
                thread_id=in_reply_to.thread_id,
                direction="outbound",
                channel=outbound.channel,
                provider=in_reply_to.provider,
                sender=outbound.sender or outbound.messaging_service_sid,
                recipient=outbound.to,
                body=outbound.body,
                status=outbound.status,
                created_at=outbound.created_at,
                updated_at=outbound.updated_at,
                metadata={"reason": outbound.reason or ""},
            )
        )
    return stored


@attrs.frozen(kw_only=True)
class DispatchCounts:
    """What one :meth:`OutboxDispatcher.dispatch` did."""

    sent: int = 0
    failed: int = 0
    #: Left pending after a retryable failure.
    retried: int = 0
    #: Not sent because the recipient opted out after the reply was queued.
    suppressed: int = 0
    #: Claimed by another dispatcher first.
    skipped: int = 0


def _scope(message: OutboundMessage) -> str:
    return message.messaging_service_sid or message.sender or "all"


class OutboxDispatcher:
    """Sends pending outbox rows through ``sender`` and records what the provider said."""

    def __init__(
        self, store: Store, sender: Sender, *, clock: Clock | None = None, max_attempts: int = 5
    ) -> None:
        self.store = store
        self.sender = sender
        self.clock: Clock = clock or SystemClock()
        self.max_attempts = max_attempts

    def dispatch(self, limit: int = 100) -> DispatchCounts:
        """Send up to ``limit`` pending messages, oldest first."""
        with self.store.unit_of_work() as uow:
            ids = [m.id for m in uow.outbox.find(status="pending", order_by="created_at", limit=limit)]
        counts: dict[str, int] = {}
        for message_id in ids:
            outcome = self._dispatch_one(message_id)
            counts[outcome] = counts.get(outcome, 0) + 1
        result = DispatchCounts(**counts)
        if ids:
            log.info(
                "outbox: sent=%d failed=%d retried=%d suppressed=%d skipped=%d",
                result.sent,
                result.failed,
                result.retried,
                result.suppressed,
                result.skipped,
            )
        return result

    def stuck(self, older_than_seconds: float = 300) -> list[OutboundMessage]:
        """Rows left ``sending`` longer than ``older_than_seconds``: the send may or may not have happened."""
        cutoff = self.clock.now() - timedelta(seconds=older_than_seconds)
        with self.store.unit_of_work() as uow:
            return [m for m in uow.outbox.find(status="sending") if m.updated_at < cutoff]

    def _dispatch_one(self, message_id: str) -> str:
        claimed = self._claim(message_id)
        if isinstance(claimed, str):
            return claimed
        try:
            result = self.sender.send(claimed)
        except SendError as exc:
            return self._failed(claimed, exc)
        except Exception as exc:
            # An unexpected sender bug: the provider may or may not have the
            # message, so it is marked failed rather than retried.
            log.error("outbox: sender raised %s for outbox row %s", type(exc).__name__, claimed.id)
            return self._failed(
                claimed, SendError(f"sender raised {type(exc).__name__}", code="sender_error")
            )
        with self.store.unit_of_work() as uow:
            now = self.clock.now()
            current = uow.outbox.get(claimed.id) or claimed
            status = result.status if current.status == "sending" else current.status
            updated = attrs.evolve(
                current,
                status=status or "sent",
                provider_message_id=result.provider_message_id,
                updated_at=now,
            )
            uow.outbox.update(updated)
            self._mirror(uow, updated)
            uow.commit()
        return "sent"

    def _claim(self, message_id: str) -> OutboundMessage | str:
        with self.store.unit_of_work() as uow:
            message = uow.outbox.get(message_id)
            if message is None or message.status != "pending":
                return "skipped"
            now = self.clock.now()
            if message.reason not in CONSENT_EXEMPT_REASONS and ConsentService(uow, self.clock).is_opted_out(
                message.to, message.channel, [_scope(message)]
            ):
                suppressed = attrs.evolve(message, status="suppressed", updated_at=now)
                uow.outbox.update(suppressed)
                self._mirror(uow, suppressed)
                uow.commit()
                return "suppressed"
            claimed = attrs.evolve(message, status="sending", attempts=message.attempts + 1, updated_at=now)
            # Two dispatchers can both read the row as pending; the unique
            # dedupe key of this attempt's send event lets exactly one go on.
            _, won = uow.events.get_or_create(
                CommunicationEvent(
                    channel=message.channel,
                    provider="outbox",
                    event_type="outbound_send",
                    dedupe_key=f"outbox:send:{message.id}:{claimed.attempts}",
                    recipient=message.to,
                    lead_id=message.lead_id,
                    campaign_id=message.campaign_id,
                    conversation_id=message.conversation_id,
                    recorded_at=now,
                    data={"outbox_id": message.id, "attempt": claimed.attempts, "reason": message.reason},
                ),
                key="dedupe_key",
            )
            if not won:
                return "skipped"
            uow.outbox.update(claimed)
            uow.commit()
            return claimed

    def _failed(self, message: OutboundMessage, error: SendError) -> str:
        retry = error.retryable and message.attempts < self.max_attempts
        log.warning(
            "outbox: send of outbox row %s failed (code=%s, status=%s, %s)",
            message.id,
            error.code,
            error.status,
            "will retry" if retry else "final",
        )
        with self.store.unit_of_work() as uow:
            now = self.clock.now()
            updated = attrs.evolve(
                message,
                status="pending" if retry else "failed",
                error_code=error.code,
                error_message=str(error)[:500],
                updated_at=now,
            )
            uow.outbox.update(updated)
            if not retry:
                self._mirror(uow, updated)
            if error.recipient_opted_out:
                ConsentService(uow, self.clock).set(
                    message.to,
                    message.channel,
                    _scope(message),
                    "opted_out",
                    "provider",
                    reason=f"send refused: {error.code}",
                    lead_id=message.lead_id,
                )
            uow.commit()
        return "retried" if retry else "failed"

    @staticmethod
    def _mirror(uow: UnitOfWork, outbound: OutboundMessage) -> None:
        """Copy the outbox row's state onto its conversation message (same id), if there is one."""
        message = uow.messages.get(outbound.id)
        if message is None:
            return
        uow.messages.update(
            attrs.evolve(
                message,
                status=outbound.status,
                provider_message_id=outbound.provider_message_id,
                error_code=message.error_code or outbound.error_code,
                error_message=message.error_message or outbound.error_message,
                updated_at=outbound.updated_at,
            )
        )
