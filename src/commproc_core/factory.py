"""ProcessorFactory: channel processors from plugins, registrations and stored configs.

Plugins register a processor class under the ``commproc.channels`` entry
point group::

    [project.entry-points."commproc.channels"]
    sms = "commproc_sms:SMSProcessor"

Entry points are listed without importing them; a plugin is imported the
first time its channel is needed. A plugin that fails to import is logged
(naming its distribution) and left out of :meth:`get_supported_channels`;
asking for it by name raises :class:`ChannelLoadError` chained to the cause.

As in the seed, the factory's methods may be called on the class
(``ProcessorFactory.get_processor("sms")``): they then run on the
process-wide default factory, which :meth:`ProcessorFactory.configure` sets up
once at start-up, or which is made from the environment on first use
(``COMMPROC_DATABASE_URL``, ``COMMPROC_SCHEMA``, ``COMMPROC_TABLE_PREFIX``).
Instances (``ProcessorFactory(store, ...)``) work as before, for dependency
injection and tests.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import types
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, cast

import attrs

from commproc_core.errors import ChannelLoadError, ChannelNotFound, ConfigError, DuplicateChannelError
from commproc_core.parsing import config_problems
from commproc_core.pipeline.defaults import set_store_provider
from commproc_core.pipeline.settings import ChannelSettings
from commproc_core.ports import AgentResponder, Clock, MessageQueue, Sender, Store

__all__ = ["ENTRY_POINT_GROUP", "PROCESSOR_METHODS", "ChannelInfo", "ProcessorFactory"]

ENTRY_POINT_GROUP = "commproc.channels"
#: What a class registered as a processor must have (the runtime calls them; see ChannelProcessor).
PROCESSOR_METHODS = ("receive_messages", "process_batch", "close")

log = logging.getLogger("commproc.factory")

P = ParamSpec("P")
R = TypeVar("R")

_default: ProcessorFactory | None = None
_default_lock = threading.Lock()


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


class _OnDefault(Generic[P, R]):
    """A factory method that, looked up on the class rather than an instance, runs on the default factory.

    The seed called its factory's methods on the class; commproc keeps
    instances for dependency injection, so both spellings have to work.
    """

    def __init__(self, method: Callable[Concatenate[Any, P], R]) -> None:
        self._method = method
        functools.update_wrapper(cast("Any", self), method)

    def __get__(self, instance: object, owner: type[Any] | None = None) -> Callable[P, R]:
        if instance is None:
            instance = ProcessorFactory.default()
        return cast("Callable[P, R]", types.MethodType(self._method, instance))


def _accepted(cls: type[Any], offered: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``offered`` split into the keyword arguments ``cls()`` accepts and the rest."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return dict(offered), {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(offered), {}
    names = {p.name for p in parameters if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
    taken = {k: v for k, v in offered.items() if k in names}
    return taken, {k: v for k, v in offered.items() if k not in names}


class ProcessorFactory:
    """Creates channel processors (the seed's ProcessorFactory, without Django).

    Processors it creates share the factory's store, clock, sender and agent
    responder. ``queue_factory`` turns a queue URL into a MessageQueue (by
    default processors make an SQS queue for their URL). ``store_opener``
    opens the store the first time one is needed, for a factory that should
    not touch the database before then (the default factory does this).

    Every public method may be called on an instance or on the class; on the
    class it runs on :meth:`default`.
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
        store_opener: Callable[[], Store] | None = None,
    ) -> None:
        self._store = store
        self._store_opener = store_opener
        self._opened: Store | None = None
        self.queue_factory = queue_factory
        self.clock = clock
        self.sender = sender
        self.agent_responder = agent_responder
        self.group = group
        self._registered: dict[str, type[Any]] = {}
        self._loaded: dict[str, type[Any]] = {}
        self._broken: dict[str, ChannelLoadError] = {}
        self._lock = threading.Lock()

    @property
    def store(self) -> Store | None:
        """The store processors share; opened by ``store_opener`` on first use when there is one."""
        if self._store is None and self._store_opener is not None:
            with self._lock:
                if self._store is None:
                    self._store = self._opened = self._store_opener()
        return self._store

    @store.setter
    def store(self, store: Store | None) -> None:
        self._store = store

    # -- the process-wide default ---------------------------------------------------

    @classmethod
    def default(cls) -> ProcessorFactory:
        """The factory class-level calls use: the configured one, else one made from the environment."""
        global _default  # noqa: PLW0603 (the one process-wide default, guarded by its lock)
        factory = _default
        if factory is None:
            with _default_lock:
                if _default is None:
                    _default = ProcessorFactory.from_environment()
                factory = _default
        return factory

    @classmethod
    def configure(
        cls,
        store: Store | None = None,
        *,
        database_url: str | None = None,
        schema: str | None = None,
        table_prefix: str | None = None,
        queue_factory: Callable[[str], MessageQueue] | None = None,
        clock: Clock | None = None,
        sender: Sender | None = None,
        agent_responder: AgentResponder | None = None,
    ) -> ProcessorFactory:
        """Set up the default factory, once, at start-up; returns it.

        Pass a ``store``, or where to open one (``database_url``, ``schema``,
        ``table_prefix``; each falls back to its environment variable). The
        store is opened on first use, not now. Processors registered on the
        previous default stay registered; processors handed out before keep
        the factory they came from.
        """
        if store is not None and (database_url or schema or table_prefix):
            raise ConfigError("configure() takes a store or where to open one (database_url...), not both")
        factory = cls(
            store,
            queue_factory=queue_factory,
            clock=clock,
            sender=sender,
            agent_responder=agent_responder,
            store_opener=None if store is not None else _env_opener(database_url, schema, table_prefix),
        )
        with _default_lock:
            previous = _default
        if previous is not None:
            # Processors registered before start-up (at import time, as the seed did) stay registered.
            factory._registered.update(previous._registered)
        cls.set_default(factory)
        return factory

    @classmethod
    def set_default(cls, factory: ProcessorFactory | None) -> None:
        """Make ``factory`` the default (None: forget it, and close a store the old default opened).

        Its store is also the one processors built without a store record
        into (``SMSProcessor(queue_url)``), as the seed's shared the host's
        database.
        """
        global _default
        with _default_lock:
            previous, _default = _default, factory
            # Processors built without a store (SMSProcessor(queue_url)) use the configured one.
            set_store_provider(None if factory is None else lambda: factory.store)
        if factory is None and previous is not None and previous._opened is not None:
            previous._opened.close()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProcessorFactory:
        """A factory whose store is opened, on first use, from ``COMMPROC_DATABASE_URL`` and friends."""
        return cls(store_opener=_env_opener(None, None, None, environ))

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

    @_OnDefault
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

    @_OnDefault
    def load_error(self, channel_type: str) -> ChannelLoadError | None:
        """Why a channel fails to load (importing it if not tried yet), or None."""
        try:
            self.get_processor_class(channel_type)
        except ChannelLoadError as exc:
            return exc
        return None

    @_OnDefault
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

    @_OnDefault
    def register_processor(self, channel_type: str, processor_class: type[Any]) -> None:
        """Serve ``channel_type`` with ``processor_class``, over any installed plugin.

        The class must have what the runtime calls (:data:`PROCESSOR_METHODS`;
        see :class:`~commproc_core.ports.ChannelProcessor`); subclasses of
        BaseChannelProcessor and SeedChannelProcessor have.
        """
        if not isinstance(processor_class, type):
            raise TypeError(f"processor_class must be a class, got {type(processor_class).__name__}")
        missing = [name for name in PROCESSOR_METHODS if not callable(getattr(processor_class, name, None))]
        if missing:
            raise TypeError(
                f"{processor_class.__qualname__} is not a channel processor: it has no "
                f"{', '.join(missing)} (subclass BaseChannelProcessor, or see ChannelProcessor)"
            )
        with self._lock:
            self._registered[channel_type] = processor_class
            self._broken.pop(channel_type, None)

    @_OnDefault
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

    @_OnDefault
    def get_processor(
        self, channel_type: str, queue_url: str | None = None, config: Mapping[str, Any] | None = None
    ) -> Any:
        """A processor for ``channel_type`` reading ``queue_url`` with ``config``.

        Without ``queue_url`` (as in the seed) the channel's active
        configuration in the store gives the queue and, unless ``config`` is
        given, the config; ConfigError names the channel when there is none,
        or more than one. :meth:`build_processor` makes one with no queue.
        """
        cls = self.get_processor_class(channel_type)
        if not queue_url:
            stored = self._active_config(channel_type)
            queue_url = stored.queue_url
            if config is None:
                config = stored.config
        return self._build(cls, queue_url, config)

    @_OnDefault
    def build_processor(
        self, channel_type: str, queue_url: str | None = None, config: Mapping[str, Any] | None = None
    ) -> Any:
        """A processor for ``channel_type``; without ``queue_url``, one with no queue (Lambda, replay)."""
        return self._build(self.get_processor_class(channel_type), queue_url, config)

    def _build(
        self,
        cls: type[Any],
        queue_url: str | None,
        config: Mapping[str, Any] | None,
        *,
        open_store: bool = True,
    ) -> Any:
        # open_store=False: a store not opened yet is not opened for this (a config check).
        offered: dict[str, Any] = {
            name: value
            for name, value in (
                ("store", self.store if open_store else self._store),
                ("clock", self.clock),
                ("sender", self.sender),
                ("agent_responder", self.agent_responder),
            )
            if value is not None
        }
        if self.queue_factory is not None and queue_url:
            offered["queue"] = self.queue_factory(queue_url)
        accepted, rest = _accepted(cls, offered)
        # Positional, as the seed called processor_class(queue_url, config).
        make: Callable[..., Any] = cls
        if not rest:
            return make(queue_url, dict(config or {}), **accepted)
        from commproc_core.pipeline.compat import (  # rarely needed
            SeedChannelProcessor,
            provided_collaborators,
        )

        if issubclass(cls, SeedChannelProcessor):
            # The seed's subclasses take (queue_url, config) only; the base
            # picks the factory's collaborators up from here.
            with provided_collaborators(rest):
                return make(queue_url, dict(config or {}), **accepted)
        raise ConfigError(
            f"{cls.__qualname__}() accepts no {', '.join(sorted(rest))}, which this factory would pass: "
            "accept them as keyword arguments (BaseChannelProcessor does), or subclass SeedChannelProcessor"
        )

    def _active_config(self, channel_type: str) -> Any:
        store = self.store
        if store is None:
            raise ConfigError(
                f"no queue_url for channel {channel_type!r}, and no store to look up its configuration in: "
                "pass queue_url, or give the factory a store (ProcessorFactory.configure(...))"
            )
        with store.unit_of_work() as uow:
            configs = uow.channel_configs.find(
                channel_type=channel_type, is_active=True, order_by="created_at"
            )
        if not configs:
            raise ConfigError(
                f"no queue_url given and no active configuration for channel {channel_type!r}: pass "
                f"queue_url, or store one (`commproc channels add {channel_type} QUEUE_URL`)"
            )
        if len(configs) > 1:
            raise ConfigError(
                f"channel {channel_type!r} has {len(configs)} active configurations: pass the queue_url "
                "of the one you mean, or get_all_processors() for all of them"
            )
        return configs[0]

    @_OnDefault
    def get_all_processors(self) -> list[Any]:
        """One processor per active channel configuration in the store.

        A configuration whose channel is missing or broken, or whose config
        is invalid, is logged and skipped: one bad channel does not stop the
        others.
        """
        store = self.store
        if store is None:
            raise ConfigError("ProcessorFactory.get_all_processors needs a store")
        with store.unit_of_work() as uow:
            configs = uow.channel_configs.find(is_active=True, order_by="created_at")
        return self.get_processors((c.channel_type, c.queue_url, c.config) for c in configs)

    @_OnDefault
    def get_processors(self, channels: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[Any]:
        """A processor per (channel type, queue URL, config); broken ones are logged and skipped."""
        processors = []
        for channel_type, queue_url, config in channels:
            try:
                processors.append(self.get_processor(channel_type, queue_url, config))
            except (ChannelNotFound, ChannelLoadError, DuplicateChannelError, ConfigError) as exc:
                log.error("channel %s on queue %s skipped: %s", channel_type, queue_url, exc)
        return processors

    @_OnDefault
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
        channel raises :class:`ChannelNotFound`. (The seed returned True for
        a valid config: here an empty list is the valid answer.)
        """
        if not isinstance(channel_type, str):
            raise ChannelNotFound(f"<{type(channel_type).__name__}>", [i.name for i in self.list_channels()])
        cls = self.get_processor_class(channel_type)
        own_check = getattr(cls, "config_problems", None)
        if callable(own_check):
            # A class that judges its own config (SeedChannelProcessor: the seed's free-form config).
            problems = list(own_check(config))
        else:
            settings_class = getattr(cls, "settings_class", ChannelSettings)
            if not attrs.has(settings_class):
                raise TypeError(f"{cls.__qualname__}.settings_class must be an attrs class")
            problems = config_problems(settings_class, config)
        if not problems:
            try:
                self._build(cls, None, config, open_store=False)
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


def _env_opener(
    url: str | None, schema: str | None, table_prefix: str | None, environ: Mapping[str, str] | None = None
) -> Callable[[], Store]:
    """Opens the store named by the arguments, each falling back to its environment variable when opened."""

    def open_from_environment() -> Store:
        from commproc_core.stores.sql.factory import open_store_from_environment

        return open_store_from_environment(url, schema=schema, table_prefix=table_prefix, environ=environ)

    return open_from_environment
