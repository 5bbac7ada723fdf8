"""Calling a processor's ``validate_event`` and ``process_event`` directly, as the seed did.

In the pipeline, ``validate_event`` receives an
:class:`~commproc_core.pipeline.processor.EventPayload` and ``process_event``
one of the events it returned, inside the batch's unit of work. The seed's
code and tests call them by hand with the provider's payload instead
(``processor.validate_event({"MessageSid": ...})``). Every
BaseChannelProcessor subclass's two methods are wrapped (once, when the
class is created) so that such a call does what it means:

* ``validate_event(payload)`` with a mapping, a list or the body text
  unwraps it as the pipeline unwraps a queue message body (SNS, API
  Gateway, lists) and returns the events of every item; signatures are not
  checked (that is ``authenticate``'s part, per queue message).
* ``process_event(payload)`` outside a batch processes the payload as a
  queue message holding it would be (validated, deduplicated, recorded in a
  transaction of its own) and returns its communication event; a rejection
  raises the PermanentError, a passing failure a TransientError.
* ``process_event(event)`` outside a batch, with a parsed event, raises a
  RuntimeError saying what to call instead.

A call from the pipeline (an EventPayload; any call inside a batch) goes
straight to the channel's method.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from commproc_core.errors import PermanentError, TransientError
from commproc_core.model import CommunicationEvent, QueueMessage, new_id
from commproc_core.pipeline.envelope import unwrap
from commproc_core.pipeline.payload import EventPayload

__all__ = ["body_text", "is_raw_payload", "payloads", "wrap_process", "wrap_validate"]

#: Set on a wrapper, so a method is wrapped once however many subclasses inherit it.
MARK = "_commproc_direct_call"


def is_raw_payload(value: Any) -> bool:
    """Whether ``value`` is a provider payload (a mapping, list or body text) rather than a parsed event."""
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, (Mapping, list, tuple)) and not hasattr(value, "dedupe_key")


def body_text(value: Any, owner: str) -> str:
    """``value`` as a queue message body would hold it."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value if not isinstance(value, tuple) else list(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{owner}: a payload passed directly must be JSON-serializable, as a queue body is ({exc})"
        ) from None


def queue_message(value: Any, owner: str) -> QueueMessage:
    """A queue message, never received from a queue, whose body holds ``value`` (see :func:`body_text`)."""
    return QueueMessage(message_id=f"direct-{new_id()}", receipt_handle="", body=body_text(value, owner))


def payloads(value: Any, owner: str) -> list[EventPayload]:
    """The EventPayloads the pipeline would validate for a body holding ``value`` (none: control)."""
    if not is_raw_payload(value):
        raise TypeError(
            f"{owner}.validate_event takes an EventPayload, or a provider payload (a mapping, a list or "
            f"the body text); got {type(value).__name__}"
        )
    unwrapped = unwrap(queue_message(value, owner))
    return [
        EventPayload(data=item, envelope=unwrapped.envelope, index=position)
        for position, item in enumerate(unwrapped.items)
    ]


def wrap_validate(method: Callable[..., Any]) -> Callable[..., Any]:
    """``validate_event`` that also takes the provider's payload itself; see the module docstring."""

    @functools.wraps(method)
    def validate_event(self: Any, event_data: Any) -> Sequence[Any]:
        if isinstance(event_data, EventPayload):
            return method(self, event_data)  # type: ignore[no-any-return]
        events: list[Any] = []
        for payload in payloads(event_data, type(self).__name__):
            events.extend(method(self, payload))
        return events

    setattr(validate_event, MARK, True)
    return validate_event


def wrap_process(method: Callable[..., Any]) -> Callable[..., Any]:
    """``process_event`` that, outside a batch, processes a provider payload; see the module docstring."""

    @functools.wraps(method)
    def process_event(self: Any, event_data: Any) -> Any:
        if getattr(self._local, "uow", None) is not None:
            return method(self, event_data)
        if not is_raw_payload(event_data):
            raise RuntimeError(
                f"{type(self).__name__}.process_event({type(event_data).__name__}) runs inside a batch's "
                "unit of work; outside one, pass the provider payload itself (a mapping or the body text) to "
                "process_event or process_payload, or queue messages to process_batch"
            )
        return event_of(self.process_payload(event_data))

    setattr(process_event, MARK, True)
    return process_event


def event_of(outcome: Any) -> CommunicationEvent | None:
    """The communication event a directly processed payload came to; its failure raised."""
    if outcome.outcome == "retry":
        error = TransientError(f"left for a retry: {outcome.reason}: {outcome.detail or ''}".rstrip(": "))
        error.code = str(outcome.reason or TransientError.code)
        raise error
    if outcome.outcome == "rejected":
        raise PermanentError(outcome.detail or "rejected", code=outcome.reason or PermanentError.code)
    return outcome.events[0] if outcome.events else None
