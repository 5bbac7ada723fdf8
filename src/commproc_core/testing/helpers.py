"""Helpers for testing a channel the way commproc tests its own."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from commproc_core.model import QueueMessage, new_id
from commproc_core.pipeline.stats import ProcessingStats
from commproc_core.ports import Store
from commproc_core.stores.spec import TABLES

__all__ = ["FixedClock", "assert_stats", "body", "drain", "make_message", "table_counts"]


class FixedClock:
    """A clock that stands still until told to move."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> datetime:
        self.current += timedelta(seconds=seconds)
        return self.current


def body(value: Any) -> str:
    """A queue message body: strings as given, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def make_message(value: Any, *, message_id: str | None = None, receive_count: int = 1) -> QueueMessage:
    """A received queue message holding ``value`` (a string, or anything JSON-serializable)."""
    mid = message_id or new_id()
    return QueueMessage(
        message_id=mid,
        receipt_handle=f"rh-{mid}-{receive_count}",
        body=body(value),
        receive_count=receive_count,
    )


def drain(processor: Any, *, max_batches: int = 100_000, max_messages: int = 10) -> ProcessingStats:
    """Run ``processor.process_messages`` until a receive comes back empty; the summed stats."""
    total = ProcessingStats()
    for _ in range(max_batches):
        stats: ProcessingStats = processor.process_messages(max_messages=max_messages, wait_time=0)
        if stats.received == 0:
            break
        total = total + stats
    return total


def table_counts(store: Store) -> dict[str, int]:
    """How many records each table holds."""
    with store.unit_of_work() as uow:
        return {name: getattr(uow, name).count() for name in TABLES}


def assert_stats(stats: Mapping[str, Any], **expected: Any) -> None:
    """Assert the named counters, reporting every mismatch at once."""
    wrong = {k: (stats[k], v) for k, v in expected.items() if stats[k] != v}
    if wrong:
        detail = ", ".join(f"{k}: got {got}, expected {want}" for k, (got, want) in wrong.items())
        raise AssertionError(f"stats differ: {detail}; all stats: {dict(stats)}")
