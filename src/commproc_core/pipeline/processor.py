"""BaseChannelProcessor: the receive, validate, process, acknowledge loop.

A channel plugin subclasses :class:`BaseChannelProcessor` and implements
:meth:`~BaseChannelProcessor.validate_event` (payload in, provider events
out) and :meth:`~BaseChannelProcessor.process_event` (one event's effects,
written through ``self.uow``). Everything else is shared: envelopes,
idempotency, transactions, the failure policy, visibility heartbeat and
backoff, acknowledgement and stats. docs/pipeline.md tells the whole story.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import attrs

from commproc_core.errors import (
    CommprocError,
    PermanentError,
    StoreUnavailable,
    TransientError,
    UniqueViolation,
)
from commproc_core.model import (
    Campaign,
    CommunicationEvent,
    Conversation,
    Lead,
    ProcessingRecord,
    QueueMessage,
    Thread,
)
from commproc_core.parsing import parse_settings
from commproc_core.pipeline.envelope import CONTROL_TYPES, Envelope, unwrap
from commproc_core.pipeline.heartbeat import Heartbeat
from commproc_core.pipeline.settings import ChannelSettings
from commproc_core.pipeline.stats import BatchReport, MessageOutcome, ProcessingStats
from commproc_core.ports import (
    AgentResponder,
    Clock,
    MessageQueue,
    Sender,
    Store,
    UnitOfWork,
    VisibilityChange,
)
from commproc_core.redact import redact_error
from commproc_core.services import (
    CampaignMatchingService,
    ConsentService,
    ConversationService,
    LeadMatchingService,
    SystemClock,
)

__all__ = ["BaseChannelProcessor", "EventPayload", "ProviderEvent"]


class ProviderEvent(Protocol):
    """What the base needs to know of a channel's parsed event."""

    @property
    def dedupe_key(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def channel(self) -> str: ...


EventT = TypeVar("EventT", bound=ProviderEvent)


@attrs.frozen(kw_only=True)
class EventPayload:
    """One provider event as unwrapped from a queue message, before validation."""

    #: A dict parsed from JSON, or the form fields as a dict of strings.
    data: Any
    envelope: Envelope
    #: Position in a list body; 0 for a body holding one event.
    index: int = 0


class _Retry(Exception):
    """Internal: undo the whole queue message and leave it on the queue."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@attrs.define
class _Item:
    events: list[CommunicationEvent] = attrs.field(factory=list)
    duplicates: list[bool] = attrs.field(factory=list)
    processed: int = 0
    failed: int = 0
    duplicate: int = 0
    ignored: int = 0
    first_error: str | None = None


class BaseChannelProcessor(ABC, Generic[EventT]):
    """Consumes one channel's queue. Subclasses implement validate_event and process_event.

    ``queue_url`` and ``config`` keep the seed's meaning; ``config`` is
    parsed into ``settings_class`` (unknown keys and wrong types raise
    ConfigError naming each field). Collaborators default to: the store
    named by ``COMMPROC_DATABASE_URL`` (SQLite ``commproc.db`` when unset),
    an SQS queue for ``queue_url``, the system clock.
    """

    channel_type: ClassVar[str] = ""
    settings_class: ClassVar[type[ChannelSettings]] = ChannelSettings
    #: Provider named on failure records when the payload says nothing better.
    default_provider: ClassVar[str] = "unknown"

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
    ) -> None:
        self.queue_url = queue_url if queue_url is not None else (queue.url if queue is not None else None)
        self.config: dict[str, Any] = dict(config or {})
        self.settings = parse_settings(self.settings_class, self.config)
        self.clock: Clock = clock or SystemClock()
        self.sender = sender
        self.agent_responder = agent_responder
        self._store = store
        self._queue = queue
        self._heartbeat: Heartbeat | None = None
        self._setup_lock = threading.Lock()
        self._local = threading.local()
        self.log = logging.getLogger(f"commproc.{self.channel_type or 'channel'}")

    # -- collaborators -------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._setup_lock:
                if self._store is None:
                    from commproc_core.stores.sql import open_store

                    self._store = open_store(None)
        return self._store

    @property
    def queue(self) -> MessageQueue:
        if self._queue is None:
            with self._setup_lock:
                if self._queue is None:
                    if not self.queue_url:
                        raise CommprocError(f"{type(self).__name__} has neither a queue nor a queue_url")
                    from commproc_core.queues.sqs import SQSQueue

                    self._queue = SQSQueue(self.queue_url)
        return self._queue

    def now(self) -> Any:
        return self.clock.now()

    # -- the seed's queue API --------------------------------------------------

    def receive_messages(self, max_messages: int = 10, wait_time: int = 20) -> list[QueueMessage]:
        """Receive up to ``max_messages`` (at most 10), long polling up to ``wait_time`` seconds."""
        return self.queue.receive(
            max_messages=max(1, min(max_messages, 10)),
            wait_time_seconds=max(0, min(wait_time, 20)),
            visibility_timeout=self.settings.visibility_timeout,
        )

    def delete_message(self, receipt_handle: str) -> bool:
        """Acknowledge one message; False (and a warning) when the queue refused."""
        result = self.queue.delete_batch([receipt_handle])
        if result.failed:
            self.log.warning("%s: delete failed: %s", self.channel_type, result.failed[0][1])
        return not result.failed

    def process_messages(self, max_messages: int = 10, wait_time: int | None = None) -> ProcessingStats:
        """Receive one batch, process it, acknowledge it; return its stats."""
        started = time.perf_counter()
        wait = self.settings.wait_time if wait_time is None else wait_time
        messages = self.receive_messages(max_messages=max_messages, wait_time=wait)
        report = self.process_batch(messages)
        return attrs.evolve(report.stats, elapsed=time.perf_counter() - started)

    def close(self) -> None:
        """Stop the heartbeat thread, if one was started."""
        if self._heartbeat is not None:
            self._heartbeat.stop()

    # -- the channel's part ------------------------------------------------------

    def authenticate(self, envelope: Envelope) -> None:
        """Check the envelope's signature; raise SignatureError to reject the whole message.

        Called once per queue message, before its items are validated. The
        default accepts everything.
        """
        del envelope

    @abstractmethod
    def validate_event(self, event_data: EventPayload) -> Sequence[EventT]:
        """Parse one payload into provider events; raise a PermanentError naming the field."""

    @abstractmethod
    def process_event(self, event_data: EventT) -> CommunicationEvent:
        """Apply one event through ``self.uow`` and return its (unsaved) communication event."""

    def describe_failure(self, payload: EventPayload | None, error: PermanentError) -> Mapping[str, Any]:
        """Fields for the failed communication event (``provider``, ``event_type``, ids).

        Never return personal data here: it is stored with the failure.
        """
        del payload, error
        return {}

    # -- services bound to the current unit of work -----------------------------

    @property
    def uow(self) -> UnitOfWork:
        uow: UnitOfWork | None = getattr(self._local, "uow", None)
        if uow is None:
            raise RuntimeError("no unit of work: self.uow is only available while an event is processed")
        return uow

    def _service(self, kind: type[Any]) -> Any:
        services: dict[type[Any], Any] = self._local.services
        service = services.get(kind)
        if service is None:
            service = services[kind] = kind(self.uow, self.clock)
        return service

    @property
    def leads(self) -> LeadMatchingService:
        return self._service(LeadMatchingService)  # type: ignore[no-any-return]

    @property
    def campaigns(self) -> CampaignMatchingService:
        return self._service(CampaignMatchingService)  # type: ignore[no-any-return]

    @property
    def conversations(self) -> ConversationService:
        return self._service(ConversationService)  # type: ignore[no-any-return]

    @property
    def consents(self) -> ConsentService:
        return self._service(ConsentService)  # type: ignore[no-any-return]

    def get_or_create_conversation(self, external_id: str, **kwargs: Any) -> Conversation:
        """The seed's helper: the conversation for ``external_id`` on this channel."""
        kwargs.setdefault("channel", self.channel_type)
        conversation, _ = self.conversations.get_or_create_conversation(external_id, **kwargs)
        return conversation

    def get_or_create_thread(self, lead_id: str, channel: str, **kwargs: Any) -> Thread:
        """The seed's helper: the lead's open thread on ``channel``."""
        thread, _ = self.conversations.get_or_create_thread(lead_id, channel, **kwargs)
        return thread

    def _find_nurturing_campaign(self, event_data: Any, lead: Lead | None) -> Campaign | None:
        """The seed's helper: the active nurturing campaign for ``lead`` on this channel."""
        del event_data
        return self.campaigns.find_nurturing_campaign(lead, self.channel_type)

    # -- the batch ---------------------------------------------------------------

    def process_batch(self, messages: Sequence[QueueMessage], *, acknowledge: bool = True) -> BatchReport:
        """Process received messages in one transaction, then acknowledge them.

        With ``acknowledge=False`` (AWS Lambda, replay) nothing is deleted or
        made visible again; the caller acts on the outcomes.
        """
        started = time.perf_counter()
        if not messages:
            return BatchReport(outcomes=(), stats=ProcessingStats())
        token = None
        if acknowledge:
            token = self._heartbeat_for().register([m.receipt_handle for m in messages])
        try:
            outcomes, items = self._run_batch(messages)
        finally:
            if token is not None and self._heartbeat is not None:
                self._heartbeat.unregister(token)
        deleted = delete_failed = 0
        if acknowledge:
            deleted, delete_failed = self._acknowledge(outcomes)
        stats = ProcessingStats(
            received=len(messages),
            processed=sum(i.processed for i in items),
            failed=sum(i.failed for i in items),
            duplicates=sum(i.duplicate for i in items),
            ignored=sum(i.ignored for i in items),
            deleted=deleted,
            delete_failed=delete_failed,
            retried=sum(1 for o in outcomes if o.outcome == "retry"),
            elapsed=time.perf_counter() - started,
        )
        self.log.info(
            "%s batch: received=%d processed=%d failed=%d duplicates=%d ignored=%d deleted=%d retried=%d "
            "elapsed=%.3fs",
            self.channel_type,
            stats.received,
            stats.processed,
            stats.failed,
            stats.duplicates,
            stats.ignored,
            stats.deleted,
            stats.retried,
            stats.elapsed,
        )
        return BatchReport(outcomes=tuple(outcomes), stats=stats)

    def _heartbeat_for(self) -> Heartbeat:
        if self._heartbeat is None:
            with self._setup_lock:
                if self._heartbeat is None:
                    self._heartbeat = Heartbeat(
                        self.queue, self.settings.visibility_timeout, self.settings.heartbeat_fraction
                    )
        return self._heartbeat

    def _run_batch(self, messages: Sequence[QueueMessage]) -> tuple[list[MessageOutcome], list[_Item]]:
        results: list[tuple[MessageOutcome, _Item]]
        try:
            with self.store.unit_of_work() as uow:
                self._local.uow, self._local.services = uow, {}
                try:
                    results = [self._process_message(uow, m) for m in messages]
                    uow.commit()
                finally:
                    self._local.uow = None
        except Exception as exc:
            # Nothing of the batch is committed: every message goes back for a retry.
            code = exc.code if isinstance(exc, TransientError) else "internal_error"
            if isinstance(exc, TransientError):
                self.log.error("%s batch of %d left for retry: %s", self.channel_type, len(messages), code)
            else:
                self.log.error(
                    "%s batch of %d left for retry after %s",
                    self.channel_type,
                    len(messages),
                    type(exc).__name__,
                    exc_info=self.log.isEnabledFor(logging.DEBUG),
                )
            results = [(self._retry_outcome(m, code), _Item()) for m in messages]
        return [r[0] for r in results], [r[1] for r in results]

    def _retry_outcome(self, message: QueueMessage, code: str) -> MessageOutcome:
        return MessageOutcome(
            message_id=message.message_id,
            receipt_handle=message.receipt_handle,
            outcome="retry",
            reason=code,
            receive_count=message.receive_count,
        )

    def _process_message(self, uow: UnitOfWork, message: QueueMessage) -> tuple[MessageOutcome, _Item]:
        item = _Item()
        try:
            outcome = self._message_body(uow, message, item)
        except _Retry as retry:
            self._record(uow, message, 0, "received", error_code=retry.code)
            return self._retry_outcome(message, retry.code), _Item()
        return outcome, item

    def _message_body(self, uow: UnitOfWork, message: QueueMessage, item: _Item) -> MessageOutcome:
        try:
            unwrapped = unwrap(message)
            if unwrapped.control is not None:
                self._record_ignored(uow, message, unwrapped.control, item)
                return self._outcome(message, item, "ignored")
            self._guard(self.authenticate, unwrapped.envelope)
        except PermanentError as error:
            self._record_failure(uow, message, 0, error, None, item)
            return self._outcome(message, item, "rejected")
        # Validate everything first: it writes nothing, and tells how many
        # writes the message makes.
        plan: list[tuple[EventPayload, list[EventT] | PermanentError]] = []
        for position, data in enumerate(unwrapped.items):
            payload = EventPayload(data=data, envelope=unwrapped.envelope, index=position)
            try:
                plan.append((payload, list(self._guard(self.validate_event, payload))))
            except PermanentError as error:
                plan.append((payload, error))
        writes = sum(1 if isinstance(p, PermanentError) else max(1, len(p)) for _, p in plan)
        if writes > 1:
            # A retry must undo the whole message, not just the failing event.
            with uow.savepoint():
                self._apply_plan(uow, message, plan, item)
        else:
            self._apply_plan(uow, message, plan, item)
        return self._summary(message, item)

    def _apply_plan(
        self,
        uow: UnitOfWork,
        message: QueueMessage,
        plan: list[tuple[EventPayload, list[EventT] | PermanentError]],
        item: _Item,
    ) -> None:
        index = 0
        for payload, parsed in plan:
            if isinstance(parsed, PermanentError):
                self._record_failure(uow, message, index, parsed, payload, item)
                index += 1
                continue
            if not parsed:
                self._record(uow, message, index, "ignored", error_code="no_event")
                item.ignored += 1
                index += 1
            for event in parsed:
                self._apply(uow, message, index, event, payload, item)
                index += 1

    def _summary(self, message: QueueMessage, item: _Item) -> MessageOutcome:
        if item.processed:
            return self._outcome(message, item, "processed")
        if item.duplicate and not item.failed:
            return self._outcome(message, item, "duplicate")
        if item.failed:
            return self._outcome(message, item, "rejected")
        return self._outcome(message, item, "ignored")

    def _guard(self, call: Any, argument: Any) -> Any:
        # Channel code runs here: transient errors undo the whole message;
        # unexpected ones too (a bug must not be recorded as a permanent
        # failure, and the DLQ keeps the message after maxReceiveCount).
        try:
            return call(argument)
        except (PermanentError, UniqueViolation, _Retry, StoreUnavailable):
            raise
        except TransientError as exc:
            self.log.warning(
                "%s: transient failure (%s); message left for retry", self.channel_type, exc.code
            )
            raise _Retry(exc.code) from exc
        except Exception as exc:
            self.log.error(
                "%s: processing failed with %s; message left for retry",
                self.channel_type,
                type(exc).__name__,
                exc_info=self.log.isEnabledFor(logging.DEBUG),
            )
            raise _Retry("internal_error") from exc

    def _apply(
        self,
        uow: UnitOfWork,
        message: QueueMessage,
        index: int,
        event: EventT,
        payload: EventPayload,
        item: _Item,
    ) -> None:
        started = time.perf_counter()
        key = event.dedupe_key
        existing = uow.events.find_one(dedupe_key=key)
        if existing is None:
            try:
                with uow.savepoint():
                    recorded = self._guard(self.process_event, event)
                    recorded = attrs.evolve(recorded, dedupe_key=key, queue_message_id=message.message_id)
                    uow.events.add(recorded)
            except UniqueViolation as exc:
                if exc.table != "events":
                    raise _Retry("conflict") from exc
                # Another worker committed the same event first.
                existing = uow.events.find_one(dedupe_key=key)
                if existing is None:
                    raise _Retry("conflict") from exc
            except PermanentError as error:
                self._record_failure(uow, message, index, error, payload, item)
                return
            else:
                duration = (time.perf_counter() - started) * 1000
                self._record(uow, message, index, "processed", dedupe_key=key, duration_ms=duration)
                item.events.append(recorded)
                item.duplicates.append(False)
                item.processed += 1
                return
        self.log.debug("%s: duplicate event %s", self.channel_type, key)
        self._record(uow, message, index, "duplicate", dedupe_key=key)
        item.events.append(existing)
        item.duplicates.append(True)
        item.duplicate += 1

    def _outcome(self, message: QueueMessage, item: _Item, outcome: str) -> MessageOutcome:
        return MessageOutcome(
            message_id=message.message_id,
            receipt_handle=message.receipt_handle,
            outcome=outcome,
            reason=item.first_error if outcome == "rejected" else None,
            events=tuple(item.events),
            duplicates=tuple(item.duplicates),
            receive_count=message.receive_count,
        )

    # -- records -------------------------------------------------------------------

    def _record(
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
        now = self.clock.now()
        done = None if status == "received" else now
        candidate = ProcessingRecord(
            channel=self.channel_type,
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
        if message.receive_count <= 1:
            # A first delivery almost never has a record yet: one insert, no lookup.
            try:
                return uow.processing_records.add(candidate)
            except UniqueViolation:
                pass
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

    def _record_failure(
        self,
        uow: UnitOfWork,
        message: QueueMessage,
        index: int,
        error: PermanentError,
        payload: EventPayload | None,
        item: _Item,
    ) -> None:
        detail = redact_error(error, 1000)
        self.log.warning(
            "%s: rejected queue message %s item %d: %s: %s",
            self.channel_type,
            message.message_id,
            index,
            error.code,
            detail,
        )
        described: Mapping[str, Any] = {}
        if payload is not None:
            try:
                described = self.describe_failure(payload, error)
            except Exception:  # describing is best effort; the failure is recorded anyway
                described = {}
        key = f"failed:{self.channel_type}:{message.message_id}:{index}"
        event = uow.events.find_one(dedupe_key=key)
        if event is None:
            event = uow.events.add(
                CommunicationEvent(
                    channel=self.channel_type,
                    provider=str(described.get("provider") or self.default_provider),
                    event_type=str(described.get("event_type") or "invalid"),
                    status="failed",
                    dedupe_key=key,
                    provider_message_id=described.get("provider_message_id"),
                    provider_event_id=described.get("provider_event_id"),
                    queue_message_id=message.message_id,
                    error_code=error.code,
                    error_detail=detail,
                    recorded_at=self.clock.now(),
                    data={"field": error.field} if error.field else {},
                )
            )
        self._record(
            uow, message, index, "failed", dedupe_key=key, error_code=error.code, error_detail=detail
        )
        item.events.append(event)
        item.duplicates.append(False)
        item.failed += 1
        item.first_error = item.first_error or error.code

    def _record_ignored(self, uow: UnitOfWork, message: QueueMessage, control: str, item: _Item) -> None:
        self.log.info(
            "%s: acknowledged control message %s (%s)", self.channel_type, message.message_id, control
        )
        key = f"ignored:{self.channel_type}:{message.message_id}"
        if uow.events.find_one(dedupe_key=key) is None:
            uow.events.add(
                CommunicationEvent(
                    channel=self.channel_type,
                    provider="sns" if control in CONTROL_TYPES else self.default_provider,
                    event_type=control,
                    status="ignored",
                    dedupe_key=key,
                    queue_message_id=message.message_id,
                    recorded_at=self.clock.now(),
                )
            )
        self._record(uow, message, 0, "ignored", error_code=control)
        item.ignored += 1

    # -- acknowledgement -------------------------------------------------------------

    def backoff_seconds(self, receive_count: int) -> int:
        """Visibility timeout for a retry: doubles with every receive, capped."""
        exponent = min(max(receive_count - 1, 0), 20)
        return int(min(self.settings.max_backoff_seconds, self.settings.retry_base_seconds * 2**exponent))

    def _acknowledge(self, outcomes: Sequence[MessageOutcome]) -> tuple[int, int]:
        done = [o.receipt_handle for o in outcomes if o.acknowledged]
        deleted = failed = 0
        if done:
            try:
                result = self.queue.delete_batch(done)
            except CommprocError as exc:
                # The batch is committed; a redelivery will be recognised as duplicates.
                self.log.warning("%s: delete of %d messages failed: %s", self.channel_type, len(done), exc)
                failed = len(done)
            else:
                deleted, failed = len(result.succeeded), len(result.failed)
                for handle_or_id, code, _ in result.failed:
                    self.log.warning(
                        "%s: delete refused (%s) for entry %s", self.channel_type, code, handle_or_id[:16]
                    )
        retry = [
            VisibilityChange(o.receipt_handle, self.backoff_seconds(o.receive_count))
            for o in outcomes
            if not o.acknowledged
        ]
        if retry:
            try:
                self.queue.change_visibility_batch(retry)
            except CommprocError as exc:
                self.log.warning("%s: could not back off %d messages: %s", self.channel_type, len(retry), exc)
        return deleted, failed
