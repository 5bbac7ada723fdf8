"""Twilio Voice webhooks, parsed: call status, recording status and transcription callbacks.

Twilio posts a voice webhook's parameters as a form; all values are text.
Which callback a payload is follows from what it carries:

* ``TranscriptionSid``: a transcription callback (``<Record transcribe>``),
  with the call's ``From``, ``To`` and ``Direction``.
* ``RecordingStatus``: a recording status callback (no caller or callee).
* ``CallStatus``: the request for an incoming call, or a call status
  callback (``queued``, ``initiated``, ``ringing``, ``in-progress``,
  ``completed``, ``busy``, ``no-answer``, ``canceled``, ``failed``).

Errors name the parameter, never its value: a caller's number does not
end up in a log or an error record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from commproc_core import InvalidPayload, PermanentError, UnknownEventShape
from commproc_sms import Address, parse_address

__all__ = [
    "CALL_STATUSES",
    "MISSED_STATUSES",
    "RECORDING_STATUSES",
    "TRANSCRIPTION_STATUSES",
    "CallStatusEvent",
    "RecordingEvent",
    "TranscriptionEvent",
    "VoiceEvent",
    "call_rank",
    "parse_voice",
]

PROVIDER = "twilio"
CHANNEL = "voice"

#: Every CallStatus Twilio documents, in the order a call goes through them.
CALL_STATUSES = (
    "queued",
    "initiated",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "no-answer",
    "canceled",
    "failed",
)
_FINAL = frozenset({"completed", "busy", "no-answer", "canceled", "failed"})
#: An inbound call that ends in one of these was never answered: a missed call.
MISSED_STATUSES = frozenset({"busy", "no-answer", "canceled"})
RECORDING_STATUSES = ("in-progress", "completed", "absent", "failed")
TRANSCRIPTION_STATUSES = ("in-progress", "completed", "failed")


def call_rank(status: str) -> int:
    """How far a call got: callbacks arrive in any order, and a call's status only moves forward."""
    return 4 if status in _FINAL else CALL_STATUSES.index(status)


def _underscored(status: str) -> str:
    return status.replace("-", "_")


@attrs.frozen(kw_only=True)
class _Call:
    """What every call-related callback says about the call."""

    call_sid: str
    account_sid: str | None
    direction: str
    caller: Address
    callee: Address

    @property
    def inbound(self) -> bool:
        # inbound, trunking-originating: someone called us; outbound-api, outbound-dial: we called.
        return not self.direction.startswith("outbound")

    @property
    def lead_address(self) -> Address:
        """The other party: the caller of an inbound call, the callee of an outbound one."""
        return self.caller if self.inbound else self.callee

    @property
    def business_address(self) -> Address:
        return self.callee if self.inbound else self.caller


@attrs.frozen(kw_only=True)
class CallStatusEvent(_Call):
    """A call's status: the incoming call request, or a status callback."""

    status: str
    #: Seconds the call lasted (``CallDuration``), on the final callback.
    duration: int | None = None
    #: ``SequenceNumber``: the callback's place among the call's callbacks.
    sequence: int | None = None
    answered_by: str | None = None
    parent_call_sid: str | None = None
    caller_name: str | None = None
    provider: str = PROVIDER
    channel: str = CHANNEL

    @property
    def missed(self) -> bool:
        return self.inbound and self.status in MISSED_STATUSES

    @property
    def event_type(self) -> str:
        return "missed_call" if self.missed else f"call_{_underscored(self.status)}"

    @property
    def dedupe_key(self) -> str:
        # One callback per status and call; Twilio's retries of it carry the same pair.
        return f"twilio:call:{self.call_sid}:{self.status}"


@attrs.frozen(kw_only=True)
class RecordingEvent:
    """A recording status callback."""

    recording_sid: str
    call_sid: str
    account_sid: str | None
    status: str
    url: str | None = None
    duration: int | None = None
    channels: int | None = None
    source: str | None = None
    error_code: str | None = None
    provider: str = PROVIDER
    channel: str = CHANNEL

    @property
    def event_type(self) -> str:
        return f"recording_{_underscored(self.status)}"

    @property
    def dedupe_key(self) -> str:
        return f"twilio:recording:{self.recording_sid}:{self.status}"


