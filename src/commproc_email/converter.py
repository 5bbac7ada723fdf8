"""The distribution's one cattrs converter: provider payloads into wire classes.

Wire classes (in the ``providers`` modules) are attrs classes named for what
the provider documents, holding only the fields commproc reads. Unknown keys
are ignored because providers add fields without notice. Field names are
Python's; the provider's spelling is declared once per class
(``__wire_case__``) or per field
(``attrs.field(metadata={"wire": "event-data"})``).

Scalars are strict: a number where a string belongs is an error, not
``str(42)``, so that a malformed payload fails with its field path instead of
flowing on with invented values. Errors never quote the offending value.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar, Union

import attrs
import cattrs
from cattrs.cols import is_sequence, list_structure_factory
from cattrs.errors import ClassValidationError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, override

from commproc_core.errors import InvalidPayload
from commproc_core.parsing import strict_type_hook

__all__ = ["CONVERTER", "StrOrList", "parse_timestamp", "structure"]

T = TypeVar("T")

#: A field some providers send as a string and others as a list of strings.
StrOrList = Union[str, list[str]]  # noqa: UP007 - a runtime object cattrs dispatches on

_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?"
    r"(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_timestamp(value: object) -> datetime:
    """An aware UTC datetime from ISO 8601 text or epoch seconds.

    Postmark writes seven fractional digits and sometimes a local offset; SES
    writes milliseconds and ``Z``; SendGrid and Mailgun send epoch seconds.
    Python 3.10's ``fromisoformat`` takes none of the first three.
    """
    if isinstance(value, bool):
        raise TypeError("expected a timestamp, got bool")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError("epoch timestamp out of range") from exc
    if not isinstance(value, str):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    match = _ISO.match(value.strip())
    if match is None:
        raise ValueError("not an ISO 8601 timestamp")
    frac = (match["frac"] or "")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}")
    tz = match["tz"]
    if tz and tz not in ("Z", "z"):
        sign = 1 if tz[0] == "+" else -1
        digits = tz[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        parsed = parsed.replace(tzinfo=timezone(sign * offset))
    else:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _snake(name: str) -> str:
    return name


_CASES: dict[str, Callable[[str], str]] = {"camel": _camel, "pascal": _pascal, "snake": _snake}


def _wire_name(cls: type[Any], field: attrs.Attribute[Any]) -> str:
    explicit = field.metadata.get("wire")
    if explicit is not None:
        return str(explicit)
    return _CASES[getattr(cls, "__wire_case__", "snake")](field.name)


def _str_or_list(value: Any, _: type[Any]) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise TypeError(f"expected a string or a list of strings, got {type(value).__name__}")


def _optional_str_or_list(value: Any, kind: type[Any]) -> str | list[str] | None:
    return None if value is None else _str_or_list(value, kind)


def _strict_lists(converter: cattrs.Converter) -> Any:
    def factory(kind: Any) -> Any:
        inner = list_structure_factory(kind, converter)

        def structure(value: Any, target: Any) -> list[Any]:
            # cattrs alone would turn a string into a list of its characters.
            if not isinstance(value, list):
                raise TypeError(f"expected a list, got {type(value).__name__}")
            result: list[Any] = inner(value, target)
            return result

        return structure

    return factory


def _is_list(kind: Any) -> bool:
    origin: Any = typing.get_origin(kind)
    return bool(is_sequence(kind)) and origin is list


def _any_mapping(value: Any, _: type[Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _register_hooks(converter: cattrs.Converter) -> None:
    """Every hook of the converter, in one place."""
    for kind in (str, int, float, bool):
        converter.register_structure_hook(kind, strict_type_hook(kind))
    converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))
    converter.register_structure_hook_func(lambda t: t == StrOrList, _str_or_list)
    converter.register_structure_hook_func(lambda t: t == (StrOrList | None), _optional_str_or_list)
    converter.register_structure_hook_func(lambda t: t == dict[str, Any], _any_mapping)
    converter.register_structure_hook_factory(_is_list, _strict_lists(converter))

    def wire_classes(cls: type[Any]) -> Any:
        renames: dict[str, Any] = {f.name: override(rename=_wire_name(cls, f)) for f in attrs.fields(cls)}
        generated = make_dict_structure_fn(cls, converter, **renames)

        def structure_object(value: Any, target: type[Any]) -> Any:
            # The generated function only tests ``key in value``; a list would
            # pass as an object with every optional field left at its default.
            if not isinstance(value, Mapping):
                raise TypeError(f"expected an object, got {type(value).__name__}")
            return generated(value, target)

        return structure_object

    converter.register_structure_hook_factory(attrs.has, wire_classes)


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    _register_hooks(converter)
    return converter


CONVERTER = _converter()


def _format(exc: BaseException, kind: type[Any] | None) -> str:
    # Our own wording so no error ever quotes a value from the payload.
    if isinstance(exc, KeyError):
        return "required field missing"
    name = getattr(kind, "__name__", None) or "the documented type"
    if isinstance(exc, (TypeError, ValueError)) and str(exc).startswith(("expected", "not an", "epoch")):
        return str(exc)
    return f"invalid value, expected {name}"


_SEGMENT = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[([^\]]*)\]")
# A mapping key as cattrs writes it into a path: the key's repr in brackets.
_MAP_KEY = re.compile(r"""\[(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]""")


def _descend(kind: Any) -> Any:
    """The attrs class or container inside an Optional field type, if any."""
    if typing.get_origin(kind) in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return members[0] if len(members) == 1 else kind
    return kind


def _wire_path(cls: type[Any], root: str, path: str) -> str:
    """Rewrite a transform_error path from attribute names to the provider's key names.

    cattrs names the Python attribute (``$.event_data.recipient``); the
    person reading the error has the provider's JSON in front of them
    (``$.event-data.recipient``). Mapping keys become ``[*]``.
    """
    # A mapping key is payload text (a tag name, a metadata key that may be
    # an address): it never reaches an error. ``[*]`` stands for it.
    path = _MAP_KEY.sub("[*]", path)
    if not path.startswith(root):
        return path
    out = root
    kind: Any = cls
    for match in _SEGMENT.finditer(path[len(root) :]):
        name, index = match.groups()
        kind = _descend(kind)
        if name is not None:
            if attrs.has(kind):
                fields = attrs.fields_dict(kind)
                hints = typing.get_type_hints(kind)
                if name in fields:
                    out += f".{_wire_name(kind, fields[name])}"
                    kind = hints.get(name, Any)
                    continue
            out += f".{name}"
            kind = Any
        else:
            out += f"[{index}]"
            args = typing.get_args(kind)
            kind = args[-1] if args else Any
    return out


def structure(data: Any, cls: type[T], *, provider: str, path: str = "$") -> T:
    """``data`` as ``cls``, or InvalidPayload naming the first bad field by its payload path."""
    if attrs.has(cls) and not isinstance(data, Mapping):
        raise InvalidPayload(f"{provider}: expected an object, got {type(data).__name__}", field=path)
    try:
        return CONVERTER.structure(data, cls)
    except (ClassValidationError, IterableValidationError) as exc:
        problems = cattrs.transform_error(exc, path=path, format_exception=_format)
    except (TypeError, ValueError, AttributeError) as exc:
        problems = [f"{_format(exc, cls)} @ {path}"]
    # Keys go before the line is split: a key may itself contain " @ ".
    problems = [_MAP_KEY.sub("[*]", line) for line in problems]
    first = problems[0] if problems else f"invalid @ {path}"
    message, _, field = first.rpartition(" @ ")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise InvalidPayload(f"{provider}: {message or first}{more}", field=_wire_path(cls, path, field or path))
