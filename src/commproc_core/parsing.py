"""Strict parsing of plain mappings into attrs classes: settings and untrusted input.

:func:`parse_settings` structures a mapping into an attrs class with a strict
cattrs converter: unknown keys and wrong types are problems, each reported
with its field path (``config.agent_config.prompt``), the type expected and
the kind of value found, never the value itself (settings hold secrets).
Fields carry range and emptiness checks in their metadata (:func:`between`).

Whatever the input (any shape, any depth, any Python value), parsing either
returns the settings or raises :class:`~commproc_core.errors.ConfigError`;
and what it accepts can be stored as JSON on every store: text without NUL
characters or lone surrogates, integers that fit in 64 bits, finite numbers,
nesting at most :data:`MAX_DEPTH` deep. No I/O: every layer may use it.
"""

from __future__ import annotations

import math
import re
import typing
from collections import abc
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, override

from commproc_core.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "POSITIVE",
    "between",
    "config_problems",
    "not_blank",
    "parse_settings",
    "settings_converter",
    "strict_type_hook",
]

S = TypeVar("S")

#: How deep free-form values (``agent_config.context``) may nest.
MAX_DEPTH = 32
# Integers beyond 64 bits cannot be stored (PostgreSQL's JSON and BIGINT)
# nor, past 4,300 digits, even printed.
_INT_BOUND = 2**63
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


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


