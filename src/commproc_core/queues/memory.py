"""An in-memory queue with SQS semantics, for tests, benchmarks and single-process use.

It keeps what the pipeline relies on: visibility timeouts, a new receipt
handle per receive, ``ApproximateReceiveCount``, redrive to a dead-letter
queue at receive time, long polling, per-entry batch failures and, with
``fifo=True``, message groups and the five-minute deduplication window.

Where it is stricter than SQS, on purpose: a receipt handle stops working
once its message has been received again or deleted (SQS may quietly accept
it), and changing the visibility of a message that is no longer in flight
fails with ``AWS.SimpleQueueService.MessageNotInflight``. Messages never
expire (no retention period).

Every operation is O(1) or O(log n): visible messages wait in a deque (per
group for FIFO), invisible ones in a heap keyed by the time they reappear,
and stale heap or deque entries are skipped when they surface.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import attrs

from commproc_core.errors import QueueError
from commproc_core.model import QueueMessage
from commproc_core.ports import BatchResult, VisibilityChange
from commproc_core.queues.sqs import MAX_BATCH, MAX_VISIBILITY_TIMEOUT, MAX_WAIT_SECONDS

__all__ = ["INVALID_HANDLE", "NOT_IN_FLIGHT", "MemoryQueue"]

#: Error code of a batch entry whose receipt handle is unknown, stale or deleted.
INVALID_HANDLE = "ReceiptHandleIsInvalid"
#: Error code of a visibility change for a message that is not in flight.
NOT_IN_FLIGHT = "AWS.SimpleQueueService.MessageNotInflight"

_DEDUP_WINDOW = 300.0
_MAX_DELAY = 900


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, int(value)))


def _batch_calls(entries: int) -> int:
    return -(-entries // MAX_BATCH)


@attrs.define(kw_only=True, eq=False)
class _Message:
    message_id: str
    body: str
    message_attributes: Mapping[str, Any]
    group_id: str | None
    dedup_id: str | None
    sequence: int
    visible_at: float
    sent_ms: int
    sent_at: datetime
    receive_count: int = 0
    first_receive_ms: int = 0
    handle: str | None = None
    gen: int = 0
    in_flight: bool = False
    deleted: bool = False


@attrs.define(eq=False)
class _Group:
    """One FIFO message group: its messages in order and how many are in flight."""

    group_id: str
    messages: deque[_Message] = attrs.Factory(deque)
    in_flight: int = 0
    queued: bool = False


class MemoryQueue:
    """A thread-safe in-memory queue with SQS semantics; see the module docstring.

    ``clock`` returns monotonic seconds and drives visibility timeouts, delays
    and the FIFO deduplication window, so tests can advance time without
    sleeping; long polls still wait in real time.
    """

    def __init__(
        self,
        url: str = "memory://queue",
        *,
        visibility_timeout: int = 30,
        max_receive_count: int | None = None,
        dead_letter_queue: MemoryQueue | None = None,
        fifo: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if (max_receive_count is None) != (dead_letter_queue is None):
            raise ValueError("a redrive policy needs both max_receive_count and dead_letter_queue")
        if max_receive_count is not None and not 1 <= max_receive_count <= 1000:
            raise ValueError(f"max_receive_count must be 1-1000, not {max_receive_count}")
        if dead_letter_queue is not None and dead_letter_queue.fifo != fifo:
            raise ValueError("the dead-letter queue must be of the same type (FIFO or standard)")
        self._url = url
        self._visibility_timeout = _clamp(visibility_timeout, 0, MAX_VISIBILITY_TIMEOUT)
        self._max_receive_count = max_receive_count
        self._dlq = dead_letter_queue
        self._fifo = fifo
        self._clock = clock or time.monotonic
        self._cond = threading.Condition(threading.Lock())
        self._all: dict[str, _Message] = {}
        self._handles: dict[str, _Message] = {}
        self._visible: deque[_Message] = deque()
        self._groups: dict[str, _Group] = {}
        self._ready: deque[_Group] = deque()
        self._timers: list[tuple[float, int, int, _Message]] = []
        self._in_flight = 0
        self._dedup: dict[str, str] = {}
        self._dedup_expiry: deque[tuple[float, str]] = deque()
        self._ticket = itertools.count()
        # Ids look like UUIDs: a random prefix per queue and a counter, far cheaper than uuid4().
        self._id_prefix = str(uuid.uuid4())[:24]
        self._id_counter = itertools.count()
        self._handle_prefix = uuid.uuid4().hex[:12]
        self._waiting = 0
        self._last_sent: tuple[int, datetime] = (0, datetime.fromtimestamp(0, tz=timezone.utc))
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"MemoryQueue({self._url!r}, fifo={self._fifo})"

    @property
    def url(self) -> str:
        return self._url

    @property
    def fifo(self) -> bool:
        return self._fifo

    @property
    def dead_letter_queue(self) -> MemoryQueue | None:
        return self._dlq

    # -- sending ----------------------------------------------------------------------

    def send(
        self,
        body: str,
        *,
        message_attributes: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        deduplication_id: str | None = None,
        delay_seconds: int = 0,
    ) -> str:
        """Enqueue one message and return its id (the original's id for a FIFO duplicate)."""
        with self._cond:
            self.calls["SendMessage"] += 1
            return self._enqueue(body, message_attributes, group_id, deduplication_id, delay_seconds)

    def send_batch(self, bodies: Iterable[str], *, group_id: str | None = None) -> list[str]:
        """Enqueue many bodies (counted as one SendMessageBatch call per 10); returns their ids."""
        with self._cond:
            ids = [self._enqueue(body, None, group_id, None, 0) for body in bodies]
            self.calls["SendMessageBatch"] += _batch_calls(len(ids))
            return ids

    def _enqueue(
        self,
        body: str,
        message_attributes: Mapping[str, Any] | None,
        group_id: str | None,
        dedup_id: str | None,
        delay_seconds: int,
    ) -> str:
        now = self._clock()
        if self._fifo:
            if not group_id:
                raise ValueError(f"{self._url} is a FIFO queue: every message needs a group_id")
            # As with ContentBasedDeduplication: without an id, the body's hash is the id.
            dedup_id = dedup_id or hashlib.sha256(body.encode()).hexdigest()
            while self._dedup_expiry and self._dedup_expiry[0][0] <= now:
                _, expired = self._dedup_expiry.popleft()
                self._dedup.pop(expired, None)
            if dedup_id in self._dedup:
                return self._dedup[dedup_id]
        sent_ms, sent_at = self._sent_time()
        message = _Message(
            message_id=f"{self._id_prefix}{next(self._id_counter):012x}",
            body=body,
            message_attributes=MappingProxyType(dict(message_attributes or {})),
            group_id=group_id,
            dedup_id=dedup_id,
            sequence=next(self._ticket),
            visible_at=now + _clamp(delay_seconds, 0, _MAX_DELAY),
            sent_ms=sent_ms,
            sent_at=sent_at,
        )
        if self._fifo and dedup_id is not None:
            self._dedup[dedup_id] = message.message_id
            self._dedup_expiry.append((now + _DEDUP_WINDOW, dedup_id))
        self._add(message, now)
        return message.message_id

    def _sent_time(self) -> tuple[int, datetime]:
        # Many messages share a millisecond; build its datetime once.
        sent_ms = int(time.time() * 1000)
        if self._last_sent[0] != sent_ms:
            self._last_sent = (sent_ms, datetime.fromtimestamp(sent_ms / 1000, tz=timezone.utc))
        return self._last_sent

    def _wake(self) -> None:
        # Condition.notify costs a lock probe even with nobody waiting; most calls have nobody.
        if self._waiting:
            self._cond.notify()

    def _add(self, message: _Message, now: float) -> None:
        self._all[message.message_id] = message
        if self._fifo:
            group = self._groups.get(message.group_id or "")
            if group is None:
                group = self._groups[message.group_id or ""] = _Group(message.group_id or "")
            group.messages.append(message)
        if message.visible_at > now:
            heapq.heappush(self._timers, (message.visible_at, next(self._ticket), message.gen, message))
        elif self._fifo:
            self._make_ready(self._groups[message.group_id or ""], now)
        else:
            self._visible.append(message)
            self._wake()

    def _accept_redriven(self, message: _Message) -> None:
        # Called with the source queue's lock held; locks are only ever taken
        # source first, then dead-letter queue, and a queue cannot be its own DLQ.
        with self._cond:
            now = self._clock()
            moved = _Message(
                message_id=message.message_id,
                body=message.body,
                message_attributes=message.message_attributes,
                group_id=message.group_id,
                dedup_id=message.dedup_id,
                sequence=next(self._ticket),
                visible_at=now,
                sent_ms=message.sent_ms,
                sent_at=message.sent_at,
            )
            moved.receive_count = message.receive_count
            moved.first_receive_ms = message.first_receive_ms
            self._add(moved, now)

    # -- the port ---------------------------------------------------------------------

    def receive(
        self,
        max_messages: int = 10,
        wait_time_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]:
        """Up to ``max_messages`` (1-10) visible messages, waiting up to ``wait_time_seconds`` (0-20)."""
        limit = _clamp(max_messages, 1, MAX_BATCH)
        wait = _clamp(wait_time_seconds, 0, MAX_WAIT_SECONDS)
        timeout = self._visibility_timeout if visibility_timeout is None else visibility_timeout
        timeout = _clamp(timeout, 0, MAX_VISIBILITY_TIMEOUT)
        give_up = time.monotonic() + wait
        with self._cond:
            self.calls["ReceiveMessage"] += 1
            while True:
                now = self._clock()
                self._promote(now)
                taken = (
                    self._take_fifo(limit, now, timeout) if self._fifo else self._take(limit, now, timeout)
                )
                if taken:
                    return [self._snapshot(message) for message in taken]
                remaining = give_up - time.monotonic()
                if remaining <= 0:
                    return []
                if self._timers:
                    remaining = min(remaining, max(self._timers[0][0] - now, 0.001))
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1

    def delete_batch(self, receipt_handles: Sequence[str]) -> BatchResult:
        """Delete by receipt handle; unknown, stale or deleted handles fail as ``ReceiptHandleIsInvalid``."""
        succeeded: list[str] = []
        failed: list[tuple[str, str, str]] = []
        with self._cond:
            self.calls["DeleteMessageBatch"] += _batch_calls(len(receipt_handles))
            for handle in receipt_handles:
                error = self._delete(handle)
                if error is None:
                    succeeded.append(handle)
                else:
                    failed.append((handle, *error))
        return BatchResult(succeeded=tuple(succeeded), failed=tuple(failed))

    def change_visibility_batch(self, changes: Sequence[VisibilityChange]) -> BatchResult:
        """Set visibility timeouts (clamped to 0-43200 s) of in-flight messages."""
        succeeded: list[str] = []
        failed: list[tuple[str, str, str]] = []
        with self._cond:
            self.calls["ChangeMessageVisibilityBatch"] += _batch_calls(len(changes))
            now = self._clock()
            self._promote(now)
            for change in changes:
                error = self._change(change.receipt_handle, change.timeout_seconds, now)
                if error is None:
                    succeeded.append(change.receipt_handle)
                else:
                    failed.append((change.receipt_handle, *error))
        return BatchResult(succeeded=tuple(succeeded), failed=tuple(failed))

    def approximate_depth(self) -> int:
        """Messages waiting: visible plus delayed (in-flight ones are not counted)."""
        with self._cond:
            self.calls["GetQueueAttributes"] += 1
            self._promote(self._clock())
            return len(self._all) - self._in_flight

    # -- conveniences and inspection --------------------------------------------------

    def delete_message(self, receipt_handle: str) -> None:
        """Delete one message; raises QueueError for an invalid receipt handle."""
        with self._cond:
            self.calls["DeleteMessage"] += 1
            error = self._delete(receipt_handle)
        if error is not None:
            raise QueueError(f"DeleteMessage on {self._url}: {error[0]}: {error[1]}")

    def change_visibility(self, receipt_handle: str, timeout: int) -> None:
        """Set one in-flight message's visibility timeout; raises QueueError if it cannot."""
        with self._cond:
            self.calls["ChangeMessageVisibility"] += 1
            now = self._clock()
            self._promote(now)
            error = self._change(receipt_handle, timeout, now)
        if error is not None:
            raise QueueError(f"ChangeMessageVisibility on {self._url}: {error[0]}: {error[1]}")

    def in_flight(self) -> int:
        """Messages received and neither deleted nor visible again."""
        with self._cond:
            self._promote(self._clock())
            return self._in_flight

    def messages(self) -> list[QueueMessage]:
        """Every stored message (visible, delayed or in flight) in send order, for tests."""
        with self._cond:
            stored = sorted(self._all.values(), key=lambda message: message.sequence)
            return [self._snapshot(message) for message in stored]

    # -- internals (lock held) --------------------------------------------------------

    def _promote(self, now: float) -> None:
        """Make visible every message whose delay or visibility timeout has run out."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, gen, message = heapq.heappop(timers)
            if message.deleted or gen != message.gen:
                continue
            group = self._groups.get(message.group_id or "") if self._fifo else None
            if message.in_flight:
                message.in_flight = False
                self._in_flight -= 1
                if group is not None:
                    group.in_flight -= 1
            if group is not None:
                self._make_ready(group, now)
            else:
                self._visible.append(message)
                self._wake()

    def _make_ready(self, group: _Group, now: float) -> None:
        if group.queued or group.in_flight or not group.messages:
            return
        if group.messages[0].visible_at > now:
            return
        group.queued = True
        self._ready.append(group)
        self._wake()

    def _redrives(self, message: _Message) -> bool:
        limit = self._max_receive_count
        return limit is not None and message.receive_count >= limit

    def _move_to_dlq(self, message: _Message) -> None:
        assert self._dlq is not None
        self._forget(message)
        self._dlq._accept_redriven(message)

    def _forget(self, message: _Message) -> None:
        message.deleted = True
        del self._all[message.message_id]
        if message.handle is not None:
            self._handles.pop(message.handle, None)
            message.handle = None

    def _deliver(self, message: _Message, now: float, timeout: int) -> None:
        if message.handle is not None:
            del self._handles[message.handle]
        handle = f"{self._handle_prefix}-{message.message_id}-{next(self._ticket)}"
        message.handle = handle
        self._handles[handle] = message
        message.receive_count += 1
        if not message.first_receive_ms:
            message.first_receive_ms = int(time.time() * 1000)
        message.in_flight = True
        self._in_flight += 1
        message.visible_at = now + timeout
        message.gen += 1
        heapq.heappush(self._timers, (message.visible_at, next(self._ticket), message.gen, message))

    def _take(self, limit: int, now: float, timeout: int) -> list[_Message]:
        taken: list[_Message] = []
        visible = self._visible
        while visible and len(taken) < limit:
            message = visible.popleft()
            if message.deleted:
                continue
            if self._redrives(message):
                self._move_to_dlq(message)
                continue
            self._deliver(message, now, timeout)
            taken.append(message)
        return taken

    def _take_fifo(self, limit: int, now: float, timeout: int) -> list[_Message]:
        taken: list[_Message] = []
        while self._ready and len(taken) < limit:
            group = self._ready.popleft()
            group.queued = False
            index = 0
            # A receive may return several messages of one group, in order; the
            # group then stays locked until none of them is in flight.
            while index < len(group.messages) and len(taken) < limit:
                message = group.messages[index]
                if message.visible_at > now:
                    break
                if self._redrives(message):
                    del group.messages[index]
                    self._move_to_dlq(message)
                    continue
                self._deliver(message, now, timeout)
                group.in_flight += 1
                taken.append(message)
                index += 1
            self._settle(group, now)
        return taken

    def _settle(self, group: _Group, now: float) -> None:
        if not group.messages:
            if self._groups.get(group.group_id) is group:
                del self._groups[group.group_id]
        else:
            self._make_ready(group, now)

    def _delete(self, handle: str) -> tuple[str, str] | None:
        message = self._handles.get(handle)
        if message is None:
            return INVALID_HANDLE, "The receipt handle is unknown, stale (re-received) or deleted."
        was_in_flight = message.in_flight
        self._forget(message)
        if was_in_flight:
            message.in_flight = False
            self._in_flight -= 1
        if self._fifo:
            group = self._groups[message.group_id or ""]
            group.messages.remove(message)  # near the head: delivered messages come first
            if was_in_flight:
                group.in_flight -= 1
            self._settle(group, self._clock())
        return None

    def _change(self, handle: str, timeout: int, now: float) -> tuple[str, str] | None:
        message = self._handles.get(handle)
        if message is None:
            return INVALID_HANDLE, "The receipt handle is unknown, stale (re-received) or deleted."
        if not message.in_flight:
            return NOT_IN_FLIGHT, "The message is not in flight (its visibility timeout ran out)."
        message.visible_at = now + _clamp(timeout, 0, MAX_VISIBILITY_TIMEOUT)
        message.gen += 1
        heapq.heappush(self._timers, (message.visible_at, next(self._ticket), message.gen, message))
        if message.visible_at <= now:
            self._promote(now)
        return None

    def _snapshot(self, message: _Message) -> QueueMessage:
        attributes = {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(message.sent_ms),
        }
        if message.first_receive_ms:
            attributes["ApproximateFirstReceiveTimestamp"] = str(message.first_receive_ms)
        if self._fifo:
            attributes["MessageGroupId"] = message.group_id or ""
            attributes["MessageDeduplicationId"] = message.dedup_id or ""
            attributes["SequenceNumber"] = f"{message.sequence:020d}"
        return QueueMessage(
            message_id=message.message_id,
            receipt_handle=message.handle or "",
            body=message.body,
            queue_url=self._url,
            receive_count=message.receive_count,
            sent_at=message.sent_at,
            attributes=attributes,
            message_attributes=message.message_attributes,
        )
