"""Time to decide a hostile body: 256 KiB of anything, and 10 MB where the transport allows it.

    python benchmarks/hostile.py [--size 262144] [--large 10485760] [--repeat 3]

For each body and each channel (sms, email) it prints, in milliseconds, the
best of ``--repeat`` runs of:

* ``validate``: the processor's validate path as the pipeline runs it
  (unwrap the envelope, ``authenticate``, ``validate_event`` for each item),
  and, when the body is refused, the bounded, masked failure text that is
  recorded and logged (``redact_error``);
* ``batch``: the whole ``process_batch`` of that one message on the
  in-memory store, failure records included;
* ``redact``: masking the body itself, whole and bounded to 1,000
  characters (what error texts use).

256 KiB is the classic SQS message size limit; the 10 MB cases are what an
API Gateway payload may hold, delivered through the in-memory queue (SQS
would refuse them). The version before linear redaction took about 5 s on
40,000 digits and 596 s to reject a 250 KB Postmark body; every figure here
should be a few milliseconds, growing linearly with the body.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from commproc_core.errors import PermanentError
from commproc_core.pipeline.envelope import unwrap
from commproc_core.pipeline.processor import EventPayload
from commproc_core.queues import MemoryQueue
from commproc_core.redact import redact, redact_error
from commproc_core.stores import MemoryStore
from commproc_core.testing import make_message
from commproc_email import EmailProcessor
from commproc_sms import SMSProcessor

KIB = 1024
PROCESSORS: dict[str, Callable[..., Any]] = {"sms": SMSProcessor, "email": EmailProcessor}


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def bodies(size: int) -> Iterator[tuple[str, str]]:
    """(name, body) pairs of about ``size`` characters each."""
    rng = random.Random(11)
    yield "digits", "1" * size
    yield "nested JSON lists", "[" * (size // 2) + "]" * (size // 2)
    depth = size // 6
    yield "nested JSON objects", '{"a":' * depth + "1" + "}" * depth
    yield "random printable", "".join(rng.choice('0123456789abc@.+-()[]{}:," =&%') for _ in range(size))
    yield "phones and addresses", _fill("ann@example.com +1 415 555 0100 ", size)
    yield "Postmark RecordType", json.dumps({"RecordType": "4" * size, "MessageID": "m"})
    yield "SendGrid list of huge emails", json.dumps([{"event": "open", "email": "a" * size, "timestamp": 1}])
    yield "Twilio form, huge Body", "MessageSid=SM1&From=%2B14155550100&Body=" + quote("x" * size)
    yield "form, repeated keys", _fill("From=1&", size)
    sns = {"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-1:1:t"}
    yield "SNS, huge Message", json.dumps({**sns, "Message": "9" * size})
    yield "SNS, Type of the wrong type", json.dumps({**sns, "Type": ["x"] * (size // 6)})
    encoded = base64.b64encode(("Body=" + "x" * size).encode()).decode()
    gateway = {"version": "2.0", "rawPath": "/", "headers": {}, "body": encoded, "isBase64Encoded": True}
    yield "API Gateway v2, base64 form", json.dumps(gateway)


def large_bodies(size: int) -> Iterator[tuple[str, str]]:
    yield "10 MB digits", "1" * size
    yield "10 MB JSON string", json.dumps({"RecordType": "x" * size, "Body": "y"})


def _best(call: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best * 1000, result


def validate_path(processor: Any, body: str) -> str:
    """What the pipeline decides for ``body`` before writing anything: an outcome code."""
    try:
        unwrapped = unwrap(make_message(body))
        if unwrapped.control is not None:
            return f"ignored:{unwrapped.control}"
        processor.authenticate(unwrapped.envelope)
        codes = []
        for index, item in enumerate(unwrapped.items):
            try:
                processor.validate_event(EventPayload(data=item, envelope=unwrapped.envelope, index=index))
                codes.append("valid")
            except PermanentError as error:
                redact_error(error)
                codes.append(error.code)
        return ",".join(sorted(set(codes))) or "no items"
    except PermanentError as error:
        redact_error(error)
        return error.code
    except Exception as error:  # shown, not hidden: the pipeline would retry the whole batch
        return f"raised {type(error).__name__}"


def whole_batch(channel: str, body: str) -> str:
    processor = PROCESSORS[channel](queue=MemoryQueue(f"memory://{channel}"), store=MemoryStore())
    try:
        report = processor.process_batch([make_message(body)], acknowledge=False)
    except Exception as error:
        return f"raised {type(error).__name__}"
    return ",".join(o.outcome for o in report.outcomes)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256 * KIB, help="size of each body (256 KiB)")
    parser.add_argument("--large", type=int, default=10 * KIB * KIB, help="size of the large bodies (10 MB)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    # Rejections are logged at WARNING; the figures are what this prints.
    logging.getLogger("commproc").addHandler(logging.NullHandler())
    logging.getLogger("commproc").propagate = False
    processors = {name: cls(queue=MemoryQueue(f"memory://{name}")) for name, cls in PROCESSORS.items()}
    print(
        f"{'body':<30}{'chars':>10} {'channel':<7}{'validate ms':>12}{'batch ms':>10}"
        f"{'redact ms':>11}{'bounded ms':>12}  outcome"
    )
    cases = [*bodies(args.size), *large_bodies(args.large)]
    worst = 0.0
    for name, body in cases:
        redact_ms, _ = _best(functools.partial(redact, body), args.repeat)
        bounded_ms, _ = _best(functools.partial(redact, body, 1000), args.repeat)
        for channel, processor in processors.items():
            validate_ms, outcome = _best(functools.partial(validate_path, processor, body), args.repeat)
            batch_ms, batch_outcome = _best(functools.partial(whole_batch, channel, body), args.repeat)
            worst = max(worst, validate_ms, batch_ms)
            print(
                f"{name:<30}{len(body):>10} {channel:<7}{validate_ms:>12.2f}{batch_ms:>10.2f}"
                f"{redact_ms:>11.2f}{bounded_ms:>12.3f}  {outcome} / {batch_outcome}"
            )
            sys.stdout.flush()
    print(f"slowest decision: {worst:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
