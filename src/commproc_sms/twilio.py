"""Twilio's webhook parameters, structured by the distribution's one cattrs converter.

Twilio posts form parameters (``MessageSid``, ``From``, ``MediaUrl0``...); by
the time they reach a queue they may have become a JSON object whose numbers
lost their quotes. :func:`parse_twilio` turns either into
:class:`TwilioInbound` (a message someone sent us) or :class:`TwilioStatus`
(a status callback for a message), keeping unknown parameters in ``extra``
because Twilio adds parameters without notice.

A status callback needs only ``MessageSid`` and ``MessageStatus`` (or the
deprecated ``SmsSid``/``SmsStatus``): that is enough to update the message
by its SID. A status value Twilio does not document is refused with code
``unknown_status``, never guessed at.

Validation errors name Twilio's parameter (``MessageSid``), never its value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NewType

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from commproc_core.errors import InvalidPayload, PermanentError, UnknownEventShape

__all__ = [
    "INBOUND",
    "STATUS",
    "STATUSES",
    "Sid",
    "TwilioInbound",
    "TwilioMedia",
    "TwilioStatus",
    "converter",
    "determine_kind",
    "parse_twilio",
    "twilio_param",
]

#: The two kinds of Twilio messaging webhook.
INBOUND = "inbound_message"
STATUS = "status_update"

#: Every message status Twilio documents (lower-case).
STATUSES = frozenset(
    {
        "queued",
        "sending",
        "sent",
        "failed",
        "delivered",
        "undelivered",
        "receiving",
        "received",
        "accepted",
        "scheduled",
        "read",
        "partially_delivered",
        "canceled",
    }
)

#: A Twilio resource id (``SM...``, ``MG...``, ``AC...``).
Sid = NewType("Sid", str)

_SID = re.compile(r"[A-Za-z]{2}[A-Za-z0-9]{1,62}")
_MEDIA = re.compile(r"Media(Url|ContentType)(\d{1,3})")
# Statuses an inbound message itself carries; a payload with these and a
# body is a message, not a callback about one.
_INBOUND_STATUSES = frozenset({"received", "receiving"})


class _FieldProblem(ValueError):
    """A value problem whose message is safe to show (it never holds the value)."""


@attrs.frozen(kw_only=True)
class TwilioMedia:
    """One ``MediaUrlN`` with its ``MediaContentTypeN``."""

    url: str
    content_type: str | None = None


@attrs.frozen(kw_only=True)
class TwilioInbound:
    """An incoming SMS, MMS or WhatsApp message webhook."""

    message_sid: Sid
    account_sid: Sid
    from_: str
    to: str
    body: str = ""
    messaging_service_sid: Sid | None = None
    num_media: int = 0
    num_segments: int | None = None
    media: tuple[TwilioMedia, ...] = ()
    sms_status: str | None = None
    api_version: str | None = None
    from_city: str | None = None
    from_state: str | None = None
    from_zip: str | None = None
    from_country: str | None = None
    to_city: str | None = None
    to_state: str | None = None
    to_zip: str | None = None
    to_country: str | None = None
    #: WhatsApp: the sender's profile name and WhatsApp id.
    profile_name: str | None = None
    wa_id: str | None = None
    message_type: str | None = None
    #: Advanced Opt-Out: ``STOP``, ``START`` or ``HELP`` when Twilio recognised a keyword.
    opt_out_type: str | None = None
    #: WhatsApp: the sender's business-scoped user id (``whatsapp:US.1234``)
    #: when ``From`` is their phone number.
    external_user_id: str | None = None
    #: Parameters this class does not name, as received.
    extra: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class TwilioStatus:
    """A status callback for a message (usually one we sent).

    Only the SID and the status are required: minimal callbacks (and
    courier's reading of them) carry little else.
    """

    message_sid: Sid
    message_status: str
    account_sid: Sid | None = None
    from_: str | None = None
    to: str | None = None
    messaging_service_sid: Sid | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: ``YYMMDDhhmm`` (UTC) when the carrier reported the final status.
    raw_dlr_done_date: str | None = None
    sms_status: str | None = None
    api_version: str | None = None
    #: WhatsApp callbacks: ``whatsapp``, and ``READ`` for read receipts.
    channel_prefix: str | None = None
    event_type: str | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)


def twilio_param(attribute: str) -> str:
    """Twilio's parameter name for an attribute: ``message_sid`` -> ``MessageSid``."""
    return "".join(part.capitalize() for part in attribute.rstrip("_").split("_"))


_INTERNAL = {"media": "_media", "extra": "_extra"}


def _known(cls: type[Any]) -> frozenset[str]:
    return frozenset(twilio_param(a.name) for a in attrs.fields(cls) if a.name not in _INTERNAL)


_KNOWN = {TwilioInbound: _known(TwilioInbound), TwilioStatus: _known(TwilioStatus)}


def _text(value: Any, _: Any) -> str:
    # JSON turns digit-only parameters (From, ErrorCode, NumMedia) into
    # numbers; they are still the same parameter.
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise _FieldProblem(f"expected text or a number, got {type(value).__name__}")


def _count(value: Any, _: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    else:
        raise _FieldProblem("expected a whole number")
    if number < 0:
        raise _FieldProblem("must not be negative")
    return number


def _sid(value: Any, _: Any) -> Sid:
    text = _text(value, str).strip()
    if not _SID.fullmatch(text):
        raise _FieldProblem("not a Twilio SID (two letters, then letters and digits)")
    return Sid(text)


def _register_hooks(conv: cattrs.Converter) -> None:
    """Every structuring rule of the distribution, in one place."""
    conv.register_structure_hook(str, _text)
    conv.register_structure_hook(int, _count)
    conv.register_structure_hook(Sid, _sid)
    for cls in (TwilioInbound, TwilioStatus):
        renames = {
            a.name: override(rename=_INTERNAL.get(a.name) or twilio_param(a.name)) for a in attrs.fields(cls)
        }
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **renames))  # type: ignore[arg-type]


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    _register_hooks(conv)
    return conv


