"""Running a batch: validate everything, read in sets, decide in memory, write once, commit once.

1. Every queue message is unwrapped, authenticated and validated first
   (:meth:`BatchRunner.plan`); nothing is written.
2. One transaction for the batch: a :class:`~commproc_core.stores.session.BatchSession`
   loads what the batch needs (existing dedupe keys and processing records,
   then whatever the channel's ``prefetch`` asks for), one statement per kind.
3. Each message is applied in memory, in order, inside an in-memory
   savepoint: a permanent failure undoes its event's changes and records the
   failure; a transient one (or a bug in channel code) undoes the whole
   message and leaves it, alone, for a retry.
4. The session writes every change per table in a fixed order and the
   transaction commits once.
5. Only when that fails does the batch fall back to isolating messages:
   a write conflict (a key another worker took first, a deadlock) runs the
   transaction again, with jitter, a few times; anything else splits the
   batch in halves, recursively, so the message the store refuses is found
   and only it is left for a retry. The store down leaves every message for
   a retry.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import attrs

from commproc_core.errors import (
    InvalidPayload,
    PermanentError,
    SignatureError,
    StoreUnavailable,
    TransientError,
    UniqueViolation,
    WriteConflict,
)
from commproc_core.model import CommunicationEvent, QueueMessage, SeenToken
from commproc_core.pipeline.envelope import Envelope, unwrap
from commproc_core.pipeline.payload import EventPayload
from commproc_core.pipeline.records import Recorder, ReplayGuard, Tally, error_detail
from commproc_core.pipeline.stats import MessageOutcome
from commproc_core.stores.direct import session_for
from commproc_core.stores.session import BatchSession

if TYPE_CHECKING:
    import logging as logging_types
    from collections.abc import Mapping

    from commproc_core.ports import Clock, Store, UnitOfWork

__all__ = ["BatchRunner", "Channel", "MessagePlan"]

#: Times a transaction that lost a race runs again before the batch is split.
CONFLICT_ATTEMPTS = 4


class _Retry(Exception):
    """Internal: undo the whole queue message and leave it on the queue."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.detail = detail


@attrs.frozen
class Entry:
    """One provider event of a message (or why its payload gave none), with its item index."""

    index: int
    payload: EventPayload
    event: Any = None
    error: PermanentError | None = None


@attrs.define
class MessagePlan:
    """A queue message after validation: its events, or why it has none."""

    message: QueueMessage
    envelope: Envelope | None = None
    control: str | None = None
    rejected: PermanentError | None = None
    retry: _Retry | None = None
    entries: list[Entry] = attrs.field(factory=list)

    @property
    def events(self) -> list[Any]:
        return [e.event for e in self.entries if e.event is not None]


class Channel(Protocol):
    """What a runner needs of its processor (a BaseChannelProcessor)."""

    channel_type: ClassVar[str]
    default_provider: ClassVar[str]
    clock: Clock
    log: logging_types.Logger

    @property
    def store(self) -> Store: ...

    def now(self) -> Any: ...

    def authenticate(self, envelope: Envelope) -> None: ...

    def validate_event(self, event_data: EventPayload) -> Sequence[Any]: ...

    def process_event(self, event_data: Any) -> CommunicationEvent: ...

    def prefetch(self, events: Sequence[Any], session: BatchSession) -> None: ...

    def describe_failure(self, payload: EventPayload | None, error: PermanentError) -> Mapping[str, Any]: ...

    def campaign_rows(self) -> list[Any]: ...

    def _bind(self, uow: UnitOfWork | None) -> None: ...


