"""The conformance corpus through `commproc replay --json` and through validate_event.

Each payload file is one queue message body written from a provider's
documented example (or a shape other projects' fixtures record); its
expectation says what replay prints and what the parse layer normalizes it
to. Replay runs once per channel over the whole folder in a subprocess, so
the replay contract itself (one JSON line per input, its keys, the exit
code, nothing personal on stderr) is under test too.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from typing import Any

import pytest
from conformance_support import (
    CHANNELS,
    EMAIL_CORE,
    REPLAY_CORE,
    SMS_CORE,
    case_files,
    expected,
    mismatches,
    normalize,
    payloads,
    run_replay,
)

#: The keys of one replay line and of each of its events (docs/running.md, `commproc replay`).
LINE_KEYS = {"source", "outcome", "reason", "detail", "events"}
EVENT_KEYS = {
    "channel",
    "provider",
    "event_type",
    "provider_message_id",
    "dedupe_key",
    "record_status",
    "from",
    "to",
    "recipient",
    "status",
    "bounce_class",
    "keyword_action",
    "error_code",
    "duplicate",
}


@cache
def replayed(channel: str) -> subprocess.CompletedProcess[str]:
    return run_replay(channel, [payloads(channel)])


@cache
def replay_lines(channel: str) -> dict[str, dict[str, Any]]:
    result = replayed(channel)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return {line["source"]: line for line in lines}


def _cases(check: str) -> list[Any]:
    params = []
    for channel in CHANNELS:
        cases = expected(channel)
        for name in case_files(channel):
            marks = []
            reason = cases.get(name, {}).get("needs_processor")
            if check == "replay" and reason:
                marks.append(pytest.mark.xfail(strict=True, reason=f"needs processor change: {reason}"))
            params.append(pytest.param(channel, name, marks=marks, id=f"{channel}/{name}"))
    return params


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_payload_has_a_complete_expectation(channel: str) -> None:
    cases = expected(channel)
    assert sorted(cases) == case_files(channel)
    core = EMAIL_CORE if channel == "email" else SMS_CORE
    for name, case in cases.items():
        assert case["source"].strip(), name
        assert {"outcome", "reason", "events"} <= case["replay"].keys(), name
        for event in case["replay"]["events"]:
            assert REPLAY_CORE <= event.keys(), name
        for event in case["normalized"]:
            assert "error" in event or core <= event.keys(), (name, sorted(core - event.keys()))


@pytest.mark.parametrize("channel", CHANNELS)
def test_replay_prints_one_line_per_input_and_exits_by_outcome(channel: str) -> None:
    result = replayed(channel)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["source"] for line in lines] == case_files(channel)
    for line in lines:
        assert set(line) == LINE_KEYS
        for event in line["events"]:
            assert set(event) == EVENT_KEYS
    bad = any(line["outcome"] in ("rejected", "failed") for line in lines)
    assert result.returncode == (1 if bad else 0), result.stderr


@pytest.mark.parametrize("channel", CHANNELS)
def test_replay_logs_no_address_or_body(channel: str) -> None:
    stderr = replayed(channel).stderr
    assert stderr.strip(), "the corpus has rejected inputs; their warnings should be logged"
    for text in (
        "@example.",
        "+1415555",
        "+447700",
        "not an email address",
        "Is the spring offer",
        "delivrd",
    ):
        assert text not in stderr


@pytest.mark.parametrize(("channel", "name"), _cases("replay"))
def test_replay_output(channel: str, name: str) -> None:
    wanted = expected(channel)[name]["replay"]
    line = replay_lines(channel)[name]
    assert (line["outcome"], line["reason"]) == (wanted["outcome"], wanted["reason"])
    assert len(line["events"]) == len(wanted["events"])
    for index, (actual, event) in enumerate(zip(line["events"], wanted["events"], strict=True)):
        assert not mismatches(actual, event), (index, mismatches(actual, event))


@pytest.mark.parametrize(("channel", "name"), _cases("normalized"))
def test_normalized_events(channel: str, name: str) -> None:
    wanted = expected(channel)[name]["normalized"]
    actual = list(normalize(channel, name))
    assert len(actual) == len(wanted), actual
    for index, (got, event) in enumerate(zip(actual, wanted, strict=True)):
        assert not mismatches(got, event), (index, mismatches(got, event))