#: The commproc-sms converter.
converter = _make_converter()


def _status_value(data: Mapping[str, Any]) -> Any:
    """``MessageStatus``, or the deprecated ``SmsStatus`` a callback may carry alone."""
    status = data.get("MessageStatus")
    if status in (None, "") and "Body" not in data and "NumMedia" not in data:
        legacy = data.get("SmsStatus")
        # "received" is what an inbound message says of itself.
        if isinstance(legacy, str) and legacy.strip().lower() not in _INBOUND_STATUSES:
            return legacy
    return status


def determine_kind(data: Mapping[str, Any]) -> str:
    """``inbound_message`` or ``status_update``; UnknownEventShape for anything else."""
    status = _status_value(data)
    has_content = "Body" in data or "NumMedia" in data
    if (
        isinstance(status, str)
        and status.strip()
        and not (status.strip().lower() in _INBOUND_STATUSES and has_content)
    ):
        return STATUS
    if has_content or data.get("SmsStatus") == "received":
        return INBOUND
    raise UnknownEventShape(
        "no MessageStatus (status callback) and no Body or NumMedia (inbound message): "
        "not a Twilio messaging webhook",
        field="MessageStatus",
    )


def _prepare(data: Mapping[str, Any], cls: type[Any]) -> tuple[dict[str, Any], list[int]]:
    """Twilio's variants renamed onto the class's parameters, media and extras gathered.

    Also the ``N`` of each media item kept, so errors name ``MediaUrlN``.
    """
    known = _KNOWN[cls]
    prepared: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    media: dict[int, dict[str, Any]] = {}
    for key, value in data.items():
        name = str(key)
        if cls is TwilioInbound and (found := _MEDIA.fullmatch(name)) is not None:
            slot = media.setdefault(int(found.group(2)), {})
            slot["url" if found.group(1) == "Url" else "content_type"] = value
        elif name in known:
            # An empty optional parameter means absent; an empty Body is a real
            # (media-only) message body.
            if value is not None and (value != "" or name == "Body"):
                prepared[name] = value
        else:
            extra[name] = value
    if "MessageSid" not in prepared:
        # Older integrations send only the deprecated copies.
        for legacy in ("SmsSid", "SmsMessageSid"):
            if data.get(legacy) not in (None, ""):
                prepared["MessageSid"] = data[legacy]
                break
    if cls is TwilioStatus and "MessageStatus" not in prepared and (legacy := _status_value(data)):
        prepared["MessageStatus"] = legacy
    numbers = _media_numbers(media)
    if cls is TwilioInbound:
        prepared["_media"] = [media[i] for i in numbers]
    prepared["_extra"] = extra
    return prepared, numbers


def _media_numbers(media: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """The ``N`` of every ``MediaUrlN`` with a URL, in order: position i of ``media`` is ``MediaUrl{N}``."""
    return [i for i in sorted(media) if media[i].get("url") not in (None, "")]


def _param_path(path: str, numbers: list[int]) -> str:
    # cattrs reports attribute paths ($.message_sid, $.media[0].url); users
    # know Twilio's parameter names (MediaUrl3 may be the first media given).
    media = re.fullmatch(r"\$\.media\[(\d+)\]\.(url|content_type)", path)
    if media:
        position = int(media.group(1))
        number = numbers[position] if position < len(numbers) else position
        return ("MediaUrl" if media.group(2) == "url" else "MediaContentType") + str(number)
    attribute = path.removeprefix("$.").split(".")[0].split("[")[0]
    return twilio_param(attribute) if attribute else "$"


def _format(exc: BaseException, type_: type[Any] | None) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, _FieldProblem):
        return str(exc)
    name = getattr(type_, "__name__", str(type_))
    return f"invalid value, expected {name}"


def parse_twilio(data: Any) -> TwilioInbound | TwilioStatus:
    """Structure one Twilio webhook; InvalidPayload names every bad parameter."""
    if not isinstance(data, Mapping):
        raise InvalidPayload(f"expected an object of Twilio parameters, got {type(data).__name__}", field="$")
    kind = determine_kind(data)
    cls: type[TwilioInbound | TwilioStatus] = TwilioInbound if kind == INBOUND else TwilioStatus
    prepared, numbers = _prepare(data, cls)
    try:
        parsed = converter.structure(prepared, cls)
    except (cattrs.ClassValidationError, _FieldProblem) as exc:
        problems: list[tuple[str, str]] = []
        for line in cattrs.transform_error(exc, path="$", format_exception=_format):
            message, _, path = line.rpartition(" @ ")
            problems.append((_param_path(path, numbers), message))
        detail = "; ".join(f"{field}: {message}" for field, message in problems)
        raise InvalidPayload(
            f"invalid Twilio {kind.replace('_', ' ')} ({detail})", field=problems[0][0]
        ) from exc
    if isinstance(parsed, TwilioStatus) and parsed.message_status.strip().lower() not in STATUSES:
        # A typo ("delivrd") or a status newer than this code: recorded as
        # rejected so it changes nothing, and named so someone looks.
        raise PermanentError(
            "MessageStatus is not one of Twilio's documented statuses",
            field="MessageStatus",
            code="unknown_status",
        )
    return parsed