@attrs.frozen(kw_only=True)
class TranscriptionEvent(_Call):
    """A transcription callback: the text of a recording (a voicemail, usually)."""

    transcription_sid: str
    recording_sid: str | None
    status: str
    text: str | None = None
    url: str | None = None
    call_status: str | None = None
    provider: str = PROVIDER
    channel: str = CHANNEL

    @property
    def event_type(self) -> str:
        return f"transcription_{_underscored(self.status)}"

    @property
    def dedupe_key(self) -> str:
        return f"twilio:transcription:{self.transcription_sid}:{self.status}"


VoiceEvent = CallStatusEvent | RecordingEvent | TranscriptionEvent


class _Params:
    """Reads Twilio's parameters, naming the parameter in every error."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.data.get(name)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None or value == "":
            if required:
                raise InvalidPayload("required parameter missing", field=name)
            return None
        if not isinstance(value, str):
            raise InvalidPayload(f"expected text, got {type(value).__name__}", field=name)
        return value

    def sid(self, name: str, prefix: str, *, required: bool = True) -> str | None:
        value = self.text(name, required=required)
        if value is not None and not (value.startswith(prefix) and value.isascii() and value.isalnum()):
            raise InvalidPayload(f"not a Twilio {prefix} id", field=name)
        if value is not None and len(value) > 64:
            raise InvalidPayload("longer than a Twilio id", field=name)
        return value

    def number(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.isdigit() or len(value) > 9:
            raise InvalidPayload("expected a whole number", field=name)
        return int(value)

    def status(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, required=True)
        assert value is not None
        status = value.strip().lower()
        if status not in allowed:
            raise PermanentError(
                f"not one of Twilio's documented values ({', '.join(allowed)})",
                field=name,
                code="unknown_status",
            )
        return status

    def address(self, name: str, country: str, default_region: str | None) -> Address:
        raw = self.text(name, required=True)
        assert raw is not None
        return parse_address(raw, self.text(country), default_region)

    def call(self, default_region: str | None) -> dict[str, Any]:
        return {
            "call_sid": self.sid("CallSid", "CA"),
            "account_sid": self.sid("AccountSid", "AC", required=False),
            "direction": (self.text("Direction") or "inbound").strip().lower(),
            "caller": self.address("From", "FromCountry", default_region),
            "callee": self.address("To", "ToCountry", default_region),
        }


def parse_voice(data: Any, *, default_region: str | None = None) -> VoiceEvent:
    """One Twilio Voice webhook as an event; a PermanentError naming the parameter otherwise."""
    if not isinstance(data, Mapping):
        raise InvalidPayload(f"expected Twilio parameters, got {type(data).__name__}", field="$")
    params = _Params(data)
    if "TranscriptionSid" in data:
        return TranscriptionEvent(
            **params.call(default_region),
            transcription_sid=params.sid("TranscriptionSid", "TR") or "",
            recording_sid=params.sid("RecordingSid", "RE", required=False),
            status=params.status("TranscriptionStatus", TRANSCRIPTION_STATUSES),
            text=params.text("TranscriptionText"),
            url=params.text("TranscriptionUrl"),
            call_status=params.status("CallStatus", CALL_STATUSES) if "CallStatus" in data else None,
        )
    if "RecordingStatus" in data:
        return RecordingEvent(
            recording_sid=params.sid("RecordingSid", "RE") or "",
            call_sid=params.sid("CallSid", "CA") or "",
            account_sid=params.sid("AccountSid", "AC", required=False),
            status=params.status("RecordingStatus", RECORDING_STATUSES),
            url=params.text("RecordingUrl"),
            duration=params.number("RecordingDuration"),
            channels=params.number("RecordingChannels"),
            source=params.text("RecordingSource"),
            error_code=params.text("ErrorCode"),
        )
    if "CallStatus" in data:
        return CallStatusEvent(
            **params.call(default_region),
            status=params.status("CallStatus", CALL_STATUSES),
            duration=params.number("CallDuration"),
            sequence=params.number("SequenceNumber"),
            answered_by=params.text("AnsweredBy"),
            parent_call_sid=params.sid("ParentCallSid", "CA", required=False),
            caller_name=params.text("CallerName"),
        )
    raise UnknownEventShape(
        "no CallStatus, RecordingStatus or TranscriptionSid: not a Twilio Voice webhook", field="CallStatus"
    )
