"""The shape of a queue URL, checked before it is stored or polled.

An SQS queue URL is ``https://sqs.REGION.amazonaws.com/ACCOUNT_ID/NAME``
(``sqs-fips.`` and the legacy ``REGION.queue.amazonaws.com`` hosts too, and
``amazonaws.com.cn`` in China). SQS-compatible endpoints (LocalStack,
ElasticMQ, moto) use their own host and path, so for any other host only the
scheme and a valid queue name at the end of the path are required.
``memory://NAME`` queues live inside one process: a host application's
queue factory may serve them, ``commproc run`` cannot.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from commproc_core.runtime.masking import mask_urls

__all__ = ["EXPECTED", "queue_url_problem", "url_from_arn"]

EXPECTED = "an SQS queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/sms-inbound"

# 1 to 80 characters: letters, digits, hyphens and underscores; FIFO queues end in .fifo.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,75}(?:\.fifo)?$|^[A-Za-z0-9_-]{1,80}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):sqs:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):(?P<name>.+)$"
)
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn")


def url_from_arn(arn: str) -> str | None:
    """The URL of the queue an SQS ARN names (``arn:aws:sqs:REGION:ACCOUNT:NAME``); None for other text."""
    match = _ARN.match(arn)
    if match is None:
        return None
    domain = "amazonaws.com.cn" if match["partition"] == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{match['region']}.{domain}/{match['account']}/{match['name']}"


def queue_url_problem(url: str, *, allow_memory: bool = False) -> str | None:
    """What is wrong with ``url`` as a queue URL, saying what was expected; None when it fits."""
    shown = mask_urls(url)
    if url != url.strip() or not url:
        return f"expected {EXPECTED}, got {shown!r} (empty or with surrounding spaces)"
    if url.startswith("memory://"):
        if allow_memory:
            return None if url[len("memory://") :] else "expected memory://NAME, got memory:// without a name"
        return (
            "memory:// queues exist only inside the process that made them, and `commproc run` polls "
            f"SQS: expected {EXPECTED}"
        )
    from_arn = url_from_arn(url)
    if from_arn is not None:
        return f"{shown} is the queue's ARN; give its URL instead: {from_arn}"
    if "://" not in url:
        return (
            f"expected {EXPECTED}, got {shown!r}; `aws sqs get-queue-url --queue-name NAME` prints a "
            "queue's URL"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"expected {EXPECTED}, got {shown!r} (not a URL)"
    del port  # only checked for being a number
    if parts.scheme not in ("http", "https"):
        return f"expected {EXPECTED} (http or https), got a {parts.scheme}:// URL"
    host = (parts.hostname or "").lower()
    if not host:
        return f"expected {EXPECTED}, got {shown!r} (no host)"
    if parts.query or parts.fragment:
        return f"expected {EXPECTED}, got {shown!r} (a queue URL has no query or fragment)"
    segments = [s for s in parts.path.split("/") if s]
    if host.endswith(_AWS_HOSTS) or host in ("amazonaws.com", "amazonaws.com.cn"):
        if parts.scheme != "https":
            return f"SQS on AWS is reached over https: expected {EXPECTED}"
        if len(segments) != 2 or not _ACCOUNT.match(segments[0]):
            return (
                f"expected {EXPECTED}: the path of an AWS queue URL is /ACCOUNT_ID/QUEUE_NAME, got {shown!r}"
            )
    elif not segments:
        return f"expected {EXPECTED}, got {shown!r} (no queue name in the path)"
    if not _NAME.match(segments[-1]):
        return (
            f"{segments[-1]!r} is not a valid SQS queue name in {shown}: 1 to 80 letters, digits, "
            "hyphens or underscores, ending in .fifo for a FIFO queue"
        )
    return None
