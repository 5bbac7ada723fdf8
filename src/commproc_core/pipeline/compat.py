"""The seed's processor shape, on commproc's pipeline: :class:`SeedChannelProcessor`.

A processor written for the seed's guide runs with its import changed::

    from commproc_core.pipeline.compat import SeedChannelProcessor as BaseChannelProcessor

    class CustomProcessor(BaseChannelProcessor):
        def __init__(self, queue_url, config=None):
            super().__init__("custom", queue_url, config)

        def validate_event(self, event_data):      # the payload as a dict; True or False
            return "id" in event_data

        def process_event(self, event_data):       # creates and returns the CommunicationEvent
            return CommunicationEvent(channel="custom", provider="acme", event_type="ping")

What the base adds around the two methods, so they run in the pipeline:

* ``validate_event`` is given the payload itself (a dict, as the seed's
  ``json.loads(body)`` gave it, after commproc has peeled SNS, API Gateway
  and list envelopes). ``True`` makes one event of it, ``False`` rejects the
  message permanently (``validation_failed``), anything else is a contract
  violation of that message alone.
* The event's dedupe key is :meth:`SeedChannelProcessor.event_key`: by
  default a hash of the payload, so a redelivered or re-sent payload is
  recognised; override it to use the provider's event id.
* ``process_event`` is given the payload and returns the
  CommunicationEvent, unsaved, or saved by itself through ``self.uow`` (or
  :meth:`SeedChannelProcessor.create_event`, the seed's
  ``CommunicationEvent.objects.create``): either way the pipeline records it
  once, with its dedupe key, in the batch's transaction.
* An exception in either is that message's problem only: a PermanentError
  rejects it, anything else leaves it for a retry (and the DLQ).
* Called directly, outside a batch, ``validate_event(dict)`` returns the
  seed's boolean and ``process_event(dict)`` processes the payload as a queue
  message holding it would be, returning its CommunicationEvent.

``config`` is the seed's free-form dict: keys commproc knows
(:class:`~commproc_core.pipeline.settings.ChannelSettings`) are checked and
applied, the rest stay in ``self.config`` for the processor's own use.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, cast

import attrs

from commproc_core.errors import ConfigError, PermanentError
from commproc_core.model import CommunicationEvent
from commproc_core.parsing import config_problems
from commproc_core.pipeline import direct
from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload

if TYPE_CHECKING:
    from commproc_core.ports import ChannelProcessor, UnitOfWork

__all__ = ["SeedChannelProcessor", "SeedEvent", "provided_collaborators"]

_COLLABORATORS = ("store", "queue", "clock", "sender", "agent_responder")
_provided: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("commproc_collaborators")


@contextmanager
def provided_collaborators(collaborators: Mapping[str, Any]) -> Iterator[None]:
    """Collaborators (store, queue, clock...) for a SeedChannelProcessor built inside the block.

    The seed's subclasses take ``(queue_url, config)`` only, so the factory
    cannot pass its store to them; it provides it here instead.
    """
    token = _provided.set(dict(collaborators))
    try:
        yield
    finally:
        _provided.reset(token)


@attrs.frozen
class SeedEvent:
    """One payload a seed-style ``validate_event`` accepted."""

    data: Any
    dedupe_key: str
    event_type: str
    provider: str
    channel: str


class SeedChannelProcessor(BaseChannelProcessor[SeedEvent]):
    """The seed's BaseChannelProcessor: ``__init__(channel_type, queue_url, config)``, boolean validation.

    See the module docstring for how the seed's two methods run in the
    pipeline. Everything else is BaseChannelProcessor's: ``self.uow``, the
    services (``self.leads``, ``self.conversations``...), the seed's helpers
    (``get_or_create_conversation``...), ``process_messages`` and its stats.
    """

    _direct_calls: ClassVar[bool] = False

    def __init__(
        self,
        channel_type: str,
        queue_url: str | None = None,
        config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(channel_type, str) or not channel_type:
            raise ConfigError(f"{type(self).__name__}: channel_type must be a non-empty string")
        if config is not None and not isinstance(config, Mapping):
            raise ConfigError(f"{type(self).__name__}: config must be a mapping, not {type(config).__name__}")
        unknown = [name for name in kwargs if name not in _COLLABORATORS]
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments: {', '.join(unknown)}")
        # An instance attribute: the seed named the channel per instance, not per class.
        vars(self)["channel_type"] = channel_type
        if not type(self).default_provider or type(self).default_provider == "unknown":
            vars(self)["default_provider"] = channel_type
        collaborators = {**_provided.get({}), **kwargs}
        everything = dict(config or {})
        known = attrs.fields_dict(self.settings_class)
        super().__init__(queue_url, {k: v for k, v in everything.items() if k in known}, **collaborators)
        self.config = everything

    @classmethod
    def config_problems(cls, config: Mapping[str, Any] | None) -> list[str]:
        """Problems with the keys of ``config`` commproc knows; the processor's own keys are its business."""
        if config is None:
            return []
        if not isinstance(config, Mapping):
            return [f"expected a mapping, got {type(config).__name__} @ config"]
        known = attrs.fields_dict(cls.settings_class)
        return config_problems(cls.settings_class, {k: v for k, v in config.items() if k in known})

    # -- the seed's two methods and how the pipeline calls them -------------------------------

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        validate, process = cls.__dict__.get("validate_event"), cls.__dict__.get("process_event")
        if callable(validate) and not getattr(validate, direct.MARK, False):
            cls.validate_event = _seed_validate(validate)  # type: ignore[method-assign]
        if callable(process) and not getattr(process, direct.MARK, False):
            cls.process_event = _seed_process(process)  # type: ignore[method-assign]

    @abstractmethod
    def validate_event(self, event_data: Any) -> Any:
        """Override: True when ``event_data`` (the payload, a dict) is this channel's event, else False."""

    @abstractmethod
    def process_event(self, event_data: Any) -> Any:
        """Override: apply ``event_data`` (the payload) and return its CommunicationEvent."""

    def event_key(self, event_data: Any) -> str:
        """The dedupe key of an accepted payload: the same for a redelivery, different for another event.

        The default hashes the payload; a payload carrying the provider's
        event id should use it (``return f"acme:{event_data['id']}"``).
        """
        canonical = json.dumps(event_data, sort_keys=True, separators=(",", ":"), default=str)
        return f"{self.channel_type}:sha256:{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"

    def event_type_of(self, event_data: Any) -> str:
        """The provider event type an accepted payload is recorded under before processing."""
        value = event_data.get("event_type") if isinstance(event_data, Mapping) else None
        return value if isinstance(value, str) and value else "event"

    def create_event(self, **fields: Any) -> CommunicationEvent:
        """The seed's ``CommunicationEvent.objects.create(...)``: build the event and save it in the batch.

        ``channel`` defaults to this channel and ``provider`` to
        ``default_provider``. Only while an event is processed.
        """
        fields.setdefault("channel", self.channel_type)
        fields.setdefault("provider", self.default_provider)
        fields.setdefault("recorded_at", self.now())
        return self.uow.events.add(CommunicationEvent(**fields))

    def _accepted(self, data: Any) -> SeedEvent:
        return SeedEvent(
            data=data,
            dedupe_key=self.event_key(data),
            event_type=self.event_type_of(data),
            provider=self.default_provider,
            channel=self.channel_type,
        )

    @property
    def uow(self) -> UnitOfWork:
        inner = super().uow
        saved: set[str] | None = getattr(self._local, "seed_saved", None)
        if saved is None:
            return inner
        return cast("UnitOfWork", _NotingUnitOfWork(inner, saved))

    def _run_seed(self, method: Callable[..., Any], data: Any) -> Any:
        """Run the seed's ``process_event``; an event it saved itself is handed back to the pipeline."""
        saved: set[str] = set()
        self._local.seed_saved = saved
        try:
            result = method(self, data)
        finally:
            self._local.seed_saved = None
        if isinstance(result, CommunicationEvent) and result.id in saved:
            # Saved by the seed's code (objects.create): recorded once, by the pipeline, with its key.
            events = super().uow.events
            latest = events.get(result.id) or result
            events.delete(result.id)
            return latest
        return result  # unsaved; anything else is a contract violation the pipeline names


