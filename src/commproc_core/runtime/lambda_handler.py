"""AWS Lambda: a handler for SQS event source mappings, on the same pipeline as the worker.

::

    # handler.py, deployed with commproc-core, commproc-sms and psycopg
    from commproc_core.lambda_handler import make_handler

    handler = make_handler("sms")   # store from $COMMPROC_DATABASE_URL

The mapping must have ``ReportBatchItemFailures`` turned on: the handler
returns ``{"batchItemFailures": [...]}`` listing only the records that failed
for a passing reason (store down, throttled), which Lambda leaves on the
queue for another try. Everything else, rejected payloads included, is
recorded and reported as done, so a bad payload is never retried.

Stores and processors are cached at module level, so a warm container reuses
its database connections; the cache key is the channel, store URL and config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from commproc_core.errors import ConfigError
from commproc_core.model import QueueMessage
from commproc_core.ports import ChannelProcessor, Store

__all__ = ["SQSHandler", "clear_cache", "make_handler", "queue_url_from_arn", "record_to_message"]

#: Environment variables read when make_handler is not told.
CHANNEL_ENV = "COMMPROC_CHANNEL"
CONFIG_ENV = "COMMPROC_CHANNEL_CONFIG"

_STORES: dict[str, Store] = {}
_PROCESSORS: dict[tuple[str, str, str, int], Any] = {}


def queue_url_from_arn(arn: str) -> str:
    """``arn:aws:sqs:us-east-1:123456789012:inbound`` -> the queue's URL (``""`` if not an SQS ARN)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        return ""
    partition, region, account, name = parts[1], parts[3], parts[4], parts[5]
    domain = "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com"
    return f"https://sqs.{region}.{domain}/{account}/{name}"


def record_to_message(record: Mapping[str, Any]) -> QueueMessage:
    """One SQS record of a Lambda event as a QueueMessage."""
    attributes = {str(k): str(v) for k, v in (record.get("attributes") or {}).items()}
    sent = attributes.get("SentTimestamp")
    try:
        receive_count = int(attributes.get("ApproximateReceiveCount", "1"))
    except ValueError:
        receive_count = 1
    return QueueMessage(
        message_id=str(record["messageId"]),
        receipt_handle=str(record.get("receiptHandle", "")),
        body=str(record.get("body", "")),
        queue_url=queue_url_from_arn(str(record.get("eventSourceARN", ""))),
        receive_count=receive_count,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=timezone.utc)
        if sent and sent.isdigit()
        else None,
        attributes=attributes,
        message_attributes=dict(record.get("messageAttributes") or {}),
    )


def _store(url: str) -> Store:
    from commproc_core.runtime.database import check_target, resolve_target

    # $COMMPROC_SCHEMA and $COMMPROC_TABLE_PREFIX reach tables a host created in its own layout.
    target = resolve_target(url or None)
    key = f"{target.url}|{target.schema or ''}|{target.table_prefix}"
    store = _STORES.get(key)
    if store is None:
        from commproc_core.stores.sql.factory import open_store_from_environment

        check_target(target)
        store = _STORES[key] = open_store_from_environment(
            target.url, schema=target.schema, table_prefix=target.table_prefix
        )
    return store


def _cached_processor(
    channel_type: str | None, config: Mapping[str, Any] | None, store_url: str | None, factory: Any
) -> Any:
    channel = channel_type or os.environ.get(CHANNEL_ENV, "")
    if not channel:
        raise ConfigError(f"no channel: call make_handler('sms') or set {CHANNEL_ENV}")
    if config is None:
        from commproc_core.runtime.settings import config_from_text

        raw = os.environ.get(CONFIG_ENV, "")
        config = config_from_text(raw, f"${CONFIG_ENV}") if raw else {}
    url = store_url or ""
    # A factory handed in may register its own processors: it is part of the key.
    key = (channel, url, json.dumps(config, sort_keys=True, default=str), id(factory))
    processor = _PROCESSORS.get(key)
    if processor is None:
        from commproc_core.factory import ProcessorFactory

        factory = factory or ProcessorFactory(_store(url))
        if factory.store is None:
            factory.store = _store(url)
        # Lambda owns the queue (receive and delete): the processor never talks to SQS.
        processor = _PROCESSORS[key] = factory.build_processor(channel, None, config)
    return processor


class SQSHandler:
    """A Lambda handler: ``handler(event, context)`` for an SQS event; see :func:`make_handler`."""

    def __init__(self, processor: ChannelProcessor) -> None:
        self.processor = processor

    def __call__(self, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
        del context
        records = event.get("Records")
        if not isinstance(records, list):
            raise ValueError("not an SQS event: no Records list (is the function behind an SQS mapping?)")
        messages = [record_to_message(record) for record in records]
        report = self.processor.process_batch(messages, acknowledge=False)
        failures = [o.message_id for o in report.outcomes if o.outcome == "retry"]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def make_handler(
    channel_type: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    store_url: str | None = None,
    processor: ChannelProcessor | None = None,
    factory: Any = None,
) -> SQSHandler:
    """A Lambda handler processing SQS records through ``channel_type``'s processor.

    ``channel_type`` defaults to ``$COMMPROC_CHANNEL``, ``config`` to the
    JSON in ``$COMMPROC_CHANNEL_CONFIG``, ``store_url`` to
    ``$COMMPROC_DATABASE_URL`` (use PostgreSQL: a Lambda's disk is not
    shared), with ``$COMMPROC_SCHEMA`` and ``$COMMPROC_TABLE_PREFIX`` when the
    tables live in a host's schema or under a prefix. Pass ``processor`` to
    use one you built, or ``factory`` (a ProcessorFactory, for example with
    registered processors or a sender).
    The processor is built now, during the container's init phase, and
    reused by every invocation the container serves.
    """
    if processor is None:
        processor = _cached_processor(channel_type, config, store_url, factory)
    return SQSHandler(processor)


def clear_cache() -> None:
    """Close and forget cached stores and processors (tests; a container never needs it)."""
    for processor in _PROCESSORS.values():
        processor.close()
    for store in _STORES.values():
        store.close()
    _PROCESSORS.clear()
    _STORES.clear()
