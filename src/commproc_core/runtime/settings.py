"""Worker settings, from a TOML file, ``COMMPROC_*`` environment variables and command-line flags.

Later sources win: built-in defaults, then the TOML file, then the
environment, then flags. A TOML file looks like::

    database_url = "postgresql://commproc@db/commproc"
    pollers = 2
    log_format = "json"
    metrics_port = 9108

    [processors]                 # extra channel types, by import path
    voice = "acme.voice:VoiceProcessor"

    [[channels]]                 # when present, used instead of the store's configs
    channel_type = "sms"
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/sms-inbound"
    config = { agent_mode = false }

TOML is read with :mod:`tomllib` (``tomli`` on Python 3.10).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from commproc_core.errors import ConfigError
from commproc_core.runtime.config_input import (
    MAX_DEPTH,
    config_from_text,
    config_value_problems,
    load_channel_config,
    locate_crash,
    path_key,
    read_toml,
    shown_value,
    text_problem,
)

__all__ = [
    "ENV_PREFIX",
    "MAX_DEPTH",
    "ChannelSpec",
    "WorkerSettings",
    "channel_overrides",
    "config_from_text",
    "config_value_problems",
    "load_channel_config",
    "load_settings",
    "locate_crash",
    "parse_channel_spec",
    "parse_duration",
    "parse_processor_spec",
    "read_toml",
    "text_problem",
]

ENV_PREFIX = "COMMPROC_"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class ChannelSpec:
    """One channel for the worker: which processor reads which queue, with what config."""

    channel_type: str
    queue_url: str
    config: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """What ``commproc run`` needs; every field has a working default.

    ``batch_size``, ``wait_time``, ``visibility_timeout`` and ``heartbeat``
    are None unless set: each channel's own config then decides (see
    :class:`~commproc_core.pipeline.settings.ChannelSettings`); when set, they override
    it for every channel.
    """

    #: None: ``$COMMPROC_DATABASE_URL``, then ``sqlite:///commproc.db``.
    database_url: str | None = None
    #: Empty: the active channel configurations stored in the database.
    channels: tuple[ChannelSpec, ...] = ()
    #: Extra channel types served by a class given as ``module:Class``.
    processors: Mapping[str, str] = attrs.field(factory=dict)
    #: Poller threads per queue.
    pollers: int = 1
    batch_size: int | None = None
    wait_time: int | None = None
    visibility_timeout: int | None = None
    #: Fraction of the visibility timeout after which in-flight batches are extended.
    heartbeat: float | None = None
    #: How long SIGTERM waits for in-flight batches before giving up (seconds).
    shutdown_timeout: float = 30.0
    #: Poller backoff after a queue or store error: first delay and cap (seconds).
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    #: boto3 region and SQS endpoint; None leaves them to boto3's own configuration.
    region: str | None = None
    endpoint_url: str | None = None
    log_format: str = "text"
    log_level: str = "INFO"
    #: Serve /healthz, /readyz and /metrics on this port (0: any free port); None: no server.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    #: Seconds between approximate queue depth samples (metrics only).
    depth_interval: float = 30.0
    #: ``module:callable`` returning a Sender; enables the outbox dispatcher.
    sender: str | None = None
    #: Seconds between outbox passes when the outbox is empty.
    outbox_interval: float = 1.0
    #: PostgreSQL schema and table name prefix of commproc's tables (a host's layout).
    schema: str | None = None
    table_prefix: str = ""
    #: Start even when a channel does not load or a queue does not answer; /readyz
    #: then answers 503 naming them. Off: such a start-up fails, naming each problem.
    allow_degraded: bool = False


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h``, ``2d`` as seconds; raises ValueError otherwise."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    factor = 1
    if value and value[-1] in units:
        factor = units[value[-1]]
        value = value[:-1]
    seconds = float(value) * factor
    if not 0 < seconds < float("inf"):  # also refuses nan
        raise ValueError(f"not a positive duration: {text!r}")
    return seconds


def parse_channel_spec(text: str) -> ChannelSpec:
    """``sms=https://sqs.../queue`` as a ChannelSpec with an empty config."""
    channel_type, sep, queue_url = text.partition("=")
    if not sep or not channel_type.strip() or not queue_url.strip():
        raise ValueError(f"expected TYPE=QUEUE_URL, got {shown_value(text)}")
    return ChannelSpec(channel_type=channel_type.strip(), queue_url=queue_url.strip())


