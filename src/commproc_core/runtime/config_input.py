"""Reading configuration input safely: files, JSON text and plain-data checks, with field paths.

A channel config or a settings file comes from an operator's keyboard, a
deployment tool or a copy-paste, and is stored as JSON in the database. Every
way such input can be hostile (nesting thousands deep, integers of thousands
of digits, NaN, NUL characters and lone surrogates that PostgreSQL refuses,
files that are not UTF-8, TOML dates) ends here in a ConfigError naming the
field, never in a traceback, and never echoes the value.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from commproc_core.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "config_from_text",
    "config_value_problems",
    "load_channel_config",
    "locate_crash",
    "path_key",
    "read_toml",
    "shown_value",
    "text_problem",
]

#: Deepest nesting a config may have; real ones use two or three levels.
MAX_DEPTH = 32
#: Largest settings or config file read.
MAX_FILE_BYTES = 1024 * 1024


def path_key(key: str) -> str:
    """``key`` as a part of a field path; an unprintable or endless one as a short repr."""
    return key if key.isprintable() and len(key) <= 60 and not text_problem(key) else shown_value(key)


def shown_value(raw: str) -> str:
    """Enough of a rejected value to recognise it, never a wall of text."""
    return repr(raw if len(raw) <= 40 else raw[:37] + "...")


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
                stack.append((child, f"{where}.{path_key(key)}", depth + 1))
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
    return "config" + "".join(f".{path_key(str(part))}" for part in found) if found else None


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
