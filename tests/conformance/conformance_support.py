"""The conformance corpus: payload files, their expectations, and how both are read.

Layout, per channel (``email``, ``sms``)::

    <channel>/payloads/<case file>   one queue message body per file, as SQS would hold it
    <channel>/expected.json          per case file: where the payload shape comes from,
                                     what `commproc replay --json` prints for it, and the
                                     normalized events `validate_event` produces
    <channel>/config.json            the channel config replay runs with

An expected value ending in ``*`` matches any text with that prefix (derived
dedupe keys are hashes). Cases that hold only once the processor's write
path changes name the change in ``needs_processor``; they run as strict
xfails so they turn green, loudly, when it lands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from commproc_core.errors import PermanentError
from commproc_core.model import QueueMessage
from commproc_core.pipeline.envelope import unwrap_body
from commproc_core.pipeline.processor import EventPayload
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
CHANNELS = ("email", "sms")
#: Served with --processor, so the run does not depend on how the plugins are installed.
PROCESSORS = {"email": "commproc_email:EmailProcessor", "sms": "commproc_sms:SMSProcessor"}

#: The clock of the in-process runs: an event timed "when handled" gets this time.
HANDLED_AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

#: Fields every expected normalized event must state, so no case is under-specified.
EMAIL_CORE = frozenset(
    {
        "event_type",
        "occurred_at",
        "time_source",
        "recipient",
        "recipient_raw",
        "reject_reason",
        "bounce_class",
    }
)
SMS_CORE = frozenset({"event_type", "channel", "from_address", "to_address", "from_kind", "dedupe_key"})
#: Fields every expected replay event must state.
REPLAY_CORE = frozenset({"event_type", "record_status", "from", "to"})


def payloads(channel: str) -> Path:
    return HERE / channel / "payloads"


def config_file(channel: str) -> Path:
    return HERE / channel / "config.json"


def expected(channel: str) -> dict[str, Any]:
    cases: dict[str, Any] = json.loads((HERE / channel / "expected.json").read_text(encoding="utf-8"))
    return cases


def case_files(channel: str) -> list[str]:
    return sorted(p.name for p in payloads(channel).iterdir() if p.is_file() and not p.name.startswith("."))


def matches(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and wanted.endswith("*") and isinstance(actual, str):
        return actual.startswith(wanted[:-1])
    return bool(actual == wanted)


def mismatches(actual: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (actual, wanted)}`` for every field of ``wanted`` that ``actual`` does not match."""
    return {k: (actual.get(k), v) for k, v in wanted.items() if not matches(actual.get(k), v)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def email_view(event: Any) -> dict[str, Any]:
    """An EmailEvent as the expectations write it (raw, transport and metadata left out)."""
    fields = attrs.asdict(event, recurse=False)
    for name in ("raw", "transport"):
        fields.pop(name)
    return {k: _jsonable(v) for k, v in fields.items()}


def sms_view(event: Any) -> dict[str, Any]:
    """An SmsInbound or SmsStatusUpdate as the expectations write it."""
    tw = event.twilio
    view = {
        "event_type": event.event_type,
        "channel": event.channel,
        "dedupe_key": event.dedupe_key,
        "provider_message_id": tw.message_sid,
        "account_sid": tw.account_sid,
        "from_address": event.from_address,
        "to_address": event.to_address,
        "from_raw": event.from_raw,
        "to_raw": event.to_raw,
        "from_kind": event.sender.kind if event.sender else None,
        "to_kind": event.recipient.kind if event.recipient else None,
    }
    if event.event_type == "inbound_message":
        view.update(
            body=tw.body,
            num_media=tw.num_media,
            media=[m.url for m in tw.media],
            sender_whatsapp_id=event.sender_whatsapp_id,
            lead_key=event.lead_key,
            profile_name=tw.profile_name,
        )
    else:
        view.update(status=event.status, rank=event.rank, error_code=tw.error_code)
    return view


def processor(channel: str) -> Any:
    """The channel's processor as replay builds it (its config file), on a fixed clock."""
    config = json.loads(config_file(channel).read_text(encoding="utf-8"))
    if channel == "email":
        from commproc_email import EmailProcessor

        return EmailProcessor(
            store=MemoryStore(), queue_url="replay://", config=config, clock=FixedClock(HANDLED_AT)
        )
    from commproc_sms import SMSProcessor

    return SMSProcessor(
        store=MemoryStore(), queue_url="replay://", config=config, clock=FixedClock(HANDLED_AT)
    )


def normalize(channel: str, name: str) -> Iterator[dict[str, Any]]:
    """What validate_event makes of a case's body: a view per event, or ``{"error": ...}`` per refused item.

    The body is unwrapped and authenticated as the pipeline does; like
    replay, its queue message has no SQS sent time.
    """
    proc = processor(channel)
    body = (payloads(channel) / name).read_text(encoding="utf-8")
    message = QueueMessage(message_id=f"conformance-{name}", receipt_handle="r", body=body)
    unwrapped = unwrap_body(body, message)
    proc.authenticate(unwrapped.envelope)
    view = email_view if channel == "email" else sms_view
    for index, item in enumerate(unwrapped.items):
        try:
            events = proc.validate_event(EventPayload(data=item, envelope=unwrapped.envelope, index=index))
        except PermanentError as error:
            yield {"error": {"code": error.code, "field": error.field}}
            continue
        for event in events:
            yield view(event)


def run_replay(channel: str, paths: Sequence[Path], *extra: str) -> subprocess.CompletedProcess[str]:
    """``commproc replay CHANNEL PATHS --json`` in a fresh interpreter, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COMMPROC_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [
        sys.executable,
        "-m",
        "commproc_core.runtime.cli",
        "replay",
        channel,
        *map(str, paths),
        "--config",
        str(config_file(channel)),
        "--processor",
        f"{channel}={PROCESSORS[channel]}",
        "--json",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