class _NotingEvents:
    """The batch's events, noting the ids the seed's code adds."""

    def __init__(self, inner: Any, saved: set[str]) -> None:
        self._inner = inner
        self._saved = saved

    def add(self, record: CommunicationEvent) -> CommunicationEvent:
        added: CommunicationEvent = self._inner.add(record)
        self._saved.add(added.id)
        return added

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _NotingUnitOfWork:
    """The batch's unit of work as the seed's ``process_event`` sees it; see :class:`_NotingEvents`."""

    def __init__(self, inner: UnitOfWork, saved: set[str]) -> None:
        self._inner = inner
        self.events = _NotingEvents(inner.events, saved)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _seed_validate(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def validate_event(self: SeedChannelProcessor, event_data: Any) -> Any:
        if not isinstance(event_data, EventPayload):
            return method(self, event_data)  # the seed's direct call: its own answer
        verdict = method(self, event_data.data)
        if verdict is True:
            return [self._accepted(event_data.data)]
        if verdict is False:
            raise PermanentError(
                f"{type(self).__name__}.validate_event returned False", code="validation_failed"
            )
        raise PermanentError(
            f"validate_event returned {type(verdict).__name__}; a seed-style processor returns True or False",
            code="contract_violation",
        )

    setattr(validate_event, direct.MARK, True)
    return validate_event


def _seed_process(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def process_event(self: SeedChannelProcessor, event_data: Any) -> Any:
        if isinstance(event_data, SeedEvent):
            return self._run_seed(method, event_data.data)
        if getattr(self._local, "uow", None) is not None:
            return method(self, event_data)  # a call of its own, inside a batch
        if not direct.is_raw_payload(event_data):
            raise RuntimeError(
                f"{type(self).__name__}.process_event takes the payload (a dict), "
                f"not {type(event_data).__name__}"
            )
        return direct.event_of(self.process_payload(event_data))

    setattr(process_event, direct.MARK, True)
    return process_event


if TYPE_CHECKING:

    def _is_a_channel_processor(processor: BaseChannelProcessor[Any]) -> ChannelProcessor:
        # mypy proves here that the base class meets the protocol the runtime relies on.
        return processor
