"""The benchmark cases, and how one round of each is run (inside a worker process).

A worker imports commproc from its ``PYTHONPATH`` (one revision's ``src``)
and runs what the orchestrator in ``pipeline.py`` asks, one request at a
time: a timed round of a case, or its untimed counting pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from counting import PgProxy, SQLiteTrace, sqlite_tracing
from email_workloads import email_workload
from harness import drain_timed, null_bodies, open_store, pg_url, prepare
from workloads import Workload, sms_workload

__all__ = ["CASES", "Case", "run_request"]


@dataclass(frozen=True)
class Case:
    name: str
    #: ``drain`` (a processor drains a queue), ``floor``, ``import``, ``roundtrips`` or ``workers``.
    kind: str
    store: str | None = None
    channel: str | None = None
    events: int = 0
    quick_events: int = 0
    multirow: bool = False
    #: Runs in the timed rounds.
    timed: bool = True
    #: Has an untimed counting pass (statements, round trips).
    counted: bool = True

    @property
    def needs_postgres(self) -> bool:
        return self.store == "postgres"

    def size(self, quick: bool) -> int:
        return self.quick_events if quick else self.events


#: Events per round (queue messages for ``workers``) are equal across stores so that the
#: workload's mix (first contacts, keyword and status shares) is the same everywhere.
CASES: tuple[Case, ...] = (
    Case("import", "import", events=1, quick_events=1, counted=False),
    Case("null-memory", "drain", "memory", "null", 5_000, 300, counted=False),
    Case("sms-memory", "drain", "memory", "sms", 500, 60, counted=False),
    Case("sms-sqlite", "drain", "sqlite", "sms", 500, 60),
    Case("sms-postgres", "drain", "postgres", "sms", 500, 60),
    Case("email-memory", "drain", "memory", "email", 500, 60, counted=False),
    Case("email-sqlite", "drain", "sqlite", "email", 500, 60),
    Case("email-postgres", "drain", "postgres", "email", 500, 60),
    Case("floor-sqlite", "floor", "sqlite", events=2_000, quick_events=100),
    Case("floor-sqlite-multirow", "floor", "sqlite", events=2_000, quick_events=100, multirow=True),
    Case("floor-postgres", "floor", "postgres", events=2_000, quick_events=100),
    Case("floor-postgres-multirow", "floor", "postgres", events=2_000, quick_events=100, multirow=True),
    Case("roundtrips-postgres", "roundtrips", "postgres", events=100, quick_events=20, timed=False),
    Case("workers-postgres", "workers", "postgres", events=500, quick_events=60, counted=False),
)


# -- workloads, built once per worker ---------------------------------------------------

_WORKLOADS: dict[tuple[Any, ...], Workload] = {}


def workload(channel: str, events: int, **options: Any) -> Workload:
    key = (channel, events, tuple(sorted(options.items())))
    if key not in _WORKLOADS:
        if channel == "sms":
            _WORKLOADS[key] = sms_workload(events, **options)
        elif channel == "email":
            _WORKLOADS[key] = email_workload(events, **options)
        else:
            _WORKLOADS[key] = Workload("null", null_bodies(events), events)
    return _WORKLOADS[key]


# -- counting ------------------------------------------------------------------------------


@contextmanager
def counted_store(kind: str) -> Iterator[tuple[Any, Any]]:
    """A fresh store whose statements are counted: (store, counter with reset/activate/read)."""
    with ExitStack() as stack:
        if kind == "sqlite":
            trace = stack.enter_context(sqlite_tracing())
            store = stack.enter_context(open_store("sqlite"))
            yield store, _TraceCounter(trace)
        elif kind == "postgres":
            proxy = _proxy()
            stack.callback(proxy.close)
            store = stack.enter_context(open_store("postgres", url=proxy_url(proxy)))
            yield store, _ProxyCounter(proxy)
        else:
            raise ValueError(f"nothing to count on {kind}")


class _TraceCounter:
    def __init__(self, trace: SQLiteTrace) -> None:
        self.trace = trace

    def start(self) -> None:
        self.trace.statements = 0
        self.trace.active = True

    def read(self) -> dict[str, int | None]:
        self.trace.active = False
        return {"statements": self.trace.statements, "round_trips": None}


class _ProxyCounter:
    def __init__(self, proxy: PgProxy) -> None:
        self.proxy = proxy

    def start(self) -> None:
        self.proxy.reset()
        self.proxy.active = True

    def read(self) -> dict[str, int | None]:
        self.proxy.active = False
        return {"statements": self.proxy.statements, "round_trips": self.proxy.round_trips}


def _proxy() -> PgProxy:
    from sqlalchemy.engine import make_url

    url = make_url(pg_url())
    return PgProxy(url.host or "127.0.0.1", url.port or 5432)


def proxy_url(proxy: PgProxy) -> str:
    """The benchmark's PostgreSQL URL, through the counting proxy, in clear text."""
    from sqlalchemy.engine import make_url

    url = make_url(pg_url()).set(host="127.0.0.1", port=proxy.port)
    url = url.update_query_dict({"sslmode": "disable", "gssencmode": "disable"})
    return url.render_as_string(hide_password=False)