class _Problem(Exception):
    """One problem with a value, in words fit for an operator (no value quoted)."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


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


def _text_problem(value: str) -> str | None:
    bad = _NOT_TEXT.search(value)
    if bad is None:
        return None
    if bad.group(0) == "\x00":
        return "must not contain NUL characters"
    return "is not valid Unicode text (it holds a lone surrogate)"


def _setting(kind: type[Any]) -> Callable[[Any, Any], Any]:
    expected = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}[kind]

    def structure(value: Any, _: Any) -> Any:
        if isinstance(value, bool) is not (kind is bool):
            raise _Problem(f"expected {expected}, got {_kind(value)}")
        if kind is float and isinstance(value, int):
            if abs(value) >= _INT_BOUND:
                raise _Problem("is too large a number")
            return float(value)
        if not isinstance(value, kind):
            raise _Problem(f"expected {expected}, got {_kind(value)}")
        if kind is int and abs(value) >= _INT_BOUND:
            raise _Problem("is too large (integers must fit in 64 bits)")
        if kind is float and not math.isfinite(value):
            raise _Problem("must be a finite number")
        if kind is str:
            problem = _text_problem(value)
            if problem:
                raise _Problem(problem)
        return value

    return structure


def _plain(value: Any, _: Any = None) -> Any:
    """Free-form data (``Any``): what JSON can hold, checked without recursion."""
    pending: list[tuple[Any, int, str]] = [(value, 0, "")]
    while pending:
        item, depth, where = pending.pop()
        at = f" at {where}" if where else ""
        if depth > MAX_DEPTH:
            raise _Problem(f"is nested more than {MAX_DEPTH} levels deep{at}")
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if abs(item) >= _INT_BOUND:
                raise _Problem(f"holds a number too large (integers must fit in 64 bits){at}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise _Problem(f"holds a number that is not finite{at}")
        elif isinstance(item, str):
            problem = _text_problem(item)
            if problem:
                raise _Problem(f"holds text that {problem}{at}")
        elif isinstance(item, Mapping):
            for key, nested in item.items():
                if not isinstance(key, str) or _text_problem(key):
                    raise _Problem(f"holds a key that is not valid text{at}")
                pending.append((nested, depth + 1, f"{where}[{key[:40]!r}]"))
        elif isinstance(item, (list, tuple)):
            pending.extend((nested, depth + 1, f"{where}[{i}]") for i, nested in enumerate(item))
        else:
            raise _Problem(
                f"holds {_kind(item)}, which is not text, a number, a boolean, a list or a mapping{at}"
            )
    return value


_SEQUENCE_ORIGINS: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    abc.MutableSequence: list,
    tuple: tuple,
    abc.Sequence: tuple,
    set: set,
    abc.MutableSet: set,
    frozenset: frozenset,
    abc.Set: frozenset,
}
_MAPPING_ORIGINS = (dict, abc.Mapping, abc.MutableMapping)


def _origin(type_: Any) -> Any:
    return typing.get_origin(type_) or type_


def _sequence_hook(converter: cattrs.Converter, type_: Any) -> Callable[[Any, Any], Any]:
    make = _SEQUENCE_ORIGINS[_origin(type_)]
    args = typing.get_args(type_)
    fixed = make is tuple and bool(args) and not (len(args) == 2 and args[1] is Ellipsis)
    element_types = list(args) if fixed else [args[0] if args else Any]
    hooks = [converter.get_structure_hook(t) for t in element_types]

    def structure(value: Any, _: Any) -> Any:
        # Only a real list: a string would be split into letters ("HALT"
        # becoming H, A, L, T) and a mapping into its keys.
        if not isinstance(value, (list, tuple)):
            raise _Problem(f"expected a list, got {_kind(value)}")
        if fixed and len(value) != len(element_types):
            raise _Problem(f"expected a list of {len(element_types)} items, got {len(value)}")
        result, errors = [], []
        for index, item in enumerate(value):
            position = index if fixed else 0
            try:
                result.append(hooks[position](item, element_types[position]))
            except Exception as exc:
                errors.append(_noted(exc, index, element_types[position]))
        if errors:
            raise IterableValidationError("invalid items", errors, type_)
        return make(result)

    return structure


def _mapping_hook(converter: cattrs.Converter, type_: Any) -> Callable[[Any, Any], Any]:
    args = typing.get_args(type_)
    # Settings are stored as JSON, whose keys are text: a bare dict means dict[str, Any].
    key_type, value_type = args if len(args) == 2 else (str, Any)
    key_hook = converter.get_structure_hook(key_type)
    value_hook = converter.get_structure_hook(value_type)

    def structure(value: Any, _: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise _Problem(f"expected a mapping, got {_kind(value)}")
        result, errors = {}, []
        for raw_key, item in value.items():
            try:
                key = key_hook(raw_key, key_type)
            except Exception as exc:
                raise _Problem(f"holds a key that is not valid ({_describe(exc, key_type)})") from exc
            try:
                result[key] = value_hook(item, value_type)
            except Exception as exc:
                errors.append(_noted(exc, key, value_type))
        if errors:
            raise IterableValidationError("invalid values", errors, type_)
        return result

    return structure


def _noted(exc: Exception, index: Any, type_: Any) -> Exception:
    # The note is how cattrs.transform_error learns the path ([index] or
    # ['key']); cattrs' own collection hooks attach it the same way.
    note = IterableValidationNote(f"Structuring @ {index!r}"[:100], index, type_)
    object.__setattr__(exc, "__notes__", [*getattr(exc, "__notes__", []), note])
    return exc


class _CheckFailed(_Problem):
    """A field's own check (range, emptiness...) refused a value of the right type."""


def _checked(inner: Callable[[Any, Any], Any], check: Callable[[Any], str | None]) -> Any:
    def structure(value: Any, type_: Any) -> Any:
        result = inner(value, type_)
        # Checks are written for the field's type; None (an unset optional) has nothing to check.
        if isinstance(result, (int, float, str)) and not isinstance(result, bool):
            try:
                message = check(result)
            except Exception as exc:
                raise _Problem(f"could not be checked ({type(exc).__name__})") from exc
            if message:
                raise _CheckFailed(message)
        return result

    return structure