def parse_processor_spec(text: str) -> tuple[str, str]:
    """``voice=acme.voice:VoiceProcessor`` as (channel type, import path)."""
    name, sep, target = text.partition("=")
    if not sep or not name.strip() or ":" not in target:
        raise ValueError(f"expected NAME=module:Class, got {shown_value(text)}")
    return name.strip(), target.strip()


def _positive(value: float) -> str | None:
    return None if value > 0 else "must be positive"


def _range(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


# name -> (type, check). Types drive the parsing of environment strings.
_FIELDS: dict[str, tuple[type, Callable[[Any], str | None] | None]] = {
    "database_url": (str, None),
    "pollers": (int, _range(1, 64)),
    "batch_size": (int, _range(1, 10)),
    "wait_time": (int, _range(0, 20)),
    "visibility_timeout": (int, _range(1, 43200)),
    "heartbeat": (float, _range(0.05, 0.95)),
    "shutdown_timeout": (float, _positive),
    "backoff_base": (float, _positive),
    "backoff_max": (float, _positive),
    "region": (str, None),
    "endpoint_url": (str, None),
    "log_format": (str, _one_of(LOG_FORMATS)),
    "log_level": (str, _one_of(LOG_LEVELS)),
    "metrics_port": (int, _range(0, 65535)),
    "metrics_host": (str, None),
    "depth_interval": (float, _positive),
    "sender": (str, None),
    "outbox_interval": (float, _positive),
    "schema": (str, None),
    "table_prefix": (str, None),
    "allow_degraded": (bool, None),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _parse_env(kind: type, raw: str) -> Any:
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError(raw)
    return kind(raw)


def _typed(name: str, value: Any, where: str, problems: list[str]) -> Any:
    kind, check = _FIELDS[name]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        problems.append(f"expected {kind.__name__}, got {type(value).__name__} @ {where}")
        return None
    if isinstance(value, str) and text_problem(value):
        problems.append(f"{text_problem(value)} @ {where}")
        return None
    if name == "log_level":
        value = str(value).upper()
    message = check(value) if check is not None else None
    if message:
        shown = shown_value(value) if isinstance(value, str) else repr(value)
        problems.append(f"{message}, got {shown} @ {where}")
        return None
    return value


def _from_file(data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "channels":
            values["channels"] = _channels_from_file(value, problems)
        elif key == "processors":
            if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
                found = [
                    f"{text_problem(f'{k}={v}')} @ processors.{path_key(k)}"
                    for k, v in value.items()
                    if text_problem(f"{k}={v}")
                ]
                problems.extend(found)
                if not found:
                    values["processors"] = dict(value)
            else:
                problems.append("expected a table of strings @ processors")
        elif key in _FIELDS:
            values[key] = _typed(key, value, key, problems)
        else:
            problems.append(f"unknown setting @ {path_key(key)}")
    return values


def _channels_from_file(value: Any, problems: list[str]) -> tuple[ChannelSpec, ...]:
    if not isinstance(value, list):
        problems.append("expected an array of tables ([[channels]]) @ channels")
        return ()
    specs = []
    for index, entry in enumerate(value):
        where = f"channels[{index}]"
        if not isinstance(entry, Mapping):
            problems.append(f"expected a table @ {where}")
            continue
        unknown = set(entry) - {"channel_type", "queue_url", "config"}
        problems.extend(f"unknown key @ {where}.{path_key(key)}" for key in sorted(unknown))
        channel_type, queue_url = entry.get("channel_type"), entry.get("queue_url")
        config = entry.get("config", {})
        for name, field in (("channel_type", channel_type), ("queue_url", queue_url)):
            if not isinstance(field, str) or not field:
                problems.append(f"required string missing @ {where}.{name}")
        if not isinstance(config, Mapping):
            problems.append(f"expected a table @ {where}.config")
            continue
        if isinstance(channel_type, str) and isinstance(queue_url, str):
            spec = ChannelSpec(channel_type=channel_type, queue_url=queue_url, config=dict(config))
            found = spec_problems(spec, where, f"{where}.queue_url")
            found += config_value_problems(spec.config, f"{where}.config")
            problems.extend(found)
            if not found:
                specs.append(spec)
    return tuple(specs)


def spec_problems(spec: ChannelSpec, where: str, url_where: str | None = None) -> list[str]:
    """Problems of a channel spec's type and queue URL (the worker polls SQS), with their paths."""
    from commproc_core.runtime.queue_urls import queue_url_problem

    problems = []
    problem = text_problem(spec.channel_type)
    if problem:
        problems.append(f"channel type {problem} @ {where}")
    problem = text_problem(spec.queue_url) or queue_url_problem(spec.queue_url)
    if problem:
        problems.append(f"{problem} @ {url_where or where}")
    return problems


def _from_env(environ: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (kind, _) in _FIELDS.items():
        variable = ENV_PREFIX + name.upper()
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        value: Any = raw
        if kind is not str:
            try:
                value = _parse_env(kind, raw)
            except ValueError:
                problems.append(f"expected {kind.__name__}, got {shown_value(raw)} @ ${variable}")
                continue
        values[name] = _typed(name, value, f"${variable}", problems)
    try:
        channels = _env_list(environ, "COMMPROC_CHANNELS", parse_channel_spec)
        found = [p for spec in channels for p in spec_problems(spec, "$COMMPROC_CHANNELS")]
        problems.extend(found)
        if channels and not found:
            values["channels"] = tuple(channels)
    except ValueError as exc:
        problems.append(f"{exc} @ $COMMPROC_CHANNELS")
    try:
        processors = _env_list(environ, "COMMPROC_PROCESSORS", parse_processor_spec)
        if processors:
            values["processors"] = dict(processors)
    except ValueError as exc:
        problems.append(f"{exc} @ $COMMPROC_PROCESSORS")
    return values


def _env_list(environ: Mapping[str, str], variable: str, parse: Callable[[str], T]) -> list[T]:
    # Comma-separated: neither SQS queue URLs nor import paths contain commas.
    return [parse(part) for part in environ.get(variable, "").split(",") if part.strip()]


def _from_flags(flags: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None or (key in ("channels", "processors") and not value):
            continue
        if key == "channels":
            found = [p for spec in value for p in spec_problems(spec, "--channel")]
            problems.extend(found)
            if not found:
                values[key] = tuple(value)
        elif key == "processors":
            values[key] = dict(value)
        elif key in _FIELDS:
            values[key] = _typed(key, value, "--" + key.replace("_", "-"), problems)
        else:
            raise TypeError(f"unknown worker setting {key!r}")
    return values


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> WorkerSettings:
    """Merge defaults, ``config_file`` (or ``$COMMPROC_CONFIG``), the environment and ``flags``.

    ``flags`` maps setting names to values, None meaning "not given";
    ``channels`` is a sequence of ChannelSpec and ``processors`` a mapping.
    Every problem is collected and raised as one ConfigError.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    merged: dict[str, Any] = {}
    path = config_file or env.get("COMMPROC_CONFIG") or None
    if path:
        merged.update(_from_file(read_toml(path), problems))
    merged.update(_from_env(env, problems))
    merged.update(_from_flags(flags or {}, problems))
    if problems:
        raise ConfigError("invalid worker settings", problems)
    if merged.get("backoff_max", 60.0) < merged.get("backoff_base", 1.0):
        raise ConfigError("invalid worker settings", ["must not be below backoff_base @ backoff_max"])
    return WorkerSettings(**merged)


def channel_overrides(settings: WorkerSettings) -> dict[str, Any]:
    """The channel config keys the worker settings override (only those that were set)."""
    pairs = {
        "batch_size": settings.batch_size,
        "wait_time": settings.wait_time,
        "visibility_timeout": settings.visibility_timeout,
        "heartbeat_fraction": settings.heartbeat,
    }
    return {key: value for key, value in pairs.items() if value is not None}
