"""Redaction: linear in its input, bounded, masking what it must and sparing what it should.

The hostile-input part: a text that echoes a payload (40k digits, a 250 KB
provider field, 10 MB of anything) is masked in milliseconds, and an error
text built from it stays a bounded size wherever it is stored or logged.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
from typing import Any

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from commproc_core.errors import (
    ChannelNotFound,
    ConfigError,
    InvalidPayload,
    PermanentError,
    RecordNotFound,
)
from commproc_core.queues import MemoryQueue
from commproc_core.redact import RedactingFilter, mask_phone, redact, redact_error
from commproc_core.stores import MemoryStore

KIB = 1024
#: Generous: each case takes tens of milliseconds; the quadratic version took minutes.
SECONDS = 2.0

HOSTILE = {
    "digits": "1" * 256 * KIB,
    "digits then a letter": "1" * 256 * KIB + "x",
    "spaced digits": "1 " * 128 * KIB + "x",
    "dashed digits": "1-" * 128 * KIB,
    "a digit, dots, digits glued to a word": "1" + "." * 256 * KIB + "23a",
    "at signs": "@" * 256 * KIB,
    "letters and at signs": "a@" * 128 * KIB,
    "domain without a dot": "@" + "a" * 256 * KIB,
    "dotted domain": "a@a" + ".a" * 128 * KIB,
    "long local part": "a" * 256 * KIB + "@example.com",
    "addresses": "ann@example.com " * 16 * KIB,
    "glued addresses": "a@b.c/" * 43 * KIB,
    "plus signs": "+" * 256 * KIB,
    "parentheses": "(1" * 128 * KIB,
    "ip addresses": "10.0.0.1 " * 29 * KIB,
    "nested json": "[" * 128 * KIB + "]" * 128 * KIB,
}


def _timed(call: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - started


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_text_is_masked_in_linear_time(name: str) -> None:
    text = HOSTILE[name]
    masked, seconds = _timed(redact, text)
    assert seconds < SECONDS, f"{name}: {seconds:.2f}s"
    assert masked == redact(masked)  # masking what is masked changes nothing
    bounded, seconds = _timed(redact, text, 1000)
    assert seconds < 0.1, f"{name}: {seconds:.3f}s"
    assert len(bounded) <= 1000


def test_time_grows_linearly() -> None:
    # The quadratic version: 4x the digits took 16x the time (40k digits: 5 s).
    _, small = _timed(redact, "7" * 64 * KIB + "x")
    _, large = _timed(redact, "7" * 512 * KIB + "x")
    assert large < max(small, 0.002) * 8 * 4


def test_a_ten_megabyte_text_costs_what_its_first_kilobytes_cost_when_bounded() -> None:
    huge = "ann@example.com +1 415 555 0100 " * (10 * 1024 * KIB // 32)
    bounded, seconds = _timed(redact, huge, 1000)
    assert seconds < 0.05
    assert len(bounded) == 1000 and bounded.endswith("…")
    assert "ann@" not in bounded and "555 0100" not in bounded


# -- what is masked, what is spared -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail ann.lee@example.com now", "mail a***@example.com now"),
        ("call +1 (415) 555-0100", "call +14*******00"),
        ("call 415-555-0100 today", "call 41******00 today"),
        ("a@b.com/c@d.com", "a***@b.com/***@d.com"),
        ("x@y@b.com", "x@y***@b.com"),
        ("from 192.168.100.200 port 443", "from 192.168.100.200 port 443"),
        ("peers 10.0.0.1 10.0.0.2 10.0.0.3", "peers 10.0.0.1 10.0.0.2 10.0.0.3"),
        ("10.0.0.1 4155550100 10.0.0.2", "10.0.0.1 41******00 10.0.0.2"),
        ("at 2024-01-15 10:30:00 from 192.168.1.20", "at 2024-01-15 10:30:00 from 192.168.1.20"),
        ("batch of 10 in 123.4 ms", "batch of 10 in 123.4 ms"),
        ("::ffff:192.168.1.1 and 2001:db8::1", "::ffff:192.168.1.1 and 2001:db8::1"),
    ],
)
def test_masks_addresses_and_numbers_not_ips_or_dates(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_a_long_run_of_digits_keeps_no_more_than_a_phone_number_would() -> None:
    assert mask_phone("+14155550100") == "+14*******00"
    assert mask_phone("1" * 1000) == "1111" + "*" * 994 + "11"


# The former implementation (quadratic on long words), as the reference for what
# is an address: the linear one must find exactly the same ones.
_OLD_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_OLD_PHONE = re.compile(r"(?<![\w+(])(?:\+|\()?\d[\d\s().-]{5,}\d(?![\w])")


def _old_redact(text: str) -> str:
    def phone(match: re.Match[str]) -> str:
        found = match.group(0)
        digits = re.sub(r"\D", "", found)
        if len(digits) >= (7 if found.startswith("+") else 9):
            return mask_phone(("+" if found.startswith("+") else "") + digits)
        return found

    local_masked = _OLD_EMAIL.sub(
        lambda m: m.group(0).rpartition("@")[0][:1] + "***@" + m.group(0).rpartition("@")[2], text
    )
    return _OLD_PHONE.sub(phone, local_masked)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab1.@-+ (/)_x\n", max_size=60))
@example("a@b.com/c@d.com")
@example("x.y@a.b@c.d")
@example("+1 415 555 0100 a@b.c")
def test_same_matches_as_the_former_implementation(text: str) -> None:
    # IPv4 addresses and dates are spared on purpose now; leave them out.
    assume(not re.search(r"\d+\.\d+\.\d+\.\d+|\d{4}-\d\d-\d\d", text))
    assert redact(text) == _old_redact(text)


# -- bounded output ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    before=st.integers(min_value=0, max_value=1400),
    limit=st.integers(min_value=1, max_value=1200),
    secret=st.sampled_from(["ann.lee@example.com", "+1 415 555 0123", "+14155550123"]),
    filler=st.sampled_from(["x", "x ", "é,", "q@", "ann@example.com ", "1"]),
)
def test_a_value_cut_by_the_limit_is_never_shown(before: int, limit: int, secret: str, filler: str) -> None:
    text = (filler * before)[:before] + " " + secret + " tail" * 400
    out = redact(text, limit)
    assert len(out) <= limit
    if len(text) > limit:
        assert out.endswith("…")
    # Masks keep a first letter and the last two digits; never more of the value.
    assert "nn.l" not in out and "555" not in out and "ee@" not in out


def test_short_texts_are_kept_whole_under_a_limit() -> None:
    assert redact("fine", 10) == "fine"
    assert redact("fine", 4) == "fine"
    assert redact("finer", 4) == "fin…"
    assert redact("anything", 0) == ""
    # Masking may lengthen a text ("a@b.co" becomes "a***@b.co"): still within the limit.
    assert len(redact("a@b.co", 7)) <= 7


def test_redact_error_bounds_and_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert redact_error(Broken()) == "Broken"
    detail = redact_error(ValueError("+14155550123 " * 100_000), 300)
    assert len(detail) == 300 and "55501" not in detail


# -- bounded error texts ---------------------------------------------------------------


def test_error_texts_built_from_input_are_bounded() -> None:
    huge = "x" * 10_000_000
    error = InvalidPayload(f"unexpected value {huge}", field=f"$.{huge}")
    assert len(str(error)) < 1300 and len(error.detail) <= 1000 and len(error.field or "") <= 200
    assert isinstance(error, PermanentError)
    assert len(str(ChannelNotFound(huge, ["sms"]))) < 400
    assert len(str(RecordNotFound("leads", huge))) < 200
    config = ConfigError("invalid", [f"problem {i} {huge[:1000]} @ config.x" for i in range(10_000)])
    assert len(str(config)) < 5000
    assert len(config.problems) == 51 and config.problems[-1] == "... and 9950 more problems"
    assert all(len(p) <= 300 for p in config.problems)


def test_a_rejected_250_kb_field_is_recorded_in_milliseconds() -> None:
    from commproc_email import EmailProcessor

    queue, store = MemoryQueue("memory://email"), MemoryStore()
    queue.send(json.dumps({"RecordType": "4" * 250_000, "MessageID": "m-1"}))
    stats, seconds = _timed(EmailProcessor(queue=queue, store=store).process_messages)
    assert stats.failed == 1 and stats.deleted == 1
    assert seconds < SECONDS
    with store.unit_of_work() as uow:
        (record,) = uow.processing_records.find()
    assert record.status == "failed"
    assert len(record.error_detail or "") <= 1000 and "4444444" not in (record.error_detail or "")


# -- the logging filter ------------------------------------------------------------------


def _handler(level: int = logging.DEBUG) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"commproc.tests.redact.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    return logger, stream


def test_info_and_above_are_masked_debug_messages_are_not() -> None:
    logger, stream = _handler()
    logger.info("from %s via %s", "+14155550123", "10.1.2.3")
    logger.debug("debug keeps %s", "+14155550123")
    out = stream.getvalue()
    assert "INFO from +14*******23 via 10.1.2.3" in out
    assert "DEBUG debug keeps +14155550123" in out


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO, logging.ERROR])
def test_tracebacks_are_masked_at_every_level(level: int) -> None:
    logger, stream = _handler()
    try:
        raise ValueError("bad sender ann.lee@example.com at +14155550123")
    except ValueError:
        logger.log(level, "failed", exc_info=True, stack_info=True)
    out = stream.getvalue()
    assert "Traceback" in out and "ValueError: bad sender a***@example.com at +14*******23" in out
    assert "ann.lee" not in out and "4155550123" not in out


def test_a_broken_format_string_does_not_raise_from_the_filter() -> None:
    record = logging.LogRecord("commproc", logging.INFO, __file__, 1, "%s %s", ("one",), None)
    assert RedactingFilter().filter(record) is True
