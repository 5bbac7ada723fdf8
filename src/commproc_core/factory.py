"""ProcessorFactory: channel processors from plugins, registrations and stored configs.

Plugins register a processor class under the ``commproc.channels`` entry
point group::

    [project.entry-points."commproc.channels"]
    sms = "commproc_sms:SMSProcessor"

Entry points are listed without importing them; a plugin is imported the
first time its channel is needed. A plugin that fails to import is logged
(naming its distribution) and left out of :meth:`get_supported_channels`;
asking for it by name raises :class:`ChannelLoadError` chained to the cause.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import attrs

from commproc_core.errors import ChannelLoadError, ChannelNotFound, ConfigError, DuplicateChannelError
from commproc_core.parsing import config_problems
from commproc_core.pipeline.settings import ChannelSettings
from commproc_core.ports import AgentResponder, Clock, MessageQueue, Sender, Store

__all__ = ["ENTRY_POINT_GROUP", "ChannelInfo", "ProcessorFactory"]

ENTRY_POINT_GROUP = "commproc.channels"

log = logging.getLogger("commproc.factory")


@attrs.frozen
class ChannelInfo:
    """A channel as discovered: where it comes from, before (or after) loading it."""

    name: str
    distribution: str
    version: str
    target: str
    #: Other distributions registering the same name (a conflict) .
    conflicts: tuple[str, ...] = ()


def _dist(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown", "unknown"
    return str(dist.metadata["Name"] or dist.name), str(dist.version)


class ProcessorFactory:
    """Creates channel processors (the seed's ProcessorFactory, without Django).

    Processors it creates share the factory's store, clock, sender and agent
    responder. ``queue_factory`` turns a queue URL into a MessageQueue (by
    default processors make an SQS queue for their URL).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        queue_factory: Callable[[str], MessageQueue] | None = None,
        clock: Clock | None = None,
        sender: Sender | None = None,
        agent_responder: AgentResponder | None = None,
        group: str = ENTRY_POINT_GROUP,
    ) -> None:
        self.store = store
        self.queue_factory = queue_factory
        self.clock = clock
        self.sender = sender
        self.agent_responder = agent_responder
        self.group = group
        self._registered: dict[str, type[Any]] = {}
        self._loaded: dict[str, type[Any]] = {}
        self._broken: dict[str, ChannelLoadError] = {}
        self._lock = threading.Lock()

    # -- discovery ---------------------------------------------------------------

    def _entry_points(self) -> dict[str, list[EntryPoint]]:
        found: dict[str, list[EntryPoint]] = {}
        seen: set[tuple[str, str, str]] = set()
        for ep in entry_points(group=self.group):
            distribution, _ = _dist(ep)
            # One distribution visible twice on sys.path is not a conflict.
            if (ep.name, distribution, ep.value) in seen:
                continue
            seen.add((ep.name, distribution, ep.value))
            found.setdefault(ep.name, []).append(ep)
        return found

    def list_channels(self) -> list[ChannelInfo]:
        """Every channel: registered ones and installed plugins, none imported."""
        infos = {
            name: ChannelInfo(name, "registered", "-", f"{cls.__module__}:{cls.__qualname__}")
            for name, cls in self._registered.items()
        }
        for name, eps in self._entry_points().items():
            if name in infos:
                continue
            distribution, version = _dist(eps[0])
            others = tuple(_dist(ep)[0] for ep in eps[1:])
            infos[name] = ChannelInfo(name, distribution, version, eps[0].value, others)
        return [infos[name] for name in sorted(infos)]

    def load_error(self, channel_type: str) -> ChannelLoadError | None:
        """Why a channel fails to load (importing it if not tried yet), or None."""
        try:
            self.get_processor_class(channel_type)
        except ChannelLoadError as exc:
            return exc
        return None

    def get_supported_channels(self) -> list[str]:
        """Names of the channels that load; broken plugins are logged and left out."""
        supported = []
        for info in self.list_channels():
            try:
                self.get_processor_class(info.name)
            except (ChannelLoadError, DuplicateChannelError) as exc:
                log.warning("skipping channel %r: %s", info.name, exc)
                continue
            supported.append(info.name)
        return supported

    def register_processor(self, channel_type: str, processor_class: type[Any]) -> None:
        """Serve ``channel_type`` with ``processor_class``, over any installed plugin."""
        if not isinstance(processor_class, type):
            raise TypeError(f"processor_class must be a class, got {processor_class!r}")
        with self._lock:
            self._registered[channel_type] = processor_class
            self._broken.pop(channel_type, None)

    def get_processor_class(self, channel_type: str) -> type[Any]:
        """The processor class for ``channel_type``, importing its plugin on first use."""
        if channel_type in self._registered:
            return self._registered[channel_type]
        with self._lock:
            if channel_type in self._loaded:
                return self._loaded[channel_type]
            if channel_type in self._broken:
                raise self._broken[channel_type]
            eps = self._entry_points().get(channel_type)
            if not eps:
                known = set(self._registered) | set(self._entry_points())
                raise ChannelNotFound(channel_type, sorted(known))
            if len(eps) > 1:
                raise DuplicateChannelError(channel_type, [_dist(ep)[0] for ep in eps])
            ep = eps[0]
            distribution, _ = _dist(ep)
            try:
                loaded = ep.load()
                if not isinstance(loaded, type):
                    raise TypeError(f"{ep.value} is not a class")
            except Exception as exc:
                error = ChannelLoadError(channel_type, distribution, ep.value, exc)
                error.__cause__ = exc
                self._broken[channel_type] = error
                log.warning(
                    "channel %r from distribution %r failed to load: %s", channel_type, distribution, exc
                )
                raise error from exc
            self._loaded[channel_type] = loaded
            return loaded

    # -- processors -----------------------------------------------------------

    def get_processor(
        self, channel_type: str, queue_url: str | None = None, config: Mapping[str, Any] | None = None
    ) -> Any:
        """A processor for ``channel_type`` reading ``queue_url`` with ``config``."""
        cls = self.get_processor_class(channel_type)
        kwargs: dict[str, Any] = {
            name: value
            for name, value in (
                ("store", self.store),
                ("clock", self.clock),
                ("sender", self.sender),
                ("agent_responder", self.agent_responder),
            )
            if value is not None
        }
        if self.queue_factory is not None and queue_url:
            kwargs["queue"] = self.queue_factory(queue_url)
        return cls(queue_url=queue_url, config=dict(config or {}), **kwargs)

    def get_all_processors(self) -> list[Any]:
        """One processor per active channel configuration in the store.

        A configuration whose channel is missing or broken, or whose config
        is invalid, is logged and skipped: one bad channel does not stop the
        others.
        """
        if self.store is None:
            raise ConfigError("ProcessorFactory.get_all_processors needs a store")
        with self.store.unit_of_work() as uow:
            configs = uow.channel_configs.find(is_active=True, order_by="created_at")
        return self.get_processors((c.channel_type, c.queue_url, c.config) for c in configs)

    def get_processors(self, channels: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[Any]:
        """A processor per (channel type, queue URL, config); broken ones are logged and skipped."""
        processors = []
        for channel_type, queue_url, config in channels:
            try:
                processors.append(self.get_processor(channel_type, queue_url, config))
            except (ChannelNotFound, ChannelLoadError, DuplicateChannelError, ConfigError) as exc:
                log.error("channel %s on queue %s skipped: %s", channel_type, queue_url, exc)
        return processors

    def validate_processor_config(
        self, channel_type: str, config: Mapping[str, Any] | None, *, raise_on_error: bool = False
    ) -> list[str]:
        """Problems with ``config`` for ``channel_type``, each with its field path; [] when valid.

        The config is parsed into the channel's settings class; when that
        succeeds, a processor is built from it as :meth:`get_processor` would
        (no queue is opened, the store is not touched), so a value only the
        processor can judge (a malformed public key) is a problem here too,
        not a surprise when the worker starts. Whatever ``config`` holds, the
        answer is a list of problems or [], never an exception; an unknown
        channel raises :class:`ChannelNotFound`.
        """
        if not isinstance(channel_type, str):
            raise ChannelNotFound(f"<{type(channel_type).__name__}>", [i.name for i in self.list_channels()])
        cls = self.get_processor_class(channel_type)
        settings_class = getattr(cls, "settings_class", ChannelSettings)
        if not attrs.has(settings_class):
            raise TypeError(f"{cls.__qualname__}.settings_class must be an attrs class")
        problems = config_problems(settings_class, config)
        if not problems:
            try:
                self.get_processor(channel_type, None, config)
            except ConfigError as exc:
                problems = exc.problems or [f"{exc} @ config"]
            except Exception as exc:
                # The plugin's own code failed on a config its settings
                # accepted: a plugin bug, reported rather than raised so an
                # operator sees which channel and config it is.
                log.warning(
                    "channel %r: building its processor failed with %s",
                    channel_type,
                    type(exc).__name__,
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                problems = [f"the {channel_type} processor cannot be built ({type(exc).__name__}) @ config"]
        if problems and raise_on_error:
            raise ConfigError(f"invalid config for channel {channel_type!r}", problems)
        return problems
