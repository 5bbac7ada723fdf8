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

import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from commproc_core.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
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
#: Deepest nesting a config may have; real ones use two or three levels.
MAX_DEPTH = 32
#: Largest settings or config file read.
MAX_FILE_BYTES = 1024 * 1024
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
        raise ValueError(f"expected TYPE=QUEUE_URL, got {_shown(text)}")
    return ChannelSpec(channel_type=channel_type.strip(), queue_url=queue_url.strip())


def parse_processor_spec(text: str) -> tuple[str, str]:
    """``voice=acme.voice:VoiceProcessor`` as (channel type, import path)."""
    name, sep, target = text.partition("=")
    if not sep or not name.strip() or ":" not in target:
        raise ValueError(f"expected NAME=module:Class, got {_shown(text)}")
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


def _key(key: str) -> str:
    # A key is part of a field path; an unprintable or endless one is shown as a short repr.
    return key if key.isprintable() and len(key) <= 60 and not text_problem(key) else _shown(key)


def _shown(raw: str) -> str:
    # Enough of a rejected value to recognise it, never a wall of text.
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


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
        shown = _shown(value) if isinstance(value, str) else repr(value)
        problems.append(f"{message}, got {shown} @ {where}")
        return None
    return value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; ConfigError when it is missing, too large, not UTF-8 or malformed."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # the same parser, as a dependency on Python 3.10
        import tomli as tomllib
    raw = _read_bytes(path)
    try:
        data: dict[str, Any] = tomllib.loads(_utf8(raw, path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"{path}: arrays or tables nested too deeply (at most {MAX_DEPTH} levels)"
        ) from None
    except ValueError:
        # int() refuses more than 4,300 digits; no setting needs a number that long.
        raise ConfigError(f"{path}: a number is too long to be a setting") from None
    return data


def _read_bytes(path: str | Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KiB; a configuration never is")
    return raw


def _utf8(raw: bytes, path: str | Path) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (undecodable byte at offset {exc.start})") from None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text (NUL, lone surrogates), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def config_value_problems(value: Any, path: str = "config") -> list[str]:
    """Problems of a decoded config as plain data, each with its field path; [] when it is fine.

    A channel config is stored as JSON in the database, so it must hold only
    text, numbers, booleans, null, lists and tables: no NUL characters or lone
    surrogates (PostgreSQL refuses them), no NaN or infinity, no integer
    beyond 64 bits, no dates (TOML has them, JSON does not), and at most
    :data:`MAX_DEPTH` levels of nesting. Values are never echoed.
    """
    problems: list[str] = []
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            problems.append(f"nested deeper than {MAX_DEPTH} levels @ {where}")
            continue
        if isinstance(item, Mapping):
            for key, child in item.items():
                if not isinstance(key, str):
                    problems.append(f"keys must be text, got {type(key).__name__} @ {where}")
                    continue
                problem = text_problem(key)
                if problem:
                    problems.append(f"a key {problem} @ {where}")
                    continue
                stack.append((child, f"{where}.{_key(key)}", depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f"{where}[{index}]", depth + 1) for index, child in enumerate(item))
        elif isinstance(item, str):
            problem = text_problem(item)
            if problem:
                problems.append(f"{problem} @ {where}")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -(2**63) <= item < 2**63:
                problems.append(f"integer out of range (64 bits at most) @ {where}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                problems.append(f"expected a finite number, got {item} @ {where}")
        else:
            problems.append(
                f"expected text, a number, a boolean, a list or a table, got {type(item).__name__} @ {where}"
            )
    return sorted(problems)


def _from_file(data: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key == "channels":
            values["channels"] = _channels_from_file(value, problems)
        elif key == "processors":
            if isinstance(value, Mapping) and all(isinstance(v, str) for v in value.values()):
                found = [
                    f"{text_problem(f'{k}={v}')} @ processors.{_key(k)}"
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
            problems.append(f"unknown setting @ {_key(key)}")
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
        problems.extend(f"unknown key @ {where}.{_key(key)}" for key in sorted(unknown))
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
                problems.append(f"expected {kind.__name__}, got {_shown(raw)} @ ${variable}")
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


def locate_crash(check: Callable[[Mapping[str, Any]], Any], config: Mapping[str, Any]) -> str | None:
    """The path of the config field that makes ``check`` crash (raise anything but ConfigError), if one does.

    A plugin's settings check should report problems, not raise; when it
    does raise, leaving one field out at a time finds the field to name, so
    the operator is told where to look even then. Nested tables are searched
    a few levels down; at most a few hundred checks run.
    """
    budget = [200]

    def crashes(candidate: Mapping[str, Any]) -> bool:
        budget[0] -= 1
        try:
            check(candidate)
        except ConfigError:
            return False
        except Exception:
            return True
        return False

    def without(root: Mapping[str, Any], trail: tuple[str, ...]) -> dict[str, Any]:
        head, *rest = trail
        copy = dict(root)
        if rest:
            copy[head] = without(root[head], tuple(rest))
        else:
            del copy[head]
        return copy

    def search(node: Mapping[str, Any], trail: tuple[str, ...]) -> tuple[str, ...] | None:
        for key in list(node)[:50]:
            if budget[0] <= 0:
                return None
            if not crashes(without(config, (*trail, key))):
                child = node[key]
                if isinstance(child, Mapping) and child and len(trail) < 3:
                    return search(child, (*trail, key)) or (*trail, key)
                return (*trail, key)
        return None

    if not crashes(config):
        return None
    found = search(config, ())
    return "config" + "".join(f".{_key(str(part))}" for part in found) if found else None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a config can hold")


def config_from_text(text: str, source: str) -> dict[str, Any]:
    """A channel config given as JSON text; ConfigError naming ``source`` when it is not a plain object.

    Every way JSON can be hostile is a clear error, never a traceback: deep
    nesting, integers of thousands of digits, NaN, NUL characters and lone
    surrogates (see :func:`config_value_problems`).
    """
    problem = text_problem(text)
    if problem:
        raise ConfigError(f"{source} {problem}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        # Some messages end in "at" ("Invalid control character at"); the position follows.
        what = exc.msg.removesuffix(" at")
        raise ConfigError(
            f"{source} is not valid JSON: {what} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply (at most {MAX_DEPTH} levels)") from None
    except ValueError as exc:
        # NaN/Infinity (refused above), or an integer beyond int()'s 4,300 digits.
        reason = str(exc) if "config" in str(exc) else "a number is too long to be a config value"
        raise ConfigError(f"{source} is not a usable config: {reason}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{source} must hold a JSON object, got {type(value).__name__}")
    problems = config_value_problems(value)
    if problems:
        raise ConfigError(f"invalid config in {source}", problems)
    return value


def load_channel_config(path: str | Path) -> dict[str, Any]:
    """A channel config from a ``.toml`` or JSON file, checked as :func:`config_from_text` checks text."""
    if str(path).endswith(".toml"):
        data = read_toml(path)
        problems = config_value_problems(data)
        if problems:
            raise ConfigError(f"invalid config in {path}", problems)
        return data
    return config_from_text(_utf8(_read_bytes(path), path), str(path))
