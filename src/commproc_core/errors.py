"""The error taxonomy.

Two families decide what the pipeline does with a queue message:

* :class:`PermanentError`: retrying cannot help (invalid payload, failed
  signature, unknown event shape). The event is recorded as failed and the
  queue message is acknowledged.
* :class:`TransientError`: the outside world is briefly unavailable (store
  down, throttling). Nothing is recorded as done; the message stays on the
  queue and comes back after its visibility timeout.

Everything else is configuration or programming trouble and is raised to the
caller.

Error texts are bounded: a detail, a field path or a configuration problem
built from input is cut to a fixed length here, so an error that quotes a
huge value stays small wherever it is stored, logged or printed.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ChannelLoadError",
    "ChannelNotFound",
    "CommprocError",
    "ConfigError",
    "DuplicateChannelError",
    "InvalidPayload",
    "PermanentError",
    "QueueCredentialsError",
    "QueueError",
    "QueueNotFound",
    "RecordNotFound",
    "SchemaVersionError",
    "SignatureError",
    "StoreError",
    "StoreUnavailable",
    "ThrottledError",
    "TransientError",
    "UniqueViolation",
    "UnknownEventShape",
    "WriteConflict",
]


#: Longest error detail, field path, and configuration problem kept.
DETAIL_LIMIT = 1000
FIELD_LIMIT = 200
PROBLEM_LIMIT = 300
#: How many configuration problems a ConfigError keeps and shows.
PROBLEMS_KEPT = 50
PROBLEMS_SHOWN = 10


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: object, limit: int = 80) -> str:
    # Not repr(value) of anything: a huge int has no repr past 4,300 digits.
    return repr(_clip(value, limit)) if isinstance(value, str) else f"<{type(value).__name__}>"


class CommprocError(Exception):
    """Base of every error commproc raises on purpose."""


class PermanentError(CommprocError):
    """The event can never be processed; record it as failed, do not retry.

    ``code`` is a short stable identifier (``invalid_payload``,
    ``bad_signature``...) used in records, metrics and stats; ``field`` is the
    path of the offending field when there is one. Neither carries personal
    data.
    """

    code = "permanent_error"

    def __init__(self, detail: str, *, field: str | None = None, code: str | None = None) -> None:
        detail = _clip(str(detail), DETAIL_LIMIT)
        super().__init__(detail)
        self.detail = detail
        self.field = None if field is None else _clip(str(field), FIELD_LIMIT)
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}" if self.field else self.detail


class InvalidPayload(PermanentError):
    """The payload is not well formed or misses a required field."""

    code = "invalid_payload"


class SignatureError(PermanentError):
    """The payload's signature is missing or does not verify."""

    code = "bad_signature"


class UnknownEventShape(PermanentError):
    """The payload is well formed but is no event this channel knows."""

    code = "unknown_event"


class TransientError(CommprocError):
    """A passing failure; leave the message on the queue for a retry."""

    code = "transient_error"


class StoreError(CommprocError):
    """Base of store errors that are not transient."""


class StoreUnavailable(TransientError):
    """The store cannot be reached (connection refused or lost)."""

    code = "store_unavailable"


class QueueUnavailable(TransientError):
    """The queue service cannot be reached or answered with a server error; retry later."""

    code = "queue_unavailable"


class WriteConflict(TransientError):
    """Another transaction wrote the same rows first (a unique key taken, a deadlock).

    The batch's transaction is rolled back and run again: its reads then see
    the other transaction's rows.
    """

    code = "write_conflict"

    def __init__(self, detail: str, *, table: str | None = None, key: str | None = None) -> None:
        super().__init__(detail)
        self.table = table
        self.key = key


class ThrottledError(TransientError):
    """A service asked us to slow down."""

    code = "throttled"


class UniqueViolation(StoreError):
    """A write would break a unique key, as a database constraint would report."""

    def __init__(self, table: str, key: str, fields: Sequence[str]) -> None:
        super().__init__(f"{table}: unique key {key!r} ({', '.join(fields)}) already holds that value")
        self.table = table
        self.key = key
        self.fields = tuple(fields)


class RecordNotFound(StoreError):
    """An update named a record id that is not stored."""

    def __init__(self, table: str, record_id: str) -> None:
        super().__init__(f"{table}: no record with id {_shown(record_id)}")
        self.table = table
        self.record_id = record_id


class SchemaVersionError(StoreError):
    """The database schema is missing, too old or newer than this code."""


class ConfigError(CommprocError):
    """A configuration is invalid; ``problems`` lists each with its field path.

    Each problem is cut to :data:`PROBLEM_LIMIT` characters and at most
    :data:`PROBLEMS_KEPT` are kept (the last one then says how many more
    there were); the message shows the first :data:`PROBLEMS_SHOWN`.
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        problems = list(problems)
        clipped = [_clip(str(p), PROBLEM_LIMIT) for p in problems[:PROBLEMS_KEPT]]
        if len(problems) > PROBLEMS_KEPT:
            clipped.append(f"... and {len(problems) - PROBLEMS_KEPT} more problems")
        self.problems = clipped
        shown = "; ".join(clipped[:PROBLEMS_SHOWN])
        if len(clipped) > PROBLEMS_SHOWN:
            shown += f"; ... ({len(problems) - PROBLEMS_SHOWN} more)"
        message = _clip(message, DETAIL_LIMIT)
        super().__init__(message if not clipped else f"{message}: {shown}")


class ChannelNotFound(CommprocError, LookupError):
    """No installed or registered processor serves the channel asked for."""

    def __init__(self, channel_type: str, supported: Sequence[str]) -> None:
        listed = ", ".join(sorted(supported)) or "none installed"
        super().__init__(
            f"no processor for channel {_shown(channel_type)}; supported channels: {listed}. "
            "Install the distribution that registers it under the commproc.channels entry points "
            "(commproc-sms and commproc-email register sms and email), or register_processor() it."
        )
        self.channel_type = channel_type
        self.supported = tuple(sorted(supported))


class ChannelLoadError(CommprocError, ImportError):
    """A plugin's entry point is installed but cannot be loaded."""

    def __init__(self, channel_type: str, distribution: str, target: str, cause: BaseException) -> None:
        super().__init__(
            f"channel {_shown(channel_type)} from distribution {distribution!r} ({target}) "
            f"failed to load: {type(cause).__name__}: {_clip(str(cause), DETAIL_LIMIT)}"
        )
        self.channel_type = channel_type
        self.distribution = distribution
        self.target = target


class DuplicateChannelError(CommprocError):
    """Two distributions register the same channel name."""

    def __init__(self, channel_type: str, distributions: Sequence[str]) -> None:
        super().__init__(
            f"channel {_shown(channel_type)} is registered by more than one distribution: "
            f"{', '.join(distributions)}; uninstall one of them"
        )
        self.channel_type = channel_type
        self.distributions = tuple(distributions)


class QueueError(CommprocError):
    """A queue operation failed for a reason retrying will not fix."""


class QueueNotFound(QueueError):
    """The queue URL names no queue."""


class QueueCredentialsError(QueueError):
    """No usable AWS credentials were found, or they were refused."""
