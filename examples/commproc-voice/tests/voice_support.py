"""Twilio Voice webhooks as Twilio sends them, and a voice processor on an in-memory queue."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from commproc_voice import VoiceProcessor

from commproc_core import MemoryQueue, ProcessingStats
from commproc_core.testing import FixedClock, body, drain

ACCOUNT = "AC" + "0" * 31 + "1"
OUR_NUMBER = "+14155550199"
CALLER = "+14155550123"
TOKEN = "12345"
URL = "https://abc123.execute-api.us-east-1.amazonaws.com/prod/voice"

_counter = itertools.count(1)


def sid(prefix: str) -> str:
    return f"{prefix}{next(_counter):032x}"


def call(
    status: str,
    *,
    call_sid: str | None = None,
    direction: str = "inbound",
    caller: str = CALLER,
    callee: str = OUR_NUMBER,
    **extra: Any,
) -> dict[str, str]:
    """A call status callback (or the request for an incoming call) with Twilio's parameters."""
    inbound = direction == "inbound"
    params = {
        "CallSid": call_sid or sid("CA"),
        "AccountSid": ACCOUNT,
        "From": caller if inbound else callee,
        "To": callee if inbound else caller,
        "CallStatus": status,
        "Direction": direction,
        "ApiVersion": "2010-04-01",
        "Caller": caller if inbound else callee,
        "Called": callee if inbound else caller,
        "FromCountry": "US",
        "ToCountry": "US",
        "CallbackSource": "call-progress-events",
    }
    params.update({k: str(v) for k, v in extra.items()})
    return params


def recording(
    status: str, call_sid: str, *, recording_sid: str | None = None, **extra: Any
) -> dict[str, str]:
    rec = recording_sid or sid("RE")
    params = {
        "AccountSid": ACCOUNT,
        "CallSid": call_sid,
        "RecordingSid": rec,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Recordings/{rec}",
        "RecordingStatus": status,
        "RecordingDuration": "14",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
        "RecordingStartTime": "Mon, 22 Aug 2026 17:05:55 +0000",
    }
    params.update({k: str(v) for k, v in extra.items()})
    return params


def transcription(status: str, call_sid: str, text: str | None = None, **extra: Any) -> dict[str, str]:
    params = call("completed", call_sid=call_sid)
    del params["CallbackSource"]
    params.update(
        {
            "TranscriptionSid": sid("TR"),
            "TranscriptionStatus": status,
            "TranscriptionUrl": "https://api.twilio.com/2010-04-01/Transcriptions/TR1",
            "RecordingSid": sid("RE"),
            "RecordingUrl": "https://api.twilio.com/2010-04-01/Recordings/RE1",
        }
    )
    if text is not None:
        params["TranscriptionText"] = text
    params.update({k: str(v) for k, v in extra.items()})
    return params


def api_gateway(params: Mapping[str, str], *, signature: str | None) -> dict[str, Any]:
    """The API Gateway (REST, proxy) event carrying a form-encoded webhook, as it lands on the queue."""
    headers = {
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return {
        "resource": "/voice",
        "path": "/voice",
        "httpMethod": "POST",
        "headers": headers,
        "requestContext": {"path": "/prod/voice", "stage": "prod", "domainName": headers["Host"]},
        "body": urlencode(params),
        "isBase64Encoded": False,
    }


def voice(store: Any, config: Mapping[str, Any] | None = None) -> tuple[VoiceProcessor, MemoryQueue]:
    queue = MemoryQueue("memory://voice")
    processor = VoiceProcessor(queue=queue, store=store, clock=FixedClock(), config=dict(config or {}))
    return processor, queue


def run(processor: VoiceProcessor, queue: MemoryQueue, *bodies: Any) -> ProcessingStats:
    queue.send_batch([body(b) for b in bodies])
    return drain(processor)
