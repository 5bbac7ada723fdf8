"""Pipeline throughput: synthetic events through the in-memory queue into a store.

    python benchmarks/pipeline.py [--events 20000] [--store memory|sqlite|postgres] [--channel example|null]

Prints events per second and queue API calls per message. Both channels run
in the same process one after the other, so their ratio is meaningful even
on a noisy machine; absolute figures are not.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from commproc_core.model import CommunicationEvent
from commproc_core.pipeline.processor import EventPayload
from commproc_core.queues import MemoryQueue
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleEvent, ExampleProcessor, drain

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class NullProcessor(ExampleProcessor):
    """Parses and records the event, nothing else: the pipeline's own cost."""

    channel_type = "null"

    def process_event(self, event_data: ExampleEvent) -> CommunicationEvent:
        return CommunicationEvent(
            channel="null", provider="null", event_type="message", provider_message_id=event_data.event_id
        )

    def validate_event(self, event_data: EventPayload) -> Sequence[ExampleEvent]:
        return super().validate_event(event_data)


@contextmanager
def open_bench_store(kind: str) -> Iterator[Any]:
    if kind == "memory":
        yield MemoryStore()
        return
    from commproc_core.stores.sql import SQLStore, upgrade

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            store = SQLStore(url)
            try:
                yield store
            finally:
                store.close()
        return
    import sqlalchemy as sa

    url = os.environ.get("COMMPROC_BENCH_POSTGRES_URL", DEFAULT_PG)
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        upgrade(url, schema=schema)
        store = SQLStore(url, schema=schema)
        try:
            yield store
        finally:
            store.close()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def run(channel: str, events: int, store_kind: str) -> dict[str, float]:
    queue = MemoryQueue(f"memory://{channel}", visibility_timeout=300)
    bodies = [
        json.dumps({"id": f"e{i}", "from": f"+1415{i % 5000:07d}", "text": f"message {i}"})
        for i in range(events)
    ]
    queue.send_batch(bodies)
    cls = NullProcessor if channel == "null" else ExampleProcessor
    with open_bench_store(store_kind) as store:
        processor = cls(queue=queue, store=store)
        queue.calls.clear()
        started = time.perf_counter()
        stats = drain(processor)
        elapsed = time.perf_counter() - started
        processor.close()
    if stats.processed != events:
        raise SystemExit(f"expected {events} processed events, got {stats.processed}: {dict(stats)}")
    calls = sum(queue.calls.values())
    return {
        "events": events,
        "seconds": elapsed,
        "per_second": events / elapsed,
        "calls_per_message": calls / events,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--store", choices=["memory", "sqlite", "postgres", "all"], default="memory")
    parser.add_argument("--channel", choices=["example", "null", "both"], default="both")
    args = parser.parse_args(argv)
    stores = ["memory", "sqlite", "postgres"] if args.store == "all" else [args.store]
    channels = ["null", "example"] if args.channel == "both" else [args.channel]
    print(f"{'store':<10}{'channel':<10}{'events':>8}{'seconds':>10}{'events/s':>12}{'queue calls/msg':>18}")
    for store_kind in stores:
        for channel in channels:
            result = run(channel, args.events, store_kind)
            print(
                f"{store_kind:<10}{channel:<10}{result['events']:>8}{result['seconds']:>10.2f}"
                f"{result['per_second']:>12,.0f}{result['calls_per_message']:>18.3f}"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
