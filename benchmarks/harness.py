"""One benchmark run: a fresh store, seeded, then a queue of bodies drained through a processor.

Only APIs meant to outlive internal rewrites are used here: the processors
built with ``queue=``/``store=``/``config=``, ``commproc_core.testing.drain``,
``MemoryQueue``, ``MemoryStore``, ``SQLStore`` and ``upgrade``, and the
store's unit of work to seed the outbox and leads.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from workloads import Workload

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
PG_URL_ENV = "COMMPROC_BENCH_POSTGRES_URL"

#: Processor config per channel: no signatures to check (the bodies are unsigned;
#: signature checks are measured by the channel tests, not here).
CONFIGS: dict[str, dict[str, Any]] = {
    "sms": {},
    "email": {"sns_signature": "off"},
    "null": {},
}


def pg_url() -> str:
    return os.environ.get(PG_URL_ENV, DEFAULT_PG)


def null_processor_class() -> type[Any]:
    """The null channel: parses a small JSON event and records it, nothing else (the pipeline's own cost)."""
    from commproc_core.model import CommunicationEvent
    from commproc_core.testing import ExampleProcessor

    class NullProcessor(ExampleProcessor):
        channel_type = "null"

        def process_event(self, event_data: Any) -> Any:
            return CommunicationEvent(
                channel="null",
                provider="null",
                event_type="message",
                provider_message_id=event_data.event_id,
            )

    return NullProcessor


def processor_class(channel: str) -> type[Any]:
    if channel == "sms":
        from commproc_sms import SMSProcessor

        return SMSProcessor
    if channel == "email":
        from commproc_email import EmailProcessor

        return EmailProcessor
    return null_processor_class()


@contextmanager
def open_store(kind: str, url: str | None = None) -> Iterator[Any]:
    """A fresh, empty store: memory, a SQLite file (WAL, the store's defaults), or a new PostgreSQL schema.

    ``url`` overrides the PostgreSQL URL the store connects through (the
    counting proxy); the schema itself is made and dropped directly.
    """
    if kind == "memory":
        from commproc_core.stores import MemoryStore

        yield MemoryStore()
        return
    from commproc_core.stores.sql import SQLStore, upgrade

    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="commproc-bench-") as tmp:
            file_url = f"sqlite:///{tmp}/bench.db"
            upgrade(file_url)
            store = SQLStore(file_url)
            try:
                yield store
            finally:
                store.close()
        return
    if kind != "postgres":
        raise ValueError(f"unknown store {kind!r}")
    with pg_schema() as schema:
        upgrade(pg_url(), schema=schema)
        store = SQLStore(url or pg_url(), schema=schema)
        try:
            yield store
        finally:
            store.close()


@contextmanager
def pg_schema() -> Iterator[str]:
    """A new, empty PostgreSQL schema, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_url().replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield schema
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        engine.dispose()


def seed(store: Any, workload: Workload) -> None:
    """Store the outbound messages the status events are about, and the email leads."""
    from commproc_core.model import Lead, OutboundMessage

    outbound = [
        OutboundMessage(
            channel=o.channel,
            to=o.to,
            sender=o.sender,
            messaging_service_sid=o.messaging_service_sid,
            body=o.body,
            status=o.status,
            reason="campaign",
            provider_message_id=o.provider_message_id,
            attempts=1,
        )
        for o in workload.outbound
    ]
    leads = [Lead(email=address, email_key=address, source="import") for address in workload.leads]
    rows: list[tuple[str, Any]] = [("leads", r) for r in leads] + [("outbox", r) for r in outbound]
    for start in range(0, max(len(rows), 1), 500):
        with store.unit_of_work() as uow:
            for table, record in rows[start : start + 500]:
                getattr(uow, table).add(record)
            uow.commit()


@dataclass
class RunResult:
    """One drain of a queue: what it took and what the pipeline reported."""

    seconds: float
    cpu_seconds: float
    messages: int
    events: int
    batches: int
    stats: dict[str, Any]
    #: Queue API calls while draining (receives, deletes, visibility changes).
    queue_calls: int


def prepare(channel: str, workload: Workload, store: Any) -> Any:
    """A processor on a loaded in-memory queue, its store seeded; returns (processor, queue)."""
    from commproc_core.queues import MemoryQueue

    seed(store, workload)
    queue = MemoryQueue(f"memory://bench-{channel}", visibility_timeout=600)
    queue.send_batch(workload.bodies)
    queue.calls.clear()
    processor = processor_class(channel)(queue=queue, store=store, config=CONFIGS[channel])
    return processor


def drain_timed(processor: Any, workload: Workload, *, on_start: Any = None) -> RunResult:
    """Drain the processor's queue; check that every event was processed exactly once."""
    from commproc_core.testing import drain

    gc.collect()
    if on_start is not None:
        on_start()
    started, cpu = time.perf_counter(), time.process_time()
    stats = drain(processor)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    processor.close()
    summary = dict(stats)
    check(summary, workload)
    messages = len(workload.bodies)
    calls = sum(processor.queue.calls.values())
    return RunResult(seconds, cpu_seconds, messages, workload.events, -(-messages // 10), summary, calls)


def check(stats: dict[str, Any], workload: Workload) -> None:
    """A run that lost, failed or retried anything measures nothing: stop with the stats."""
    problems = []
    if stats.get("received") != len(workload.bodies) or stats.get("deleted") != len(workload.bodies):
        problems.append(f"{len(workload.bodies)} messages sent")
    if stats.get("processed") != workload.events:
        problems.append(f"{workload.events} events expected processed")
    for name in ("failed", "retried", "duplicates", "delete_failed"):
        if stats.get(name):
            problems.append(f"{name} should be 0")
    if problems:
        shown = {k: v for k, v in stats.items() if k != "elapsed"}
        raise RuntimeError(f"{workload.channel} run inconsistent ({'; '.join(problems)}): {shown}")


def null_bodies(events: int) -> list[str]:
    import json

    return [
        json.dumps({"id": f"e{i}", "from": f"+1415555{i % 2000:04d}", "text": f"message {i}"})
        for i in range(events)
    ]


def first(values: Sequence[Any]) -> Any:
    return values[0] if values else None
