"""The interfaces commproc's services are written against.

Each is a :class:`typing.Protocol`: any object with these methods fits, so a
host application can hand in its own queue, store, clock, sender or agent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import attrs

from commproc_core.model import (
    AgentEvent,
    Campaign,
    CampaignParticipant,
    ChannelConfig,
    ChatTurn,
    CommunicationEvent,
    Consent,
    Conversation,
    Lead,
    Message,
    OutboundMessage,
    Participant,
    ProcessingRecord,
    QueueMessage,
    SeenToken,
    Thread,
)

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "AgentReply",
    "AgentRequest",
    "AgentResponder",
    "BatchCounts",
    "BatchResult",
    "BulkUnitOfWork",
    "ChannelProcessor",
    "Clock",
    "Load",
    "MessageQueue",
    "PollSettings",
    "ProcessedBatch",
    "ProcessedMessage",
    "Repository",
    "SendResult",
    "Sender",
    "Store",
    "TableChanges",
    "UnitOfWork",
    "VisibilityChange",
]

R = TypeVar("R")


@attrs.frozen
class BatchResult:
    """Outcome of a batch queue call: ids that succeeded, and failures with reasons."""

    succeeded: tuple[str, ...] = ()
    #: (receipt handle or message id, error code, error message) per failed entry.
    failed: tuple[tuple[str, str, str], ...] = ()


@attrs.frozen
class VisibilityChange:
    """One entry of a visibility change batch."""

    receipt_handle: str
    timeout_seconds: int


class MessageQueue(Protocol):
    """A queue with SQS semantics: receive with visibility, delete, change visibility."""

    @property
    def url(self) -> str: ...

    def receive(
        self,
        max_messages: int = 10,
        wait_time_seconds: int = 20,
        visibility_timeout: int | None = None,
    ) -> list[QueueMessage]: ...

    def delete_batch(self, receipt_handles: Sequence[str]) -> BatchResult: ...

    def change_visibility_batch(self, changes: Sequence[VisibilityChange]) -> BatchResult: ...

    def approximate_depth(self) -> int | None: ...


@runtime_checkable
class Repository(Protocol[R]):
    """Records of one kind, seen through a unit of work.

    ``where`` keyword arguments are equality conditions on record fields, or a
    :class:`commproc_core.stores.spec.Range`. Writes raise
    :class:`commproc_core.errors.UniqueViolation` when a unique key of
    :mod:`commproc_core.stores.spec` would break.
    """

    def get(self, record_id: str) -> R | None: ...

    def add(self, record: R) -> R: ...

    def update(self, record: R) -> R: ...

    def get_or_create(self, record: R, *, key: str) -> tuple[R, bool]: ...

    def find_one(self, **where: Any) -> R | None: ...

    def find(
        self,
        *,
        order_by: str | None = None,
        descending: bool = False,
        limit: int | None = None,
        **where: Any,
    ) -> list[R]: ...

    def count(self, **where: Any) -> int: ...

    def delete(self, record_id: str) -> bool: ...


class UnitOfWork(Protocol):
    """One transaction over every repository: commit makes all writes visible at once.

    Leaving the ``with`` block without :meth:`commit` rolls back. After a
    commit or rollback the unit of work starts a new transaction and may be
    used again.
    """

    leads: Repository[Lead]
    campaigns: Repository[Campaign]
    campaign_participants: Repository[CampaignParticipant]
    conversations: Repository[Conversation]
    participants: Repository[Participant]
    threads: Repository[Thread]
    messages: Repository[Message]
    events: Repository[CommunicationEvent]
    processing_records: Repository[ProcessingRecord]
    channel_configs: Repository[ChannelConfig]
    consents: Repository[Consent]
    agent_events: Repository[AgentEvent]
    outbox: Repository[OutboundMessage]
    seen_tokens: Repository[SeenToken]

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: an exception inside undoes only its writes, then propagates."""
        ...

    def __enter__(self) -> UnitOfWork: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


@attrs.frozen
class Load:
    """A set-based read: the rows of ``table`` whose ``field`` holds one of ``values``.

    ``where`` adds equality conditions; ``lock`` keeps the rows found from
    changing until the transaction ends (``SELECT ... FOR UPDATE`` where the
    database has it; SQLite and the memory store serialize writers anyway).
    """

    table: str
    field: str
    values: tuple[Any, ...]
    where: tuple[tuple[str, Any], ...] = ()
    lock: bool = False


@attrs.frozen
class TableChanges:
    """The writes of one table, applied inserts first, then updates, then deletes."""

    table: str
    inserts: tuple[Any, ...] = ()
    #: Whole records, matched on ``id``.
    updates: tuple[Any, ...] = ()
    #: Record ids.
    deletes: tuple[str, ...] = ()


class BulkUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that reads and writes a whole batch with a fixed number of statements.

    The batch path (:class:`commproc_core.stores.session.BatchSession`) uses
    these when a store offers them, and the row-at-a-time repositories
    otherwise.
    """

    def load_many(self, loads: Sequence[Load]) -> list[list[Any]]:
        """The rows of each load, in order; one round trip for all of them where the driver allows."""
        ...

    def apply(self, changes: Sequence[TableChanges]) -> None:
        """Write ``changes`` in the order given, each table's rows in one statement per kind.

        Raises :class:`~commproc_core.errors.WriteConflict` when a row's unique
        key is already taken (another transaction got there first) or an updated
        row is gone; the transaction must then be rolled back.
        """
        ...


class Store(Protocol):
    """Where records live; hands out units of work."""

    def unit_of_work(self) -> UnitOfWork: ...

    def ping(self) -> None:
        """Return if the store is reachable, else raise StoreUnavailable."""
        ...

    def close(self) -> None: ...


class Clock(Protocol):
    """Tells the time (timezone-aware UTC); tests hand in a fixed one."""

    def now(self) -> datetime: ...


@attrs.frozen
class AgentRequest:
    """What an AI agent is asked: instructions, context and the conversation so far."""

    prompt: str
    history: tuple[ChatTurn, ...]
    context: Mapping[str, Any] = attrs.field(factory=dict)
    channel: str = ""
    conversation_id: str | None = None


@attrs.frozen
class AgentReply:
    """An agent's answer; ``text`` empty means it chose not to reply."""

    text: str
    model: str | None = None


class AgentResponder(Protocol):
    """Produces a reply to an inbound message; raises on failure."""

    @property
    def name(self) -> str: ...

    def respond(self, request: AgentRequest) -> AgentReply: ...


@attrs.frozen
class SendResult:
    """What a provider said about a message handed to it."""

    provider_message_id: str | None
    status: str


class Sender(Protocol):
    """Hands an outbound message to a provider; raises SendError on refusal."""

    def send(self, message: OutboundMessage) -> SendResult: ...


class PollSettings(Protocol):
    """The settings of a channel the worker polls by."""

    @property
    def batch_size(self) -> int:
        """Messages per receive, 1 to 10."""
        ...

    @property
    def wait_time(self) -> int:
        """Long-poll wait of a receive, 0 to 20 seconds."""
        ...


class ProcessedMessage(Protocol):
    """One queue message of a processed batch, as the runtime reads it."""

    @property
    def message_id(self) -> str: ...

    @property
    def outcome(self) -> str:
        """``processed``, ``duplicate``, ``rejected``, ``ignored`` or ``retry`` (left on the queue)."""
        ...

    @property
    def reason(self) -> str | None:
        """The error code of a rejection or a retry."""
        ...

    @property
    def events(self) -> Sequence[CommunicationEvent]:
        """The communication events recorded (or found, for duplicates), in order."""
        ...

    @property
    def duplicates(self) -> Sequence[bool]:
        """For each of ``events``, whether it had been recorded before."""
        ...


class BatchCounts(Protocol):
    """The counts of a processed batch the runtime reads."""

    @property
    def retried(self) -> int:
        """Queue messages left on the queue for another try."""
        ...

    @property
    def elapsed(self) -> float:
        """Seconds the batch took."""
        ...


class ProcessedBatch(Protocol):
    """What :meth:`ChannelProcessor.process_batch` returns: an outcome per message, and counts."""

    @property
    def outcomes(self) -> Sequence[ProcessedMessage]: ...

    @property
    def stats(self) -> BatchCounts: ...


class ChannelProcessor(Protocol):
    """What the worker, the Lambda handler and replay call on a channel's processor; nothing more.

    :class:`~commproc_core.pipeline.processor.BaseChannelProcessor` implements
    it (and :class:`~commproc_core.pipeline.stats.BatchReport` is its
    :class:`ProcessedBatch`); a class that does not subclass it works too.
    :class:`~commproc_core.factory.ProcessorFactory` builds one as
    ``cls(queue_url, config, **collaborators)``, passing only the
    collaborators (``store``, ``queue``, ``clock``, ``sender``,
    ``agent_responder``) its constructor accepts.

    ``process_batch`` owns everything between receiving and acknowledging:
    it records an outcome for every message and, unless
    ``acknowledge=False`` (Lambda and replay, which act on the outcomes
    themselves), deletes what is done and backs off what is left for a retry.
    It must not raise for a message's failure; an exception means the whole
    batch failed and every message comes back.
    """

    @property
    def channel_type(self) -> str: ...

    @property
    def queue_url(self) -> str | None: ...

    @property
    def settings(self) -> PollSettings: ...

    @property
    def store(self) -> Store:
        """The store the processor records into (the worker's readiness probe, when none is given)."""
        ...

    @property
    def queue(self) -> MessageQueue:
        """The queue ``receive_messages`` reads (start-up checks and depth gauges)."""
        ...

    def receive_messages(self, max_messages: int = 10, wait_time: int = 20) -> list[QueueMessage]: ...

    def process_batch(
        self, messages: Sequence[QueueMessage], *, acknowledge: bool = True
    ) -> ProcessedBatch: ...

    def close(self) -> None:
        """Release what the processor started (threads, clients); it is not used afterwards."""
        ...