class BatchRunner:
    """Runs batches for one processor; see the module docstring."""

    def __init__(self, processor: Channel) -> None:
        self.processor = processor
        self.log = processor.log
        self.channel = processor.channel_type
        self.recorder = Recorder(
            processor.channel_type,
            processor.default_provider,
            processor.clock,
            processor.describe_failure,
            self.log,
        )
        #: Transactions run again after a write conflict, since this runner was made.
        self.conflicts = 0
        #: Whether any event so far carried a one-time signature token (see ReplayGuard).
        self.guarded = False

    # -- 1. validation --------------------------------------------------------------

    def plan(self, message: QueueMessage) -> MessagePlan:
        """Unwrap, authenticate and validate one message; writes nothing."""
        plan = MessagePlan(message)
        processor = self.processor
        try:
            try:
                unwrapped = unwrap(message)
            except PermanentError:
                raise
            except Exception as exc:
                # unwrap() must refuse any bytes with InvalidPayload; whatever slips
                # through is still this message's problem, not its neighbours'.
                raise InvalidPayload(
                    f"body could not be unwrapped ({type(exc).__name__})", field="body"
                ) from exc
            plan.envelope = unwrapped.envelope
            if unwrapped.control is not None:
                plan.control = unwrapped.control
                return plan
            self._guard(processor.authenticate, unwrapped.envelope)
        except PermanentError as error:
            plan.rejected = error
            return plan
        except _Retry as retry:
            plan.retry = retry
            return plan
        index = 0
        for position, data in enumerate(unwrapped.items):
            payload = EventPayload(data=data, envelope=unwrapped.envelope, index=position)
            try:
                events = _checked_events(self._guard(processor.validate_event, payload))
            except PermanentError as error:
                plan.entries.append(Entry(index, payload, error=error))
                index += 1
                continue
            except _Retry as retry:
                plan.retry, plan.entries = retry, []
                return plan
            if not events:
                plan.entries.append(Entry(index, payload))
                index += 1
            for event in events:
                plan.entries.append(Entry(index, payload, event=event))
                index += 1
        return plan

    def _guard(self, call: Any, argument: Any) -> Any:
        # Channel code runs here: a transient error (or a bug) undoes the whole
        # message and leaves it for a retry; a bug must not be recorded as a
        # permanent failure, and the DLQ keeps the message after maxReceiveCount.
        try:
            return call(argument)
        except (PermanentError, _Retry, StoreUnavailable, WriteConflict):
            raise
        except UniqueViolation as exc:
            raise _Retry("conflict", error_detail(exc)) from exc
        except TransientError as exc:
            detail = error_detail(exc)
            self.log.warning(
                "%s: transient failure (%s: %s); message left for retry", self.channel, exc.code, detail
            )
            raise _Retry(exc.code, detail) from exc
        except Exception as exc:
            detail = f"{type(exc).__name__}: {error_detail(exc)}"
            self.log.warning(
                "%s: processing failed with %s; message left for retry",
                self.channel,
                detail,
                exc_info=self.log.isEnabledFor(logging.DEBUG),
            )
            raise _Retry("internal_error", detail) from exc

    # -- 2-5. the transaction, and isolating what fails -------------------------------

    def run(self, plans: Sequence[MessagePlan]) -> list[tuple[MessageOutcome, Tally]]:
        """Apply ``plans`` and commit; the outcome of each message, in order."""
        if not plans:
            return []
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                return self._transaction(plans)
            except WriteConflict as exc:
                self.conflicts += 1
                self.log.info(
                    "%s: batch of %d met a write conflict (attempt %d): %s",
                    self.channel,
                    len(plans),
                    attempt,
                    error_detail(exc),
                )
                if attempt < CONFLICT_ATTEMPTS:
                    # Jitter, so two workers that collided do not collide again.
                    time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311
                failure: BaseException = exc
            except TransientError as exc:
                code, detail = exc.code, error_detail(exc)
                self.log.error(
                    "%s: batch of %d left for retry: %s: %s", self.channel, len(plans), code, detail
                )
                return [self._left(plan, code, detail) for plan in plans]
            except Exception as exc:
                failure = exc
                break
        if len(plans) > 1:
            middle = len(plans) // 2
            return self.run(plans[:middle]) + self.run(plans[middle:])
        return [self._refused(plans[0], failure)]

    def _refused(self, plan: MessagePlan, failure: BaseException) -> tuple[MessageOutcome, Tally]:
        code = failure.code if isinstance(failure, WriteConflict) else "store_rejected"
        detail = f"{type(failure).__name__}: {error_detail(failure)}"
        self.log.warning(
            "%s: queue message %s left for retry: the store refused its writes (%s)",
            self.channel,
            plan.message.message_id,
            detail,
            exc_info=self.log.isEnabledFor(logging.DEBUG),
        )
        return self._left(plan, code, detail)

    def _transaction(self, plans: Sequence[MessagePlan]) -> list[tuple[MessageOutcome, Tally]]:
        processor = self.processor
        with processor.store.unit_of_work() as uow:
            session = session_for(uow)
            processor._bind(session)
            try:
                self._prefetch(session, plans)
                results = [self._apply_message(session, plan) for plan in plans]
                session.flush()
                uow.commit()
            finally:
                processor._bind(None)
        return results

    def _prefetch(self, session: BatchSession, plans: Sequence[MessagePlan]) -> None:
        keys: list[str] = []
        for plan in plans:
            keys.append(self.recorder.failure_key(plan.message, 0))
            keys.append(self.recorder.ignored_key(plan.message))
            for entry in plan.entries:
                keys.append(self.recorder.failure_key(plan.message, entry.index))
                if entry.event is not None:
                    keys.append(entry.event.dedupe_key)
        session.want("events", "dedupe_key", keys)
        tokens = [g.token for p in plans for e in p.events if (g := getattr(e, "replay_guard", None))]
        if tokens:
            self.guarded = True
            session.want("seen_tokens", "token", tokens)
        session.want(
            "processing_records",
            "queue_message_id",
            [p.message.message_id for p in plans],
            channel=self.channel,
        )
        processor = self.processor
        session.hold_all("campaigns", processor.campaign_rows())
        processor.prefetch([e for plan in plans for e in plan.events], session)
        session.fetch()

    # -- one message, in memory ----------------------------------------------------------

    def _apply_message(self, session: BatchSession, plan: MessagePlan) -> tuple[MessageOutcome, Tally]:
        message = plan.message
        recorder = self.recorder
        tally = Tally()
        if plan.retry is not None:
            return self._left(plan, plan.retry.code, plan.retry.detail, session)
        if plan.control is not None:
            recorder.ignored(session, message, plan.control, tally)
            return _outcome(message, tally, "ignored"), tally
        if plan.rejected is not None:
            recorder.failure(session, message, 0, plan.rejected, None, tally)
            return _outcome(message, tally, "rejected"), tally
        try:
            with session.savepoint():
                for entry in plan.entries:
                    if entry.error is not None:
                        recorder.failure(session, message, entry.index, entry.error, entry.payload, tally)
                    elif entry.event is None:
                        recorder.record(session, message, entry.index, "ignored", error_code="no_event")
                        tally.ignored += 1
                    else:
                        self._apply_event(session, message, entry, tally)
        except _Retry as retry:
            return self._left(plan, retry.code, retry.detail, session)
        return _summary(message, tally), tally

    def _apply_event(self, session: BatchSession, message: QueueMessage, entry: Entry, tally: Tally) -> None:
        started = time.perf_counter()
        event = entry.event
        key: str = event.dedupe_key
        existing = session.events.find_one(dedupe_key=key)
        if existing is not None:
            self.log.debug("%s: duplicate event %s", self.channel, key)
            self.recorder.record(session, message, entry.index, "duplicate", dedupe_key=key)
            tally.events.append(existing)
            tally.duplicates.append(True)
            tally.duplicate += 1
            return
        guard: ReplayGuard | None = getattr(event, "replay_guard", None)
        if guard is not None and session.seen_tokens.find_one(scope=guard.scope, token=guard.token):
            error = SignatureError(
                "the signature's one-time token was used before",
                field="$.signature",
                code="replayed_signature",
            )
            self.recorder.failure(session, message, entry.index, error, entry.payload, tally)
            return
        try:
            with session.savepoint():
                if guard is not None:
                    session.seen_tokens.add(
                        SeenToken(
                            scope=guard.scope,
                            token=guard.token,
                            expires_at=guard.expires_at,
                            created_at=self.processor.now(),
                        )
                    )
                recorded = self._guard(self.processor.process_event, event)
                if not isinstance(recorded, CommunicationEvent):
                    raise PermanentError(
                        f"process_event returned {type(recorded).__name__}; "
                        "it must return the event's CommunicationEvent",
                        code="contract_violation",
                    )
                recorded = attrs.evolve(recorded, dedupe_key=key, queue_message_id=message.message_id)
                session.events.add(recorded)
        except UniqueViolation as exc:
            raise _Retry("conflict", error_detail(exc)) from exc
        except PermanentError as error:
            self.recorder.failure(session, message, entry.index, error, entry.payload, tally)
            return
        duration = (time.perf_counter() - started) * 1000
        tally.events.append(recorded)
        tally.duplicates.append(False)
        if recorded.status == "failed":
            # The channel recorded the event itself as rejected (an event type it does
            # not know, kept whole): a rejection, with the channel's reason.
            code = recorded.error_code or "rejected"
            self.recorder.record(
                session,
                message,
                entry.index,
                "failed",
                dedupe_key=key,
                error_code=code,
                error_detail=recorded.error_detail,
            )
            tally.failed += 1
            if tally.first_error is None:
                tally.first_error, tally.first_detail = code, recorded.error_detail
            return
        self.recorder.record(session, message, entry.index, "processed", dedupe_key=key, duration_ms=duration)
        tally.processed += 1

    def _left(
        self, plan: MessagePlan, code: str, detail: str | None, session: BatchSession | None = None
    ) -> tuple[MessageOutcome, Tally]:
        """A retry outcome; inside a transaction, the message's processing record says why."""
        message = plan.message
        if session is not None:
            self.recorder.record(session, message, 0, "received", error_code=code, error_detail=detail)
        outcome = MessageOutcome(
            message_id=message.message_id,
            receipt_handle=message.receipt_handle,
            outcome="retry",
            reason=code,
            detail=detail,
            receive_count=message.receive_count,
        )
        return outcome, Tally()


