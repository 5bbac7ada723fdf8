"""Channel settings: the ``config`` mapping of a channel configuration, typed.

Each processor declares an attrs class (``settings_class``) for its config.
:func:`parse_settings` structures a plain mapping into it with a strict
converter: unknown keys and wrong types are problems, each reported with its
field path (``$.agent_config.prompt``), never silently coerced.
"""

from __future__ import annotations

import typing
from collections import abc
from collections.abc import Mapping
from types import UnionType
from typing import Any, TypeVar, Union

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from commproc_core.errors import ConfigError

__all__ = [
    "AgentConfig",
    "ChannelSettings",
    "config_problems",
    "parse_settings",
    "settings_converter",
    "strict_type_hook",
]

S = TypeVar("S")


def _between(low: float, high: float | None = None, *, open_low: bool = False) -> dict[str, Any]:
    """Field metadata: the value must lie in [low, high] (or (low, high] with open_low)."""

    def check(value: float) -> str | None:
        too_low = value <= low if open_low else value < low
        if too_low or (high is not None and value > high):
            upper = "" if high is None else f" and at most {high}"
            return f"must be {'above' if open_low else 'at least'} {low}{upper}, got {value}"
        return None

    return {"check": check}


_POSITIVE = _between(0, open_low=True)


@attrs.frozen(kw_only=True)
class AgentConfig:
    """How the AI agent answers: its instructions and the context it is given."""

    prompt: str = attrs.field(metadata={"check": lambda v: None if v.strip() else "must not be empty"})
    context: dict[str, Any] = attrs.field(factory=dict)
    #: How many earlier messages of the conversation the agent sees.
    history_limit: int = attrs.field(default=10, metadata=_POSITIVE)
    #: Cap on a reply's length in characters; longer replies are cut.
    max_reply_chars: int = attrs.field(default=1600, metadata=_POSITIVE)


@attrs.frozen(kw_only=True)
class ChannelSettings:
    """Settings every channel understands; plugins subclass to add their own."""

    #: Hand inbound messages to the AI agent (the seed's ``agent_mode``).
    agent_mode: bool = False
    agent_config: AgentConfig | None = None
    #: Create a lead for an unknown sender instead of recording the event without one.
    create_leads: bool = True
    #: Seconds a received message stays invisible to other consumers.
    visibility_timeout: int = attrs.field(default=60, metadata=_between(1, 43200))
    #: Long-poll wait for receives, 0 to 20 seconds.
    wait_time: int = attrs.field(default=20, metadata=_between(0, 20))
    #: Messages per receive, 1 to 10.
    batch_size: int = attrs.field(default=10, metadata=_between(1, 10))
    #: First retry delay after a transient failure; doubles with each receive.
    retry_base_seconds: int = attrs.field(default=10, metadata=_POSITIVE)
    #: Longest retry delay.
    max_backoff_seconds: int = attrs.field(default=900, metadata=_between(1, 43200))
    #: Extend visibility once processing has used this fraction of the timeout.
    heartbeat_fraction: float = attrs.field(default=0.5, metadata=_between(0.0, 0.95, open_low=True))


def strict_type_hook(kind: type[Any]) -> Any:
    """A cattrs structure hook accepting only real ``kind`` values (an int for a float too).

    cattrs' default hooks coerce (``"5"`` becomes 5, ``True`` becomes 1);
    untrusted input and configuration must say what they mean.
    """

    def structure(value: Any, _: type[Any]) -> Any:
        # bool is an int to Python but never a valid count; a float with no
        # fraction is not an int either. Config must say what it means.
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def settings_converter() -> cattrs.Converter:
    """The strict converter used for every channel's settings."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind in (bool, int, float, str):
        converter.register_structure_hook(kind, strict_type_hook(kind))

    def mapping(value: Any, _: type[Any]) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping, got {type(value).__name__}")
        return dict(value)

    converter.register_structure_hook_func(lambda t: t == dict[str, Any], mapping)
    return converter


_CONVERTER = settings_converter()


def _describe(exc: BaseException, type_: Any) -> str:
    # A settings class's own check (an attrs validator or __attrs_post_init__)
    # explains itself; keep its words instead of cattrs' bare "invalid value".
    if type(exc) is ValueError and str(exc):
        return f"invalid value: {exc}"
    return cattrs.v.format_exception(exc, type_)


def _problems(exc: BaseException) -> list[str]:
    if isinstance(exc, (ClassValidationError, ForbiddenExtraKeysError)):
        return cattrs.transform_error(exc, path="config", format_exception=_describe)
    return [f"{exc} @ config"]


def _is_collection(type_: Any) -> bool:
    candidates = [
        type_,
        *(getattr(type_, "__args__", ()) if typing.get_origin(type_) in (Union, UnionType) else ()),
    ]
    return any(
        typing.get_origin(t) in (list, tuple, set, frozenset, abc.Sequence, abc.Set, abc.MutableSequence)
        for t in candidates
    )


def _check_values(cls: type[Any], raw: Mapping[str, Any], path: str) -> list[str]:
    # Range and emptiness checks run on the raw mapping so they are reported
    # alongside type problems, each with its path.
    problems: list[str] = []
    attrs.resolve_types(cls)
    for field in attrs.fields(cls):
        if field.name not in raw:
            continue
        value = raw[field.name]
        check = field.metadata.get("check")
        if check is not None and isinstance(value, (int, float, str)) and not isinstance(value, bool):
            message = check(value)
            if message:
                problems.append(f"{message} @ {path}.{field.name}")
        if isinstance(value, (str, bytes)) and _is_collection(field.type):
            # cattrs would happily split "STOP" into S, T, O, P.
            problems.append(f"expected a list, got a string @ {path}.{field.name}")
        nested = [t for t in (*getattr(field.type, "__args__", ()), field.type) if attrs.has(t)]
        if nested and isinstance(value, Mapping):
            problems.extend(_check_values(nested[0], value, f"{path}.{field.name}"))
    return problems


def parse_settings(settings_class: type[S], config: Mapping[str, Any] | None) -> S:
    """Structure ``config`` into ``settings_class`` or raise ConfigError listing every problem."""
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError(
            "invalid channel config", [f"expected a mapping, got {type(config).__name__} @ config"]
        )
    raw = dict(config or {})
    problems = _check_values(settings_class, raw, "config")
    try:
        settings = _CONVERTER.structure(raw, settings_class)
    except Exception as exc:
        problems = _problems(exc) + problems
    if problems:
        raise ConfigError(f"invalid {settings_class.__name__}", problems)
    return settings


def config_problems(settings_class: type[Any], config: Mapping[str, Any] | None) -> list[str]:
    """Every problem with ``config`` for ``settings_class``; empty when it is valid."""
    try:
        parse_settings(settings_class, config)
    except ConfigError as exc:
        return exc.problems
    return []
