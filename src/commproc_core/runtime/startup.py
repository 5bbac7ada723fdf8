"""Start-up checks of the worker: every channel loads, every queue answers, the store answers.

A worker that starts half-configured looks healthy while it drops a channel
on the floor. So :func:`load_channels` builds every configured channel and
collects what fails (an unknown or misspelled channel type, a broken plugin,
a bad config, a queue URL that is no SQS URL), and :func:`preflight` asks
each queue and the store to answer once. Unless the operator allows a
degraded start, any problem stops the start-up with a
:class:`StartupError` naming each; allowed, the problems are reported by
``/readyz`` until they clear.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs

from commproc_core.errors import ConfigError
from commproc_core.redact import redact
from commproc_core.runtime.masking import mask_urls
from commproc_core.runtime.queue_urls import queue_url_problem
from commproc_core.runtime.settings import ChannelSpec

if TYPE_CHECKING:
    from commproc_core.factory import ProcessorFactory
    from commproc_core.ports import ChannelProcessor, Store

__all__ = [
    "ChannelProblem",
    "StartupError",
    "build_processors",
    "error_code",
    "load_channels",
    "load_object",
    "preflight",
    "queue_name",
    "stored_channels",
]

log = logging.getLogger("commproc.worker")


def load_object(target: str) -> Any:
    """The object named ``module:attribute``; ConfigError when it cannot be imported."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"expected module:attribute, got {target!r}")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(f"cannot load {target!r}: {type(exc).__name__}: {exc}") from exc
    return value


def queue_name(queue_url: str | None) -> str:
    """The last path segment of a queue URL: a metric label without the account id."""
    return (queue_url or "-").rstrip("/").rsplit("/", 1)[-1] or "-"


@attrs.frozen
class ChannelProblem:
    """Why a channel (or the store) cannot work: ``reason`` is a short code, ``detail`` says more."""

    channel: str
    queue: str
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.channel} on {self.queue}: {self.detail}"


class StartupError(ConfigError):
    """The worker would start half-configured; ``problems`` names every channel, queue or store at fault."""

    def __init__(self, problems: Sequence[ChannelProblem]) -> None:
        self.channel_problems = tuple(problems)
        super().__init__(
            f"the worker cannot start ({len(problems)} problem(s); pass --allow-degraded to start "
            "anyway and have /readyz report them)",
            [str(p) for p in problems],
        )


def error_code(exc: BaseException) -> str:
    """The short code of an error: its ``code`` attribute, else its class name in snake case."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    name = type(exc).__name__
    # ChannelNotFound -> channel_not_found: the same shape as the error codes.
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _detail(exc: BaseException) -> str:
    return mask_urls(redact(str(exc) or type(exc).__name__))[:500]


def load_channels(
    factory: ProcessorFactory, specs: Sequence[ChannelSpec], overrides: Mapping[str, Any]
) -> tuple[list[Any], list[ChannelProblem]]:
    """A processor per spec (``overrides`` applied to each config), and a problem per spec that failed."""
    from commproc_core.errors import ChannelLoadError, ChannelNotFound, DuplicateChannelError

    processors: list[Any] = []
    problems: list[ChannelProblem] = []
    for spec in specs:
        name = queue_name(spec.queue_url)
        url_problem = queue_url_problem(spec.queue_url)
        if url_problem is not None:
            problems.append(ChannelProblem(spec.channel_type, name, "bad_queue_url", url_problem))
            continue
        try:
            processors.append(
                factory.get_processor(spec.channel_type, spec.queue_url, {**spec.config, **overrides})
            )
        except (ChannelNotFound, ChannelLoadError, DuplicateChannelError, ConfigError) as exc:
            problems.append(ChannelProblem(spec.channel_type, name, error_code(exc), _detail(exc)))
        except Exception as exc:
            # A plugin's settings check that breaks on an odd value: still this channel's problem only.
            from commproc_core.runtime.settings import locate_crash

            config = {**spec.config, **overrides}
            where = locate_crash(partial(factory.validate_processor_config, spec.channel_type), config)
            detail = f"its config could not be checked ({type(exc).__name__}); check the value's type"
            problems.append(
                ChannelProblem(
                    spec.channel_type, name, "invalid_config", detail + (f" @ {where}" if where else "")
                )
            )
    return processors, problems


def check_queue(processor: ChannelProcessor) -> ChannelProblem | None:
    """Ask a processor's queue to answer once (queues without a ``check`` method are taken as they are)."""
    channel = str(getattr(processor, "channel_type", "") or type(processor).__name__)
    queue = getattr(processor, "queue", None)
    check = getattr(queue, "check", None)
    if check is None:
        return None
    try:
        attributes = check()
    except Exception as exc:
        return ChannelProblem(channel, queue_name(processor.queue_url), error_code(exc), _detail(exc))
    if isinstance(attributes, Mapping) and "RedrivePolicy" not in attributes:
        log.warning(
            "queue %s has no dead-letter queue (RedrivePolicy): a message that keeps failing for a "
            "passing reason is retried until it expires; see docs/running.md",
            queue_name(processor.queue_url),
        )
    return None


def check_store(store: Store) -> ChannelProblem | None:
    """Ask the store to answer (and, for SQL, to have a current schema)."""
    try:
        check_schema = getattr(store, "check_schema", None)
        if check_schema is not None:
            check_schema()
        store.ping()
    except Exception as exc:
        return ChannelProblem("store", "-", error_code(exc), _detail(exc))
    return None


def preflight(processors: Sequence[ChannelProcessor], store: Store) -> list[ChannelProblem]:
    """Every queue's and the store's problem at start-up; [] when all answer."""
    problems = [p for p in (check_queue(processor) for processor in processors) if p is not None]
    store_problem = check_store(store)
    if store_problem is not None:
        problems.append(store_problem)
    return problems


def stored_channels(store: Store) -> tuple[ChannelSpec, ...]:
    """The active channel configurations of ``store``, oldest first."""
    with store.unit_of_work() as uow:
        configs = uow.channel_configs.find(is_active=True, order_by="created_at")
    return tuple(
        ChannelSpec(channel_type=c.channel_type, queue_url=c.queue_url, config=c.config) for c in configs
    )


def build_processors(
    factory: ProcessorFactory, specs: Sequence[ChannelSpec], overrides: Mapping[str, Any]
) -> list[Any]:
    """A processor per spec, ``overrides`` applied to each config; channels that fail are logged and skipped.

    :func:`~commproc_core.runtime.startup.load_channels` returns the problems instead.
    """
    processors, problems = load_channels(factory, specs, overrides)
    for problem in problems:
        log.error("channel skipped: %s", problem)
    return processors
