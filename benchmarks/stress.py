"""Several worker processes draining shared queues into one PostgreSQL schema.

    python benchmarks/stress.py [--workers 4] [--messages 13000] [--email-share 0.3]

The queues are :class:`~commproc_core.queues.MemoryQueue` objects served to
the workers by a ``multiprocessing`` manager, so every worker receives,
deletes and backs off on the same queues with SQS semantics (visibility,
receive counts, redelivery). Each worker process runs an SMS and an email
processor against the same PostgreSQL schema, alternating between the two
queues, until both are empty with nothing in flight.

Reported: throughput, batches retried, deadlock and serialization failures
(from the workers' commproc log records, and the server's
``pg_stat_database.deadlocks`` for the database, which other users of the
server also move), and an exactly-once check of the result: the queues are
empty, every event is recorded once as processed, every queue item has
exactly one processing record, and each inbound sender has exactly one lead
and one conversation. The exit status is 1 when that check fails.

:func:`run_workers` is also what ``pipeline.py``'s ``workers-postgres`` case
uses (1 worker against 2, SMS only).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from contextlib import suppress
from multiprocessing.managers import BaseManager
from typing import Any

from email_workloads import email_workload
from harness import CONFIGS, pg_schema, pg_url, processor_class, seed
from workloads import Workload, sms_workload

__all__ = ["run_stress", "run_workers"]

#: Retried batches come back after a second, not the production default's ten.
STRESS_CONFIG = {"retry_base_seconds": 1, "max_backoff_seconds": 2}
_CONFLICT = re.compile(r"deadlock|could not serialize|serializ", re.IGNORECASE)


class QueueManager(BaseManager):
    """Serves the shared queues to the worker processes."""


class SharedQueue:
    """Server side: a MemoryQueue answering in plain data (records holding mapping proxies do not pickle)."""

    def __init__(self, name: str) -> None:
        from commproc_core.queues import MemoryQueue

        self.queue = MemoryQueue(f"memory://stress-{name}", visibility_timeout=120)

    def send_batch(self, bodies: list[str]) -> int:
        return len(self.queue.send_batch(bodies))

    def receive(self, max_messages: int, wait_time_seconds: int, visibility_timeout: int | None) -> list[Any]:
        import attrs

        received = self.queue.receive(max_messages, wait_time_seconds, visibility_timeout)
        return [
            {k: dict(v) if isinstance(v, Mapping) else v for k, v in attrs.asdict(m, recurse=False).items()}
            for m in received
        ]

    def delete_batch(self, handles: list[str]) -> tuple[Any, Any]:
        result = self.queue.delete_batch(handles)
        return tuple(result.succeeded), tuple(tuple(f) for f in result.failed)

    def change_visibility_batch(self, changes: list[tuple[str, int]]) -> tuple[Any, Any]:
        from commproc_core.ports import VisibilityChange

        result = self.queue.change_visibility_batch([VisibilityChange(h, t) for h, t in changes])
        return tuple(result.succeeded), tuple(tuple(f) for f in result.failed)

    def depth(self) -> tuple[int, int]:
        """(waiting, in flight)."""
        return self.queue.approximate_depth(), self.queue.in_flight()


_QUEUES: dict[str, SharedQueue] = {}


def _shared(name: str) -> SharedQueue:
    if name not in _QUEUES:
        _QUEUES[name] = SharedQueue(name)
    return _QUEUES[name]


QueueManager.register("queue", callable=_shared)


class RemoteQueue:
    """Worker side: the MessageQueue port over a shared queue's proxy."""

    def __init__(self, proxy: Any, url: str) -> None:
        self.proxy = proxy
        self._url = url

    @property
    def url(self) -> str:
        return self._url

    def receive(
        self, max_messages: int = 10, wait_time_seconds: int = 20, visibility_timeout: int | None = None
    ) -> list[Any]:
        from commproc_core.model import QueueMessage

        return [
            QueueMessage(**m) for m in self.proxy.receive(max_messages, wait_time_seconds, visibility_timeout)
        ]

    def delete_batch(self, receipt_handles: Any) -> Any:
        from commproc_core.ports import BatchResult

        succeeded, failed = self.proxy.delete_batch(list(receipt_handles))
        return BatchResult(succeeded=succeeded, failed=failed)

    def change_visibility_batch(self, changes: Any) -> Any:
        from commproc_core.ports import BatchResult

        pairs = [(c.receipt_handle, c.timeout_seconds) for c in changes]
        succeeded, failed = self.proxy.change_visibility_batch(pairs)
        return BatchResult(succeeded=succeeded, failed=failed)

    def approximate_depth(self) -> int:
        waiting: int = self.proxy.depth()[0]
        return waiting

    def settled(self) -> bool:
        """Nothing waiting and nothing in flight."""
        return tuple(self.proxy.depth()) == (0, 0)