def _checked_events(result: Any) -> list[Any]:
    """``validate_event``'s result as a list, or a contract violation naming what is wrong."""
    if isinstance(result, (str, bytes, bool)) or not isinstance(result, (list, tuple)):
        raise PermanentError(
            f"validate_event returned {type(result).__name__}; it must return a list of events",
            code="contract_violation",
        )
    for event in result:
        for name in ("dedupe_key", "event_type", "provider", "channel"):
            value = getattr(event, name, None)
            if not isinstance(value, str) or not value:
                raise PermanentError(
                    f"validate_event returned an event without a string {name}",
                    code="contract_violation",
                )
    return list(result)


def _outcome(message: QueueMessage, tally: Tally, outcome: str) -> MessageOutcome:
    rejected = outcome == "rejected"
    return MessageOutcome(
        message_id=message.message_id,
        receipt_handle=message.receipt_handle,
        outcome=outcome,
        reason=tally.first_error if rejected else None,
        detail=tally.first_detail if rejected else None,
        events=tuple(tally.events),
        duplicates=tuple(tally.duplicates),
        receive_count=message.receive_count,
    )


def _summary(message: QueueMessage, tally: Tally) -> MessageOutcome:
    if tally.processed:
        return _outcome(message, tally, "processed")
    if tally.duplicate and not tally.failed:
        return _outcome(message, tally, "duplicate")
    if tally.failed:
        return _outcome(message, tally, "rejected")
    return _outcome(message, tally, "ignored")
