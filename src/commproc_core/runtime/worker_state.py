"""What each poller of the worker is doing, and readiness changes logged once each.

A poller's state answers two operator questions: why is ``/readyz`` 503
(the failing pollers, each with its reason since when), and what is a
stopping worker waiting for (a long poll with so many seconds left, or a
batch being finished).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import attrs

from commproc_core.ports import ChannelProcessor

__all__ = ["PollerState", "QuietProbe", "ReadinessLog", "waiting_for"]

log = logging.getLogger("commproc.worker")

#: While a poller keeps failing for the same reason, a reminder is logged this often (seconds).
REMINDER_INTERVAL = 300.0


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat(timespec="seconds")


@attrs.define
class PollerState:
    """One poller thread: its processor and what it is doing."""

    processor: ChannelProcessor
    channel: str
    queue: str
    index: int = 0
    thread: threading.Thread | None = None
    failures: int = 0
    batches: int = 0
    #: The error code of the current run of failures, and when it began (epoch seconds).
    reason: str | None = None
    error: str | None = None
    failing_since: float | None = None
    last_logged: float = 0.0
    #: ``starting``, ``receiving`` (a long poll), ``processing`` (a batch), ``backoff`` or ``stopped``.
    activity: str = "starting"
    activity_since: float = attrs.field(factory=time.monotonic)
    batch_size: int = 0

    @property
    def name(self) -> str:
        return f"{self.channel}-{self.index}"

    def doing(self, activity: str, batch_size: int = 0) -> None:
        self.activity = activity
        self.activity_since = time.monotonic()
        self.batch_size = batch_size

    def fail(self, reason: str, error: str) -> bool:
        """Count a failure; True when it should be logged (a new reason, or a reminder is due)."""
        now = time.time()
        self.failures += 1
        changed = reason != self.reason
        if changed:
            self.reason, self.failing_since = reason, now
        self.error = error
        if changed or now - self.last_logged >= REMINDER_INTERVAL:
            self.last_logged = now
            return True
        return False

    def recover(self) -> int:
        """Clear the failures; how many there were."""
        failures, self.failures = self.failures, 0
        self.reason = self.error = self.failing_since = None
        return failures

    def problem(self) -> dict[str, Any]:
        """This poller's entry in ``/readyz``'s problems (only while it fails)."""
        return {
            "channel": self.channel,
            "queue": self.queue,
            "poller": self.name,
            "reason": self.reason,
            "error": self.error,
            "failures": self.failures,
            "since": _iso(self.failing_since or time.time()),
        }


def waiting_for(pollers: Sequence[PollerState]) -> str:
    """What a stopping worker still waits for, in words."""
    now = time.monotonic()
    parts = []
    for poller in pollers:
        if poller.thread is None or not poller.thread.is_alive():
            continue
        if poller.activity == "receiving":
            wait = int(getattr(poller.processor.settings, "wait_time", 0) or 0)
            left = max(0, round(wait - (now - poller.activity_since)))
            parts.append(f"{poller.name} in a long poll on {poller.queue} (SQS answers within {left} s)")
        elif poller.activity == "processing":
            parts.append(f"{poller.name} finishing a batch of {poller.batch_size} from {poller.queue}")
        else:
            parts.append(f"{poller.name} ({poller.activity})")
    return "; ".join(parts) or "nothing but helper threads"


class QuietProbe(logging.Filter):
    """Silences the store's own log lines while a readiness probe pings it, in that thread only.

    A store may log every failed ping; a probe pings every few seconds, and
    :class:`ReadinessLog` already reports the change once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self._local, "active", False)

    def __enter__(self) -> None:
        self._local.active = True

    def __exit__(self, *exc: object) -> None:
        self._local.active = False


class ReadinessLog:
    """Logs readiness when it changes, once each: ready again, or not ready for new reasons.

    Probes come every few seconds; a log line per probe would bury the one
    that matters. While the worker recovers, problems clearing one by one
    are not news: the next line is "ready again".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: tuple[Any, ...] | None = None

    def note(self, ready: bool, problems: Sequence[Mapping[str, Any]], store: str, stopping: bool) -> None:
        reasons = frozenset((str(p.get("poller") or p["channel"]), str(p["reason"])) for p in problems)
        key = (ready, store, stopping, reasons)
        with self._lock:
            last, self._last = self._last, key
        if last is not None and (ready, store, stopping) == last[:3] and reasons <= last[3]:
            return  # the same state, or fewer problems than before
        first = last is None
        if ready:
            if not first:
                log.info("ready again: every poller receives and the store answers")
            return
        if stopping:
            log.info("not ready: stopping")
            return
        described = [f"{p.get('poller') or p['channel']} on {p['queue']}: {p['reason']}" for p in problems]
        if store != "ok":
            described.append(f"store: {store}")
        log.warning("not ready: %s", "; ".join(described) or "pollers not running")