class _Tally(logging.Handler):
    """Counts the commproc warnings and errors a worker logs, by kind (never their text)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.conflicts = 0
        self.kinds: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if _CONFLICT.search(text):
            self.conflicts += 1
        self.kinds[record.msg if isinstance(record.msg, str) else type(record.msg).__name__] += 1


def _worker(address: Any, authkey: bytes, schema: str, channels: list[str], ready: Any, results: Any) -> None:
    try:
        results.put(_work(address, authkey, schema, channels, ready))
    except BaseException:
        import traceback

        ready.abort()  # the others and the parent stop waiting for this worker
        results.put({"error": traceback.format_exc()})


def _work(address: Any, authkey: bytes, schema: str, channels: list[str], ready: Any) -> dict[str, Any]:
    from commproc_core.stores.sql import SQLStore

    tally = _Tally()
    logging.getLogger("commproc").addHandler(tally)
    manager = QueueManager(address=address, authkey=authkey)
    manager.connect()
    store = SQLStore(pg_url(), schema=schema)
    queues = {
        channel: RemoteQueue(manager.queue(channel), f"memory://stress-{channel}")  # type: ignore[attr-defined]
        for channel in channels
    }
    processors = {
        channel: processor_class(channel)(
            f"memory://stress-{channel}",
            {**CONFIGS[channel], **STRESS_CONFIG},
            queue=queues[channel],
            store=store,
        )
        for channel in channels
    }
    with store.unit_of_work() as uow:
        uow.leads.count()  # a connection in the pool before the clock starts
    _warm_up(channels)
    totals: Counter[str] = Counter()
    ready.wait()
    idle = 0
    while True:
        received = 0
        for processor in processors.values():
            stats = processor.process_messages(max_messages=10, wait_time=0)
            received += stats.received
            totals.update({k: v for k, v in dict(stats).items() if k != "elapsed"})
        if received:
            idle = 0
            continue
        if all(q.settled() for q in queues.values()):
            break
        idle += 1
        time.sleep(min(0.05 * idle, 0.5))
    for processor in processors.values():
        processor.close()
    store.close()
    return {"stats": dict(totals), "conflicts": tally.conflicts, "log_kinds": dict(tally.kinds)}


def _warm_up(channels: list[str]) -> None:
    """Process a little traffic into a throwaway MemoryStore: lazy imports load before the clock starts."""
    from harness import prepare

    from commproc_core.stores import MemoryStore
    from commproc_core.testing import drain

    for channel in channels:
        load = sms_workload(30, seed=99) if channel == "sms" else email_workload(30, seed=99)
        processor = prepare(channel, load, MemoryStore())
        drain(processor)
        processor.close()


def _server_deadlocks() -> int:
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url().replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            value = conn.execute(
                sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            ).scalar()
            return int(value or 0)
    finally:
        engine.dispose()


def _run(workers: int, loads: dict[str, Workload], reference: dict[str, int] | None = None) -> dict[str, Any]:
    """Drain ``loads`` (channel -> workload) with ``workers`` processes into a fresh schema."""
    from commproc_core.stores.sql import SQLStore, upgrade

    context = multiprocessing.get_context("spawn")
    with pg_schema() as schema:
        upgrade(pg_url(), schema=schema)
        store = SQLStore(pg_url(), schema=schema)
        try:
            for load in loads.values():
                seed(store, load)
        finally:
            store.close()
        manager = QueueManager(address=("127.0.0.1", 0), authkey=b"commproc-bench", ctx=context)
        manager.start()
        try:
            for channel, load in loads.items():
                manager.queue(channel).send_batch(load.bodies)  # type: ignore[attr-defined]
            ready = context.Barrier(workers + 1)
            results = context.Queue()
            processes = [
                context.Process(
                    target=_worker,
                    args=(manager.address, b"commproc-bench", schema, list(loads), ready, results),
                    daemon=True,
                )
                for _ in range(workers)
            ]
            for process in processes:
                process.start()
            deadlocks_before = _server_deadlocks()
            with suppress(threading.BrokenBarrierError):  # a worker failed; its report says why
                ready.wait(timeout=300)
            started = time.perf_counter()
            reports = [results.get(timeout=3600) for _ in processes]
            seconds = time.perf_counter() - started
            errors = [r["error"] for r in reports if "error" in r]
            if errors:
                raise RuntimeError(f"{len(errors)} of {workers} workers failed; the first:\n{errors[0]}")
            for process in processes:
                process.join(timeout=30)
            server_deadlocks = _server_deadlocks() - deadlocks_before
            left = {channel: tuple(manager.queue(channel).depth()) for channel in loads}  # type: ignore[attr-defined]
        finally:
            manager.shutdown()
        counts = observe(schema)
    checks = judge(counts, loads, left, reference)
    stats: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for report in reports:
        stats.update(report["stats"])
        kinds.update(report["log_kinds"])
    events = sum(load.events for load in loads.values())
    return {
        "workers": workers,
        "messages": sum(len(load.bodies) for load in loads.values()),
        "events": events,
        "seconds": seconds,
        "per_second": events / seconds,
        "stats": dict(stats),
        "conflicts_logged": sum(r["conflicts"] for r in reports),
        "server_deadlocks": server_deadlocks,
        "log_kinds": dict(kinds),
        "tables": counts,
        "checks": checks,
        "exactly_once": all(ok for ok, _ in checks.values()),
    }


#: Tables whose row counts do not depend on the order events are processed in. (Consents
#: and the outbox may: a START handled before the STOP it followed in the queue.)
ORDER_FREE = ("leads", "conversations", "participants", "threads", "messages", "events", "processing_records")


def reference_counts(loads: dict[str, Workload]) -> dict[str, int]:
    """Table counts after one processor at a time drains the same traffic into a MemoryStore."""
    from harness import prepare

    from commproc_core.stores import MemoryStore
    from commproc_core.testing import drain, table_counts

    store: Any = MemoryStore()
    for channel, load in loads.items():
        processor = prepare(channel, load, store)
        drain(processor)
        processor.close()
    return table_counts(store)


def observe(schema: str) -> dict[str, int]:
    """What the schema holds after a run: table counts, and the counts the checks need."""
    from commproc_core.stores.sql import SQLStore
    from commproc_core.testing import table_counts

    store = SQLStore(pg_url(), schema=schema)
    try:
        counts = table_counts(store)
        with store.unit_of_work() as uow:
            counts["processed_records"] = uow.processing_records.count(status="processed")
            counts["failed_events"] = uow.events.count(status="failed")
            counts["sms_conversations"] = uow.conversations.count(channel="sms") + uow.conversations.count(
                channel="whatsapp"
            )
    finally:
        store.close()
    return counts


def judge(
    counts: dict[str, int],
    loads: dict[str, Workload],
    left: dict[str, tuple[int, int]],
    reference: dict[str, int] | None,
) -> dict[str, tuple[bool, str]]:
    """(ok, detail) per check of the exactly-once result."""
    items = sum(load.events for load in loads.values())
    checks: dict[str, tuple[bool, str]] = {}
    checks["queues empty"] = (all(tuple(v) == (0, 0) for v in left.values()), f"waiting, in flight: {left}")
    done, records = counts["processed_records"], counts["processing_records"]
    checks["one processing record per event, processed"] = (
        records == done == items,
        f"{done} processed of {records} records, {items} provider events sent",
    )
    checks["no failed events"] = (counts["failed_events"] == 0, f"{counts['failed_events']} failed")
    sms = loads.get("sms")
    expected_leads = (sms.senders if sms else 0) + len(loads["email"].leads if "email" in loads else [])
    checks["one lead per person"] = (
        counts["leads"] == expected_leads,
        f"{counts['leads']} leads, {expected_leads} expected",
    )
    if sms is not None:
        checks["one conversation per SMS sender"] = (
            counts["sms_conversations"] == sms.senders,
            f"{counts['sms_conversations']} SMS/WhatsApp conversations, {sms.senders} expected",
        )
    if reference is not None:
        differ = {t: (counts[t], reference[t]) for t in ORDER_FREE if counts[t] != reference[t]}
        checks["same records as one worker"] = (
            not differ,
            f"tables differing (got, one worker): {differ}" if differ else f"{len(ORDER_FREE)} tables equal",
        )
    return checks


def run_workers(workers: int, messages: int) -> dict[str, Any]:
    """Throughput of ``workers`` processes on the realistic SMS workload (``messages`` of them)."""
    result = _run(workers, {"sms": sms_workload(messages)})
    if not result["exactly_once"]:
        raise RuntimeError(f"{workers} workers: exactly-once check failed: {result['checks']}")
    return {k: result[k] for k in ("workers", "events", "seconds", "per_second", "conflicts_logged")}


def run_stress(workers: int, messages: int, email_share: float) -> dict[str, Any]:
    """The exactly-once and deadlock run: ``messages`` SMS and email queue messages, ``workers`` processes."""
    email_messages = round(messages * email_share)
    sms = sms_workload(messages - email_messages)
    email = email_workload(10**9, max_messages=email_messages)
    loads = {"sms": sms, "email": email}
    return _run(workers, loads, reference_counts(loads))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--messages", type=int, default=13_000)
    parser.add_argument(
        "--email-share", type=float, default=0.3, help="share of queue messages that are email"
    )
    parser.add_argument("--json", help="also write the result here")
    args = parser.parse_args(argv)
    result = run_stress(args.workers, args.messages, args.email_share)
    print(
        f"{result['workers']} workers, {result['messages']:,} messages ({result['events']:,} events) "
        f"in {result['seconds']:.1f} s: {result['per_second']:,.0f} events/s"
    )
    stats = result["stats"]
    print(
        f"batches retried: {stats.get('retried', 0)} messages; duplicates recognised: "
        f"{stats.get('duplicates', 0)}; failed: {stats.get('failed', 0)}"
    )
    print(
        f"deadlock/serialization failures logged by workers: {result['conflicts_logged']}; "
        f"server deadlocks (pg_stat_database, whole database): {result['server_deadlocks']}"
    )
    for kind, count in sorted(result["log_kinds"].items(), key=lambda kv: -kv[1]):
        print(f"  {count:>6}  {kind}")
    for name, (ok, detail) in result["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=2, default=str)
    return 0 if result["exactly_once"] else 1


if __name__ == "__main__":
    sys.exit(main())
