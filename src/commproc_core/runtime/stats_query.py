"""The figures of ``commproc stats``, computed by the database: one grouped query per table.

A year of processing records must not travel to Python to be counted. On
the SQL store each table is read by one aggregate query over the window
(the ``received_at`` and ``recorded_at`` indexes bound it), plus one short
``LIMIT`` query for the most recent failures. Processing time percentiles
come from the same query: durations are grouped into 1-2-5 buckets (0.1 ms
to 10 minutes) with each bucket's count, minimum and maximum, and a
percentile is interpolated inside the bucket that holds its rank, so it is
exact when a bucket holds one or two values and never outside the bucket's
real range otherwise. Other stores (the in-memory one) are read record by
record, which is what they are for.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from commproc_core.redact import redact
from commproc_core.runtime.masking import mask_urls

__all__ = ["BUCKETS", "COUNTS", "collect_stats", "percentile_from_buckets"]

#: Processing record statuses counted per channel.
COUNTS = ("processed", "failed", "duplicate", "ignored", "retrying")

#: Upper bounds (milliseconds) of the duration buckets: 0.1, 0.2, 0.5, 1, 2, 5 ... 500000.
BUCKETS: tuple[float, ...] = tuple(m * 10.0**e for e in range(-1, 6) for m in (1, 2, 5))


def collect_stats(
    store: Any, since: datetime, now: datetime, *, channel: str | None = None, recent: int = 10
) -> dict[str, Any]:
    """The figures ``commproc stats`` prints, as a JSON-able dict."""
    engine = getattr(store, "engine", None)
    if engine is not None and hasattr(store, "table_prefix"):
        records, events, failures = _sql_rows(store, since, channel, recent)
    else:
        records, events, failures = _record_rows(store, since, channel, recent)
    return _figures(since, now, records, events, failures)


# -- the SQL store -------------------------------------------------------------------


def _bucket(column: Any, processed: Any) -> Any:
    import sqlalchemy as sa

    whens = [(column <= bound, index) for index, bound in enumerate(BUCKETS)]
    return sa.case(
        (sa.or_(sa.not_(processed), column.is_(None)), -1),
        *whens,
        else_=len(BUCKETS),
    )


def _sql_rows(
    store: Any, since: datetime, channel: str | None, recent: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]:
    import sqlalchemy as sa

    from commproc_core.stores.sql.schema import SQLSchema

    schema = SQLSchema(schema=store.schema, table_prefix=store.table_prefix)
    pr = schema.tables["processing_records"].table
    ev = schema.tables["events"].table
    status = sa.case(
        (sa.and_(pr.c.status == "received", pr.c.error_code.is_not(None)), "retrying"), else_=pr.c.status
    ).label("status")
    bucket = _bucket(pr.c.duration_ms, pr.c.status == "processed").label("bucket")
    records_query = (
        sa.select(
            pr.c.channel,
            status,
            bucket,
            sa.func.count(),
            sa.func.min(pr.c.duration_ms),
            sa.func.max(pr.c.duration_ms),
        )
        .where(pr.c.received_at >= since)
        .group_by(pr.c.channel, status, bucket)
    )
    events_query = (
        sa.select(ev.c.channel, ev.c.event_type, ev.c.status, ev.c.error_code, sa.func.count())
        .where(ev.c.recorded_at >= since)
        .group_by(ev.c.channel, ev.c.event_type, ev.c.status, ev.c.error_code)
    )
    failures_query = (
        sa.select(
            ev.c.recorded_at,
            ev.c.channel,
            ev.c.provider,
            ev.c.error_code,
            ev.c.error_detail,
            ev.c.queue_message_id,
        )
        .where(ev.c.recorded_at >= since, ev.c.status == "failed")
        .order_by(ev.c.recorded_at.desc())
        .limit(max(recent, 0))
    )
    if channel:
        records_query = records_query.where(pr.c.channel == channel)
        events_query = events_query.where(ev.c.channel == channel)
        failures_query = failures_query.where(ev.c.channel == channel)
    from commproc_core.stores.sql.engine import map_unavailable

    # Autocommit: reads only, and on SQLite no BEGIN IMMEDIATE taking the write lock.
    with map_unavailable("stats"), store.engine.connect() as raw:
        conn = raw.execution_options(isolation_level="AUTOCOMMIT")
        records = [tuple(row) for row in conn.execute(records_query)]
        events = [tuple(row) for row in conn.execute(events_query)]
        failures = [dict(row._mapping) for row in conn.execute(failures_query)] if recent > 0 else []
    return records, events, failures


# -- any other store -----------------------------------------------------------------


def _index(duration: float | None) -> int:
    if duration is None:
        return -1
    return next((i for i, bound in enumerate(BUCKETS) if duration <= bound), len(BUCKETS))


def _record_rows(
    store: Any, since: datetime, channel: str | None, recent: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[dict[str, Any]]]:
    from commproc_core.stores.spec import Range

    where: dict[str, Any] = {"channel": channel} if channel else {}
    with store.unit_of_work() as uow:
        found = uow.processing_records.find(received_at=Range(since, None), **where)
        stored = uow.events.find(recorded_at=Range(since, None), **where)
    groups: dict[tuple[str, str, int], list[float | None]] = defaultdict(list)
    for r in found:
        status = "retrying" if r.status == "received" and r.error_code else r.status
        bucket = _index(r.duration_ms) if r.status == "processed" else -1
        groups[(r.channel, status, bucket)].append(r.duration_ms)
    records = []
    for (name, status, bucket), durations in groups.items():
        known = [d for d in durations if d is not None]
        records.append(
            (name, status, bucket, len(durations), min(known, default=None), max(known, default=None))
        )
    counted = Counter((e.channel, e.event_type, e.status, e.error_code) for e in stored)
    events = [(*key, n) for key, n in counted.items()]
    failed = sorted((e for e in stored if e.status == "failed"), key=lambda e: e.recorded_at, reverse=True)
    failures = [
        {
            "recorded_at": e.recorded_at,
            "channel": e.channel,
            "provider": e.provider,
            "error_code": e.error_code,
            "error_detail": e.error_detail,
            "queue_message_id": e.queue_message_id,
        }
        for e in failed[: max(recent, 0)]
    ]
    return records, events, failures


# -- shaping ---------------------------------------------------------------------------


def percentile_from_buckets(buckets: Sequence[tuple[int, float, float]], fraction: float) -> float | None:
    """The ``fraction`` percentile of values grouped as (count, min, max) per bucket, in bucket order.

    The rank is ``fraction * (n - 1)``, rounded as ``commproc stats`` always
    rounded it; inside the bucket holding it the value is interpolated
    between the bucket's minimum and maximum.
    """
    total = sum(count for count, _, _ in buckets)
    if not total:
        return None
    rank = min(total - 1, round(fraction * (total - 1)))
    seen = 0
    for count, low, high in buckets:
        if rank < seen + count:
            if count == 1:
                return low
            return low + (high - low) * (rank - seen) / (count - 1)
        seen += count
    return buckets[-1][2]


def _figures(
    since: datetime,
    now: datetime,
    records: Iterable[tuple[Any, ...]],
    events: Iterable[tuple[Any, ...]],
    failures: list[dict[str, Any]],
) -> dict[str, Any]:
    minutes = max((now - since).total_seconds() / 60, 1e-9)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    timing: dict[str, list[tuple[int, int, float, float]]] = defaultdict(list)
    for name, status, bucket, count, low, high in records:
        counts[name][status] += int(count)
        if status == "processed" and int(bucket) >= 0 and low is not None:
            timing[name].append((int(bucket), int(count), float(low), float(high)))
    channels = []
    for name in sorted(counts):
        buckets = [(count, low, high) for _, count, low, high in sorted(timing[name])]
        channels.append(
            {
                "channel": name,
                **{k: counts[name][k] for k in COUNTS},
                "processed_per_minute": round(counts[name]["processed"] / minutes, 3),
                "failed_per_minute": round(counts[name]["failed"] / minutes, 3),
                "duration_ms": {
                    "p50": percentile_from_buckets(buckets, 0.5),
                    "p95": percentile_from_buckets(buckets, 0.95),
                    "max": max((high for _, _, high in buckets), default=None),
                },
            }
        )
    by_type: Counter[tuple[str, str, str]] = Counter()
    reasons: Counter[tuple[str, str]] = Counter()
    for name, event_type, status, error_code, count in events:
        by_type[(name, event_type, status)] += int(count)
        if status == "failed":
            reasons[(name, error_code or "unknown")] += int(count)
    return {
        "since": since.isoformat(),
        "until": now.isoformat(),
        "channels": channels,
        "event_types": [
            {"channel": c, "event_type": t, "status": s, "count": n}
            for (c, t, s), n in sorted(by_type.items())
        ],
        "failures_by_reason": [
            {"channel": c, "reason": r, "count": n}
            for (c, r), n in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        ],
        "recent_failures": [
            {
                "recorded_at": _iso(f["recorded_at"]),
                "channel": f["channel"],
                "provider": f["provider"],
                "reason": f["error_code"],
                "detail": _detail(f["error_detail"]),
                "queue_message_id": f["queue_message_id"],
            }
            for f in failures
        ],
    }


def _detail(text: str | None) -> str | None:
    # A stored detail names a field and a kind of problem; this is the second line of defence.
    if text is None:
        return None
    return mask_urls(redact(text[:400]))[:300]


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)
