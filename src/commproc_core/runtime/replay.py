"""Replaying captured queue message bodies through a processor, one file at a time.

What ``commproc replay`` and ``commproc inspect`` share. Each input file is
one queue message body, exactly as SQS held it (a DLQ dump, a payload
captured from a webhook). Inputs run in order, each in its own batch, so a
later file sees what an earlier one recorded (a duplicate is reported as
such).

A file written by ``commproc dlq dump`` (a JSON object whose ``format`` is
:data:`DUMP_FORMAT`) is recognised: its ``body`` is the queue message body,
and its attributes and message attributes travel with it, as SQS delivered
them. Any other file is taken as the body itself.

A file's queue message id is derived from its content, so replaying the same
dump twice records its failures once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from commproc_core.errors import ConfigError
from commproc_core.model import CommunicationEvent, QueueMessage
from commproc_core.ports import ChannelProcessor

__all__ = [
    "DUMP_FORMAT",
    "OUTCOMES",
    "ReplayInput",
    "ReplayResult",
    "event_fields",
    "read_inputs",
    "replay",
    "replay_iter",
]

#: The ``format`` of a message file written by ``commproc dlq dump``.
DUMP_FORMAT = "commproc.sqs-message/1"

#: MessageOutcome.outcome -> the replay outcome; a retry did not happen, so it failed.
OUTCOMES = {
    "processed": "processed",
    "duplicate": "duplicate",
    "rejected": "rejected",
    "ignored": "ignored",
    "retry": "failed",
}


@attrs.frozen
class ReplayInput:
    """One queue message body and where it came from (with its SQS attributes, from a DLQ dump)."""

    source: str
    body: str
    attributes: Mapping[str, str] = attrs.field(factory=dict)
    message_attributes: Mapping[str, Any] = attrs.field(factory=dict)


def _from_dump(source: str, text: str) -> ReplayInput | None:
    """The input a ``commproc dlq dump`` file holds; None when ``text`` is a plain body."""
    if not text.lstrip().startswith("{") or DUMP_FORMAT not in text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("format") != DUMP_FORMAT:
        return None
    body = record.get("body")
    attributes = record.get("attributes") or {}
    message_attributes = record.get("message_attributes") or {}
    if (
        not isinstance(body, str)
        or not isinstance(attributes, dict)
        or not isinstance(message_attributes, dict)
    ):
        raise ConfigError(f"{source}: a dump file whose body or attributes are damaged")
    return ReplayInput(
        source=source,
        body=body,
        attributes={str(k): str(v) for k, v in attributes.items()},
        message_attributes=message_attributes,
    )


@attrs.frozen(kw_only=True)
class ReplayResult:
    """What became of one input: its outcome, the error code, and its events as JSON-able dicts."""

    source: str
    outcome: str
    reason: str | None
    events: tuple[Mapping[str, Any], ...] = ()
    #: What ``reason`` stands for, in words (redacted, bounded).
    detail: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "outcome": self.outcome,
            "reason": self.reason,
            "detail": self.detail,
            "events": list(self.events),
        }


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        # Hidden files (.DS_Store, editor swap files) are never payloads.
        return sorted(
            (p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name
        )
    if path.is_file():
        return [path]
    raise ConfigError(f"{path}: no such file or folder")


def read_inputs(paths: Iterable[str | Path]) -> list[ReplayInput]:
    """Every file named, and every file of every folder named (in name order), as inputs."""
    inputs = []
    for given in paths:
        for file in _files(Path(given)):
            try:
                body = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{file}: not UTF-8 text (a queue message body is text)") from exc
            except OSError as exc:
                raise ConfigError(f"cannot read {file}: {exc.strerror or exc}") from exc
            inputs.append(_from_dump(file.name, body) or ReplayInput(source=file.name, body=body))
    if not inputs:
        raise ConfigError("nothing to replay: the folders given hold no files")
    return inputs


def _message(item: ReplayInput, queue_url: str) -> QueueMessage:
    digest = hashlib.sha256(item.body.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    message_id = f"replay-{digest}"
    sent = item.attributes.get("SentTimestamp", "")
    return QueueMessage(
        message_id=message_id,
        receipt_handle=message_id,
        body=item.body,
        queue_url=queue_url,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=timezone.utc) if sent.isdigit() else None,
        attributes=dict(item.attributes),
        message_attributes=dict(item.message_attributes),
    )


def _keyword_action(data: Mapping[str, Any]) -> str | None:
    keyword = data.get("keyword")
    if isinstance(keyword, Mapping):
        action = keyword.get("action")
        return action if isinstance(action, str) else None
    action = data.get("keyword_action")
    return action if isinstance(action, str) else None


def event_fields(event: CommunicationEvent, duplicate: bool = False) -> dict[str, Any]:
    """One communication event as replay reports it.

    ``from`` and ``to`` are the event's sender and recipient as the channel
    stored them (E.164 numbers or short codes for SMS, address match keys for
    email, and an inbound email's ``to_address``); ``recipient`` is the
    normalized address where the channel keeps one (email); ``status`` the
    delivery status a status event reports.
    """
    data = event.data
    return {
        "channel": event.channel,
        "provider": event.provider,
        "event_type": event.event_type,
        "provider_message_id": event.provider_message_id,
        "dedupe_key": event.dedupe_key,
        "record_status": event.status,
        "from": event.sender,
        # An inbound email has no recipient key; the address it was sent to is ``to_address``.
        "to": event.recipient or data.get("to_address"),
        "recipient": data.get("recipient"),
        "status": data.get("status"),
        "bounce_class": data.get("bounce_class"),
        "keyword_action": _keyword_action(data),
        "error_code": event.error_code,
        "duplicate": duplicate,
    }


def replay_iter(processor: ChannelProcessor, inputs: Sequence[ReplayInput]) -> Iterator[ReplayResult]:
    """Process ``inputs`` one by one through ``processor`` (nothing is acknowledged), yielding results."""
    queue_url = str(getattr(processor, "queue_url", None) or "replay://")
    for item in inputs:
        report = processor.process_batch([_message(item, queue_url)], acknowledge=False)
        outcome = report.outcomes[0]
        mapped = OUTCOMES.get(outcome.outcome, "failed")
        yield ReplayResult(
            source=item.source,
            outcome=mapped,
            reason=outcome.reason if mapped in ("rejected", "failed") else None,
            # Optional in the ChannelProcessor protocol; commproc's own pipeline fills it.
            detail=getattr(outcome, "detail", None) if mapped in ("rejected", "failed") else None,
            events=tuple(
                event_fields(event, duplicate)
                for event, duplicate in zip(outcome.events, outcome.duplicates, strict=False)
            ),
        )


def replay(processor: ChannelProcessor, inputs: Sequence[ReplayInput]) -> list[ReplayResult]:
    """Process ``inputs`` in order through ``processor``; one result per input."""
    return list(replay_iter(processor, inputs))