def _attrs_hook(converter: cattrs.Converter, cls: type[Any]) -> Callable[[Any, Any], Any]:
    attrs.resolve_types(cls)
    overrides: dict[str, Any] = {
        field.name: override(struct_hook=_checked(converter.get_structure_hook(field.type), check))
        for field in attrs.fields(cls)
        if (check := field.metadata.get("check")) is not None
    }
    checked = make_dict_structure_fn(cls, converter, **overrides)
    unchecked = make_dict_structure_fn(cls, converter) if overrides else None

    def structure(value: Any, type_: Any) -> Any:
        if not isinstance(value, Mapping):
            raise _Problem(f"expected a mapping, got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                raise _Problem(f"keys must be strings, got {_kind(key)}")
        try:
            return checked(value, type_)
        except ClassValidationError as exc:
            if unchecked is None or not all(isinstance(e, _CheckFailed) for e in exc.exceptions):
                raise
            # Every type is right and only checks failed: build the class
            # without them too, so its own cross-field rules (its
            # __attrs_post_init__) are reported in the same round.
            try:
                unchecked(value, type_)
            except ClassValidationError as more:
                raise ClassValidationError(exc.message, [*exc.exceptions, *more.exceptions], cls) from exc
            raise

    return structure


def settings_converter() -> cattrs.Converter:
    """The strict converter used for every channel's settings.

    Scalars are never coerced; every collection at every depth wants a real
    list (never a string) or mapping; free-form values (``Any``) must be
    plain JSON-like data; range and emptiness checks from field metadata
    run once the field's type is right.
    """
    converter = cattrs.Converter(forbid_extra_keys=True)
    for kind in (bool, int, float, str):
        converter.register_structure_hook(kind, _setting(kind))
    converter.register_structure_hook_func(lambda t: t is Any, _plain)
    converter.register_structure_hook_factory(
        lambda t: _origin(t) in _SEQUENCE_ORIGINS, lambda t: _sequence_hook(converter, t)
    )
    converter.register_structure_hook_factory(
        lambda t: _origin(t) in _MAPPING_ORIGINS, lambda t: _mapping_hook(converter, t)
    )
    converter.register_structure_hook_factory(attrs.has, lambda cls: _attrs_hook(converter, cls))
    return converter


_CONVERTER = settings_converter()


def _describe(exc: BaseException, type_: Any) -> str:
    # Words for an operator; never the value, which may be a secret.
    if isinstance(exc, _Problem) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, ForbiddenExtraKeysError):
        names = sorted(str(k) for k in exc.extra_fields)
        shown = ", ".join(repr(n[:40]) for n in names[:10]) + (", ..." if len(names) > 10 else "")
        return f"unknown {'key' if len(names) == 1 else 'keys'} {shown}"
    if isinstance(exc, KeyError):
        return "required key missing"
    if type(exc) is ValueError and exc.args:
        # Raised by the settings class itself (__attrs_post_init__, a
        # validator, per item or per field), which explains its own rules.
        return str(exc.args[0])
    name = getattr(type_, "__name__", None)
    return f"expected {name}" if name else f"invalid value ({type(exc).__name__})"


def _problems(exc: BaseException) -> list[str]:
    if isinstance(exc, (ClassValidationError, IterableValidationError)):
        return cattrs.transform_error(exc, path="config", format_exception=_describe)
    return [f"{_describe(exc, None)} @ config"]


def parse_settings(settings_class: type[S], config: Mapping[str, Any] | None) -> S:
    """Structure ``config`` into ``settings_class`` or raise ConfigError listing every problem."""
    if config is not None and not isinstance(config, Mapping):
        raise ConfigError("invalid channel config", [f"expected a mapping, got {_kind(config)} @ config"])
    try:
        return _CONVERTER.structure(dict(config or {}), settings_class)
    except Exception as exc:
        try:
            problems = _problems(exc)
        except Exception as unexpected:  # a problem we could not even describe is still a problem
            problems = [f"invalid config ({type(unexpected).__name__}) @ config"]
    raise ConfigError(f"invalid {settings_class.__name__}", problems)


def config_problems(settings_class: type[Any], config: Mapping[str, Any] | None) -> list[str]:
    """Every problem with ``config`` for ``settings_class``; empty when it is valid."""
    try:
        parse_settings(settings_class, config)
    except ConfigError as exc:
        return exc.problems
    return []
