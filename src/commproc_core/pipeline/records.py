"""The pipeline's own records: a processing record per provider event, a communication event per failure.

Every outcome leaves a trace in the batch's unit of work: processed and
duplicate events their processing record, failures a failed communication
event (codes and field paths, never payload values) and a failed processing
record, control messages an ignored event, and messages left for a retry a
``received`` record with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import attrs

from commproc_core.errors import PermanentError
from commproc_core.model import CommunicationEvent, ProcessingRecord, QueueMessage
from commproc_core.pipeline.envelope import CONTROL_TYPES
from commproc_core.ports import Clock, UnitOfWork
from commproc_core.redact import redact_error

__all__ = ["DETAIL_LIMIT", "Recorder", "ReplayGuard", "Tally", "error_detail"]

#: Longest error detail kept in a record, a log line or an outcome.
DETAIL_LIMIT = 1000


def error_detail(error: BaseException) -> str:
    """A bounded, redacted description of ``error``: safe to store and log."""
    return redact_error(error, DETAIL_LIMIT)


@attrs.frozen
class ReplayGuard:
    """A one-time token a provider event was signed with, so a second use is refused.

    A channel sets ``replay_guard`` on an event whose signature covers a token
    meant to be used once (Mailgun's): the pipeline stores the token (as a
    :class:`~commproc_core.model.SeenToken`, unique per scope) with the event,
    and rejects another event carrying it as ``replayed_signature``. A
    redelivery of the same event is still a duplicate, found by its dedupe
    key first. ``expires_at`` is when the signature stops being accepted
    anyway; the token is forgotten after it.
    """

    scope: str
    #: The token's SHA-256, hex.
    token: str
    expires_at: datetime


@attrs.define
class Tally:
    """What the events of one queue message came to."""

    events: list[CommunicationEvent] = attrs.field(factory=list)
    duplicates: list[bool] = attrs.field(factory=list)
    processed: int = 0
    failed: int = 0
    duplicate: int = 0
    ignored: int = 0
    first_error: str | None = None
    first_detail: str | None = None


class Recorder:
    """Writes the pipeline's records for one channel into a unit of work."""

    def __init__(
        self,
        channel: str,
        default_provider: str,
        clock: Clock,
        describe: Callable[[Any, PermanentError], Mapping[str, Any]],
        log: logging.Logger,
    ) -> None:
        self.channel = channel
        self.default_provider = default_provider
        self.clock = clock
        self.describe = describe
        self.log = log

    def failure_key(self, message: QueueMessage, index: int) -> str:
        return f"failed:{self.channel}:{message.message_id}:{index}"

    def ignored_key(self, message: QueueMessage) -> str:
        return f"ignored:{self.channel}:{message.message_id}"

    def record(
        self,
        uow: UnitOfWork,
        message: QueueMessage,
        index: int,
        status: str,
        *,
        dedupe_key: str | None = None,
        error_code: str | None = None,
        error_detail: str | None = None,
        duration_ms: float | None = None,
    ) -> ProcessingRecord:
        """The processing record of item ``index``; a redelivery updates the first one."""
        now = self.clock.now()
        done = None if status == "received" else now
        candidate = ProcessingRecord(
            channel=self.channel,
            queue_message_id=message.message_id,
            item_index=index,
            status=status,
            attempts=max(message.receive_count, 1),
            dedupe_key=dedupe_key,
            error_code=error_code,
            error_detail=error_detail,
            received_at=now,
            processed_at=done,
            duration_ms=duration_ms,
        )
        record, created = uow.processing_records.get_or_create(candidate, key="queue_item")
        if created:
            return record
        # A redelivery: keep the first final outcome, count the attempt.
        kept = record.status if record.status in ("processed", "failed") and status == "duplicate" else status
        return uow.processing_records.update(
            attrs.evolve(
                record,
                status=kept,
                attempts=max(record.attempts + 1, message.receive_count),
                dedupe_key=dedupe_key or record.dedupe_key,
                error_code=error_code or record.error_code,
                error_detail=error_detail or record.error_detail,
                processed_at=done or record.processed_at,
                duration_ms=duration_ms if duration_ms is not None else record.duration_ms,
            )
        )

    def failure(
        self,
        uow: UnitOfWork,
        message: QueueMessage,
        index: int,
        error: PermanentError,
        payload: Any,
        tally: Tally,
    ) -> None:
        """Record item ``index`` as rejected: a failed communication event and processing record."""
        detail = error_detail(error)
        self.log.warning(
            "%s: rejected queue message %s item %d: %s: %s",
            self.channel,
            message.message_id,
            index,
            error.code,
            detail,
        )
        described: Mapping[str, Any] = {}
        if payload is not None:
            try:
                described = self.describe(payload, error)
            except Exception:  # describing is best effort; the failure is recorded anyway
                described = {}
        key = self.failure_key(message, index)
        event = uow.events.find_one(dedupe_key=key)
        if event is None:
            event = uow.events.add(
                CommunicationEvent(
                    channel=self.channel,
                    provider=str(described.get("provider") or self.default_provider),
                    event_type=str(described.get("event_type") or "invalid"),
                    status="failed",
                    dedupe_key=key,
                    provider_message_id=_short(described.get("provider_message_id")),
                    provider_event_id=_short(described.get("provider_event_id")),
                    queue_message_id=message.message_id,
                    error_code=error.code,
                    error_detail=detail,
                    recorded_at=self.clock.now(),
                    data={"field": error.field} if error.field else {},
                )
            )
        self.record(uow, message, index, "failed", dedupe_key=key, error_code=error.code, error_detail=detail)
        tally.events.append(event)
        tally.duplicates.append(False)
        tally.failed += 1
        if tally.first_error is None:
            tally.first_error, tally.first_detail = error.code, detail

    def ignored(self, uow: UnitOfWork, message: QueueMessage, control: str, tally: Tally) -> None:
        """Record a control message (an SNS subscription message, an empty list) as ignored."""
        self.log.info("%s: acknowledged control message %s (%s)", self.channel, message.message_id, control)
        key = self.ignored_key(message)
        if uow.events.find_one(dedupe_key=key) is None:
            uow.events.add(
                CommunicationEvent(
                    channel=self.channel,
                    provider="sns" if control in CONTROL_TYPES else self.default_provider,
                    event_type=control,
                    status="ignored",
                    dedupe_key=key,
                    queue_message_id=message.message_id,
                    recorded_at=self.clock.now(),
                )
            )
        self.record(uow, message, 0, "ignored", error_code=control)
        tally.ignored += 1


def _short(value: Any) -> str | None:
    # Only short plain ids are kept from a failed payload.
    if isinstance(value, str) and value and len(value) <= 128:
        return value
    return None
