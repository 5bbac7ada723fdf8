"""What one pass over a batch of queue messages did."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from commproc_core.model import CommunicationEvent

__all__ = ["BatchReport", "MessageOutcome", "ProcessingStats"]

#: Outcomes a queue message can have; all but ``retry`` acknowledge it.
OUTCOMES = ("processed", "duplicate", "rejected", "ignored", "retry")


@attrs.frozen(kw_only=True)
class ProcessingStats(Mapping[str, Any]):
    """Counts for one batch. Also readable as a mapping (``stats["processed"]``), as in the seed.

    Event counts (``processed``, ``failed``, ``duplicates``, ``ignored``) are
    per provider event; message counts (``received``, ``deleted``,
    ``retried``) are per queue message.
    """

    received: int = 0
    processed: int = 0
    failed: int = 0
    duplicates: int = 0
    ignored: int = 0
    deleted: int = 0
    delete_failed: int = 0
    retried: int = 0
    #: Times the batch's transaction ran again after losing a race (a key taken, a deadlock).
    conflicts: int = 0
    elapsed: float = 0.0

    def __getitem__(self, key: str) -> Any:
        if key not in attrs.fields_dict(type(self)):
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(attrs.fields_dict(type(self)))

    def __len__(self) -> int:
        return len(attrs.fields(type(self)))

    def __add__(self, other: ProcessingStats) -> ProcessingStats:
        return ProcessingStats(**{name: self[name] + other[name] for name in self})

    def as_dict(self) -> dict[str, Any]:
        return dict(self.items())


@attrs.frozen(kw_only=True)
class MessageOutcome:
    """What happened to one queue message."""

    message_id: str
    receipt_handle: str
    #: ``processed``, ``duplicate`` (every event already seen), ``rejected``
    #: (permanent failure), ``ignored`` (a control message) or ``retry``
    #: (transient failure; left on the queue).
    outcome: str
    #: The error code of a rejection or retry.
    reason: str | None = None
    #: What the code stands for, in words (redacted, bounded): ``reason``'s cause.
    detail: str | None = None
    #: The communication events recorded (or found, for duplicates), in order.
    events: tuple[CommunicationEvent, ...] = ()
    #: For each entry of ``events``, whether it was already recorded before.
    duplicates: tuple[bool, ...] = ()
    receive_count: int = 1

    @property
    def acknowledged(self) -> bool:
        return self.outcome != "retry"


@attrs.frozen(kw_only=True)
class BatchReport:
    """Per-message outcomes of a batch and its stats."""

    outcomes: tuple[MessageOutcome, ...]
    stats: ProcessingStats