# -- running one request ----------------------------------------------------------------


def run_request(
    case: Case, mode: str, quick: bool, profiler: Any = None, events: int | None = None
) -> dict[str, Any]:
    """One timed round (``mode="time"``) or the counting pass (``"count"``) of ``case``.

    ``profiler`` (a cProfile.Profile) runs while a ``drain`` case's queue is
    drained; ``events`` replaces the case's own size.
    """
    size = events or case.size(quick)
    if case.kind == "import":
        return _import_time()
    if case.kind == "drain":
        return _drain(case, size, count=mode == "count", profiler=profiler)
    if case.kind == "floor":
        return _floor(case, size, count=mode == "count")
    if case.kind == "roundtrips":
        return _roundtrips(size)
    if case.kind == "workers":
        from stress import run_workers

        one = run_workers(1, size)
        two = run_workers(2, size)
        return {"events": size, "one": one, "two": two}
    raise ValueError(f"unknown case kind {case.kind!r}")


def _import_time() -> dict[str, Any]:
    code = (
        "import time; started = time.perf_counter(); import commproc_core; "
        "print(time.perf_counter() - started)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    return {"seconds": float(out.stdout.strip()), "events": 1}


def _drain(case: Case, size: int, *, count: bool, profiler: Any = None) -> dict[str, Any]:
    assert case.channel is not None and case.store is not None
    load = workload(case.channel, size)
    if not count:
        with open_store(case.store) as store:
            processor = prepare(case.channel, load, store)
            try:
                run = drain_timed(processor, load, on_start=profiler.enable if profiler else None)
            finally:
                if profiler is not None:
                    profiler.disable()
        return {
            "seconds": run.seconds,
            "cpu_seconds": run.cpu_seconds,
            "events": run.events,
            "messages": run.messages,
            "queue_calls": run.queue_calls,
        }
    with counted_store(case.store) as (store, counter):
        processor = prepare(case.channel, load, store)
        run = drain_timed(processor, load, on_start=counter.start)
        counts = counter.read()
    return {"events": run.events, "messages": run.messages, "batches": run.batches, **counts}


def _floor(case: Case, size: int, *, count: bool) -> dict[str, Any]:
    from floor import floor_postgres, floor_sqlite, pg_dsn

    if case.store == "sqlite":
        trace = SQLiteTrace() if count else None
        if trace is not None:
            trace.active = True
        result = floor_sqlite(size, multirow=case.multirow, trace=trace)
        statements, round_trips = (trace.statements if trace else None), None
    else:
        if count:
            proxy = _proxy()
            try:
                result = floor_postgres(
                    size, multirow=case.multirow, dsn=pg_dsn(proxy_url(proxy)), proxy=proxy
                )
            finally:
                proxy.close()
        else:
            result = floor_postgres(size, multirow=case.multirow, dsn=pg_dsn(pg_url()))
        statements, round_trips = result.statements, result.round_trips
    out: dict[str, Any] = {"events": result.events, "batches": -(-result.events // 10)}
    if count:
        out.update(statements=statements, round_trips=round_trips)
    else:
        out.update(seconds=result.seconds, cpu_seconds=result.cpu_seconds)
    return out


def _roundtrips(size: int) -> dict[str, Any]:
    """PostgreSQL statements and round trips for plain inbound messages and SES deliveries."""
    parts: dict[str, Any] = {}
    first = workload("sms", size, senders=size, status_share=0.0, keyword_share=0.0, round_robin=True)
    again = workload(
        "sms", size, senders=size, status_share=0.0, keyword_share=0.0, round_robin=True, salt="again"
    )
    with counted_store("postgres") as (store, counter):
        for label, load in (("sms_first_contact", first), ("sms_known_sender", again)):
            processor = prepare("sms", load, store)
            run = drain_timed(processor, load, on_start=counter.start)
            parts[label] = {"events": run.events, "batches": run.batches, **counter.read()}
    ses = workload("email", size, ses_deliveries_only=True)
    with counted_store("postgres") as (store, counter):
        processor = prepare("email", ses, store)
        run = drain_timed(processor, ses, on_start=counter.start)
        parts["ses_delivery"] = {"events": run.events, "batches": run.batches, **counter.read()}
    return {"parts": parts}
