"""Keeping long-running batches invisible to other consumers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from commproc_core.errors import CommprocError
from commproc_core.ports import MessageQueue, VisibilityChange

__all__ = ["Heartbeat"]

log = logging.getLogger("commproc.heartbeat")


class Heartbeat:
    """One background thread extending the visibility of in-flight batches.

    A batch registers its receipt handles; once it has been in flight for
    ``fraction`` of the visibility timeout, its messages get a fresh timeout,
    and again each time that interval passes, until the batch unregisters.
    A short batch costs no API call at all.
    """

    def __init__(
        self,
        queue: MessageQueue,
        visibility_timeout: int,
        fraction: float = 0.5,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.visibility_timeout = visibility_timeout
        self.interval = max(visibility_timeout * fraction, 0.05)
        self._clock = clock
        self._lock = threading.Condition()
        self._batches: dict[int, tuple[list[str], float]] = {}
        self._next_id = 0
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.extensions = 0

    def register(self, receipt_handles: Sequence[str]) -> int:
        with self._lock:
            self._next_id += 1
            self._batches[self._next_id] = (list(receipt_handles), self._clock() + self.interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="commproc-heartbeat", daemon=True)
                self._thread.start()
            self._lock.notify()
            return self._next_id

    def unregister(self, token: int) -> None:
        with self._lock:
            self._batches.pop(token, None)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _due(self) -> tuple[list[str], float | None]:
        now = self._clock()
        handles: list[str] = []
        soonest: float | None = None
        for token, (batch, due) in list(self._batches.items()):
            next_due = due
            if due <= now:
                handles.extend(batch)
                next_due = now + self.interval
                self._batches[token] = (batch, next_due)
            soonest = next_due if soonest is None else min(soonest, next_due)
        return handles, soonest

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopped:
                    return
                handles, soonest = self._due()
                if not handles:
                    self._lock.wait(None if soonest is None else max(soonest - self._clock(), 0.01))
                    continue
            self._extend(handles)

    def _extend(self, handles: list[str]) -> None:
        changes = [VisibilityChange(h, self.visibility_timeout) for h in handles]
        try:
            result = self.queue.change_visibility_batch(changes)
        except CommprocError as exc:
            log.warning("heartbeat could not extend %d messages: %s", len(changes), exc)
            return
        self.extensions += len(result.succeeded)
        if result.failed:
            log.warning("heartbeat: %d of %d visibility extensions failed", len(result.failed), len(changes))
