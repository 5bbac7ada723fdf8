"""Strict parsing of plain mappings into attrs classes: settings and untrusted input.

:func:`parse_settings` structures a mapping into an attrs class with a strict
cattrs converter: unknown keys and wrong types are problems, each reported
with its field path (``config.agent_config.prompt``), never silently coerced.
Fields carry range and emptiness checks in their metadata (:func:`between`).
No I/O: every layer may use it.
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
    "POSITIVE",
    "between",
    "config_problems",
    "not_blank",
    "parse_settings",
    "settings_converter",
    "strict_type_hook",
]

S = TypeVar("S")


def between(low: float, high: float | None = None, *, open_low: bool = False) -> dict[str, Any]:
    """Field metadata: the value must lie in [low, high] (or (low, high] with open_low)."""

    def check(value: float) -> str | None:
        too_low = value <= low if open_low else value < low
        if too_low or (high is not None and value > high):
            upper = "" if high is None else f" and at most {high}"
            return f"must be {'above' if open_low else 'at least'} {low}{upper}, got {value}"
        return None

    return {"check": check}


#: Field metadata: the value must be above zero.
POSITIVE = between(0, open_low=True)

#: Field metadata: the text must not be empty or blank.
not_blank: dict[str, Any] = {"check": lambda v: None if v.strip() else "must not be empty"}


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
