"""Errors name the field path, the expected type and the kind of value, never the value.

Every leaf of every provider sample is replaced in turn by distinctive text
(in the wrong place, inside a list, as a mapping key); whatever error comes
out must not contain it. Error text ends up in failure records, WARNING logs
and `commproc stats`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from email_support import load

from commproc_core.errors import PermanentError
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.processor import EventPayload
from commproc_core.stores import MemoryStore
from commproc_email import EmailProcessor

MARK = "Zq7 secret@example.invalid ]@["

SAMPLES = [
    *(("ses_events.json", name) for name in load("ses_events.json") if not name.startswith("_")),
    *(
        ("ses_notifications.json", name)
        for name in load("ses_notifications.json")
        if not name.startswith("_")
    ),
    *(("mailgun.json", name) for name in load("mailgun.json") if not name.startswith("_")),
    *(("postmark.json", name) for name in load("postmark.json") if not name.startswith("_")),
    *(("sendgrid_batch.json", index) for index in range(len(load("sendgrid_batch.json")))),
]


def sample(file: str, key: Any) -> Any:
    return copy.deepcopy(load(file)[key])


def leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from leaves(value, (*path, key))
    elif isinstance(data, list) and data:
        for index, value in enumerate(data):
            yield from leaves(value, (*path, index))
    else:
        yield path


def replaced(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    data = copy.deepcopy(data)
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return data


def error_text(data: Any) -> str | None:
    proc = EmailProcessor(store=MemoryStore(), queue_url="memory://unused")
    envelope = Envelope(kind="json", body_format="json", raw_body="")
    try:
        proc.validate_event(EventPayload(data=data, envelope=envelope))
    except PermanentError as error:
        return f"{error} {error.detail} {error.field} {error.code}"
    return None


@pytest.mark.parametrize(("file", "key"), SAMPLES, ids=lambda v: str(v))
def test_no_error_repeats_a_payload_value(file: str, key: Any) -> None:
    data = sample(file, key)
    refused = 0
    for path in leaves(data):
        if not path:
            continue
        for value in (MARK, [MARK], {MARK: [MARK]}, {"ok": MARK, MARK: 1}, 10**30):
            text = error_text(replaced(data, path, value))
            if text is not None:
                refused += 1
                assert MARK not in text and "Zq7" not in text and "example.invalid" not in text, (path, text)
    # The substitutions must reach the error paths, or this test proves nothing.
    assert refused >= 5


@pytest.mark.parametrize(
    ("file", "key", "path"),
    [
        ("ses_events.json", "Bounce", ("mail", "tags")),
        ("mailgun.json", "delivered", ("event-data", "user-variables")),
        ("postmark.json", "Delivery", ("Metadata",)),
    ],
)
def test_mapping_keys_are_not_echoed_in_the_field_path(file: str, key: Any, path: tuple[str, ...]) -> None:
    data = replaced(sample(file, key), path, {f"{MARK} @ $.x": 5, MARK: [1]})
    text = error_text(data)
    if file == "ses_events.json":
        assert text is not None and "$.mail.tags[*]" in text
    if text is not None:
        assert "Zq7" not in text


def test_an_unknown_postmark_record_type_is_never_echoed() -> None:
    data = {"RecordType": MARK, "MessageID": "m-1", "ReceivedAt": "not a time", "Recipient": MARK}
    text = error_text(data)
    assert text is not None and "$.ReceivedAt" in text and "Zq7" not in text
    # Without a broken field it is kept as an unknown event, not refused.
    assert error_text({"RecordType": MARK, "MessageID": "m-1"}) is None
