"""BaseChannelProcessor: the receive, validate, process, acknowledge loop.

A channel plugin subclasses :class:`BaseChannelProcessor` and implements
:meth:`~BaseChannelProcessor.validate_event` (payload in, provider events
out) and :meth:`~BaseChannelProcessor.process_event` (one event's effects,
made through ``self.uow`` and the services), and may implement
:meth:`~BaseChannelProcessor.prefetch` (what a batch of its events reads, so
it is read in sets). Everything else is shared: envelopes, idempotency, the
batch's one transaction (:mod:`commproc_core.pipeline.batch`), the failure
policy, visibility heartbeat and backoff, acknowledgement and stats.
docs/pipeline.md tells the whole story.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from commproc_core.errors import CommprocError, PermanentError
from commproc_core.model import Campaign, CommunicationEvent, Conversation, Lead, QueueMessage, Thread
from commproc_core.parsing import parse_settings
from commproc_core.pipeline import defaults, direct
from commproc_core.pipeline.batch import BatchRunner
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.heartbeat import Heartbeat
from commproc_core.pipeline.payload import EventPayload, ProviderEvent
from commproc_core.pipeline.records import ReplayGuard
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
from commproc_core.services import (
    CampaignMatchingService,
    ConsentService,
    ConversationService,
    LeadMatchingService,
    SystemClock,
)
from commproc_core.stores.session import BatchSession
from commproc_core.stores.spec import Range

__all__ = ["BaseChannelProcessor", "EventPayload", "ProviderEvent", "ReplayGuard"]

#: Seconds between deletions of expired one-time signature tokens.
_FORGET_TOKENS_SECONDS = 600.0


EventT = TypeVar("EventT", bound=ProviderEvent)


class BaseChannelProcessor(ABC, Generic[EventT]):
    """Consumes one channel's queue. Subclasses implement validate_event and process_event.

    ``queue_url`` and ``config`` keep the seed's meaning; ``config`` is
    parsed into ``settings_class`` (unknown keys and wrong types raise
    ConfigError naming each field). Collaborators default to: the store
    named by ``COMMPROC_DATABASE_URL`` (SQLite ``commproc.db`` when unset)
    with ``COMMPROC_SCHEMA`` and ``COMMPROC_TABLE_PREFIX``,
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
        # Parsed before anything else reads it: a config that is no mapping is a ConfigError.
        self.settings = parse_settings(self.settings_class, config)
        self.config: dict[str, Any] = dict(config or {})
        self.clock: Clock = clock or SystemClock()
        self.sender = sender
        self.agent_responder = agent_responder
        self._store = store
        self._queue = queue
        self._heartbeat: Heartbeat | None = None
        self._setup_lock = threading.Lock()
        self._local = threading.local()
        self.log = logging.getLogger(f"commproc.{self.channel_type or 'channel'}")
        self._campaign_cache: tuple[float, list[Campaign]] | None = None
        # When expired signature tokens were last deleted (time.monotonic()); None: not yet.
        self._tokens_forgotten: float | None = None
        self._runner = BatchRunner(self)

    # -- collaborators -------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            with self._setup_lock:
                if self._store is None:
                    # The host's configured default store (the seed's shared database), else our own.
                    self._store = defaults.default_store()
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

    def prefetch(self, events: Sequence[EventT], session: BatchSession) -> None:
        """Declare what processing ``events`` will read, with ``session.want(...)``.

        Called once per batch, inside its transaction, before any event is
        processed. Each ``want`` becomes one statement for the whole batch;
        ``session.fetch()`` runs what was asked so far, for a second stage
        that depends on the first (threads of the leads just loaded). What is
        not asked for is still read correctly, one statement per lookup. The
        default asks for nothing.
        """
        del events, session

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

    def _bind(self, uow: UnitOfWork | None) -> None:
        """Make ``uow`` this thread's unit of work for ``self.uow`` and the services (None: unbind)."""
        self._local.uow = uow
        self._local.services = {}

    def _service(self, kind: type[Any]) -> Any:
        services: dict[type[Any], Any] | None = getattr(self._local, "services", None)
        if services is None:
            self.uow  # raises the clear error  # noqa: B018
            services = self._local.services = {}
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
        runner = self._runner
        conflicts = runner.conflicts
        try:
            results = runner.run([runner.plan(m) for m in messages])
        finally:
            if token is not None and self._heartbeat is not None:
                self._heartbeat.unregister(token)
        outcomes = [outcome for outcome, _ in results]
        tallies = [tally for _, tally in results]
        self.after_commit(outcomes)
        self._forget_expired_tokens()
        deleted = delete_failed = 0
        if acknowledge:
            deleted, delete_failed = self._acknowledge(outcomes)
        stats = ProcessingStats(
            received=len(messages),
            processed=sum(t.processed for t in tallies),
            failed=sum(t.failed for t in tallies),
            duplicates=sum(t.duplicate for t in tallies),
            ignored=sum(t.ignored for t in tallies),
            deleted=deleted,
            delete_failed=delete_failed,
            retried=sum(1 for o in outcomes if o.outcome == "retry"),
            conflicts=runner.conflicts - conflicts,
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

    def after_commit(self, outcomes: Sequence[MessageOutcome]) -> None:
        """Called once the batch's transaction has committed, before acknowledging.

        Work that must not hold the transaction open (an AI agent's reply)
        runs here; it must record what it does in a transaction of its own.
        The default does nothing.
        """
        del outcomes

    def _forget_expired_tokens(self) -> None:
        """Now and then, delete one-time signature tokens whose signatures have expired anyway."""
        if not self._runner.guarded:
            return
        now = time.monotonic()
        if self._tokens_forgotten is not None and now - self._tokens_forgotten < _FORGET_TOKENS_SECONDS:
            return
        self._tokens_forgotten = now
        try:
            with self.store.unit_of_work() as uow:
                for row in uow.seen_tokens.find(expires_at=Range(high=self.now()), limit=1000):
                    uow.seen_tokens.delete(row.id)
                uow.commit()
        except CommprocError as exc:
            # Housekeeping: the next batch tries again; the tokens only take room meanwhile.
            self.log.warning("%s: could not forget expired signature tokens: %s", self.channel_type, exc)

    # -- direct calls, outside a batch (commproc_core.pipeline.direct) ----------------

    #: Wrap subclasses' validate_event and process_event for direct calls;
    #: SeedChannelProcessor wraps them its own way.
    _direct_calls: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls._direct_calls:
            return
        validate, process = cls.__dict__.get("validate_event"), cls.__dict__.get("process_event")
        if callable(validate) and not getattr(validate, direct.MARK, False):
            cls.validate_event = direct.wrap_validate(validate)  # type: ignore[method-assign]
        if callable(process) and not getattr(process, direct.MARK, False):
            cls.process_event = direct.wrap_process(process)  # type: ignore[method-assign]

    def process_payload(self, data: Any) -> MessageOutcome:
        """Process one provider payload now, as a queue message holding it would be; nothing is acknowledged.

        ``data`` is what a queue message body holds (a mapping, a list, or
        the body text). It is validated, deduplicated and recorded in a
        transaction of its own; the outcome says what it came to.
        """
        message = direct.queue_message(data, type(self).__name__)
        return self.process_batch([message], acknowledge=False).outcomes[0]

    # -- caches ---------------------------------------------------------------------

    def campaign_rows(self) -> list[Campaign]:
        """Every campaign, from a copy refreshed every ``campaign_cache_seconds`` (one query when stale)."""
        now = time.monotonic()
        cached = self._campaign_cache
        if cached is not None and now - cached[0] < self.settings.campaign_cache_seconds:
            return cached[1]
        with self.store.unit_of_work() as uow:
            rows = uow.campaigns.find()
        self._campaign_cache = (now, rows)
        return rows

    def invalidate_caches(self) -> None:
        """Forget cached campaigns: the next batch reads them again (call after changing campaigns)."""
        self._campaign_cache = None

    def _heartbeat_for(self) -> Heartbeat:
        if self._heartbeat is None:
            with self._setup_lock:
                if self._heartbeat is None:
                    self._heartbeat = Heartbeat(
                        self.queue, self.settings.visibility_timeout, self.settings.heartbeat_fraction
                    )
        return self._heartbeat

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
