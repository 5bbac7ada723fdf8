"""`commproc stats` on the SQL store: aggregate queries only, the same figures as counting records, fast on a year."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import attrs
import pytest
import sqlalchemy as sa

from commproc_core.errors import ThrottledError
from commproc_core.model import CommunicationEvent, ProcessingRecord, utcnow
from commproc_core.queues import MemoryQueue
from commproc_core.runtime.cli import main
from commproc_core.runtime.stats_query import BUCKETS, collect_stats, percentile_from_buckets
from commproc_core.stores import MemoryStore
from commproc_core.stores.sql import SQLStore
from commproc_core.stores.sql.schema import SQLSchema
from commproc_core.testing import ExampleProcessor, drain


def fill(store) -> None:
    queue = MemoryQueue("memory://example")
    processor = ExampleProcessor(queue=queue, store=store)
    processor.inject["e9"] = ThrottledError("busy")
    queue.send_batch(
        [json.dumps({"id": f"e{i}", "from": "+14155550100", "text": "hi"}) for i in range(10)]
        + ["{broken", json.dumps({"from": "+1"}), json.dumps({"id": "e0", "from": "+14155550100"})]
    )
    drain(processor)


def test_sql_figures_equal_the_record_by_record_figures(commproc_db) -> None:
    sql, memory = SQLStore(commproc_db), MemoryStore()
    fill(sql)
    fill(memory)
    now = utcnow() + timedelta(seconds=1)
    since = now - timedelta(hours=1)
    from_sql = collect_stats(sql, since, now, recent=5)
    from_records = collect_stats(memory, since, now, recent=5)
    sql.close()
    for key in ("event_types", "failures_by_reason"):
        assert from_sql[key] == from_records[key]
    counts = ("processed", "failed", "duplicate", "ignored", "retrying")
    assert [{k: c[k] for k in counts} for c in from_sql["channels"]] == [
        {"processed": 9, "failed": 2, "duplicate": 1, "ignored": 0, "retrying": 1}
    ]
    assert [{k: c[k] for k in counts} for c in from_records["channels"]] == [
        {k: from_sql["channels"][0][k] for k in counts}
    ]
    assert [f["reason"] for f in from_sql["recent_failures"]] == ["invalid_payload", "invalid_payload"]
    timing = from_sql["channels"][0]["duration_ms"]
    assert 0 < timing["p50"] <= timing["p95"] <= timing["max"]


def test_percentiles_from_buckets() -> None:
    # Sparse data (one or two values per bucket) gives the exact nearest-rank value.
    values = sorted([0.3, 0.35, 4.0, 17.0, 180.0])
    buckets: dict[int, list[float]] = {}
    for v in values:
        buckets.setdefault(next(i for i, b in enumerate(BUCKETS) if v <= b), []).append(v)
    grouped = [(len(vs), min(vs), max(vs)) for _, vs in sorted(buckets.items())]
    for fraction in (0.0, 0.25, 0.5, 0.75, 0.95, 1.0):
        assert percentile_from_buckets(grouped, fraction) == values[round(fraction * (len(values) - 1))]
    # Dense data: never outside the real range of the bucket holding the rank.
    rng = random.Random(7)
    dense = sorted(rng.uniform(10, 20) for _ in range(1000))
    low = [v for v in dense if v <= 10]
    mid = [v for v in dense if 10 < v <= 20]
    grouped = [(len(g), min(g), max(g)) for g in (low, mid) if g]
    estimate = percentile_from_buckets(grouped, 0.5)
    assert min(mid) <= estimate <= max(mid)
    assert abs(estimate - dense[500]) < 0.5
    assert percentile_from_buckets([], 0.5) is None


def _rows(schema: SQLSchema, table: str, records) -> list[dict]:
    columns = schema.tables[table].columns
    rows = []
    for record in records:
        values = attrs.asdict(record, recurse=False)
        rows.append({c.name: (c.dump(values[c.name]) if c.dump else values[c.name]) for c in columns})
    return rows


def test_a_year_of_records_is_counted_by_the_database(commproc_db, capsys) -> None:
    store = SQLStore(commproc_db)
    store.check_schema()
    schema = SQLSchema()
    now = utcnow()
    rng = random.Random(1)
    count = 12_000
    records, events = [], []
    for i in range(count):
        at = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
        status = rng.choice(["processed"] * 8 + ["failed", "duplicate"])
        records.append(
            ProcessingRecord(
                channel=rng.choice(["sms", "email"]),
                queue_message_id=f"m{i}",
                status=status,
                received_at=at,
                duration_ms=rng.uniform(0.2, 40.0) if status == "processed" else None,
            )
        )
        events.append(
            CommunicationEvent(
                channel=records[-1].channel,
                provider="twilio",
                event_type="inbound_message",
                status="failed" if status == "failed" else "processed",
                dedupe_key=f"k{i}",
                error_code="invalid_payload" if status == "failed" else None,
                recorded_at=at,
            )
        )
    with store.engine.begin() as conn:
        conn.execute(
            schema.tables["processing_records"].table.insert(), _rows(schema, "processing_records", records)
        )
        conn.execute(schema.tables["events"].table.insert(), _rows(schema, "events", events))
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    started = time.perf_counter()
    year = collect_stats(store, now - timedelta(days=366), now, recent=10)
    elapsed_year = time.perf_counter() - started
    assert len(statements) == 3  # one grouped query per table, and the latest failures
    assert sum("GROUP BY" in s for s in statements) == 2 and "LIMIT" in statements[2]
    assert sum(c["processed"] + c["failed"] + c["duplicate"] for c in year["channels"]) == count
    assert sum(t["count"] for t in year["event_types"]) == count
    assert len(year["recent_failures"]) == 10
    # Exact figures to compare with, counted in Python.
    processed = sorted(r.duration_ms for r in records if r.status == "processed")
    p95 = processed[round(0.95 * (len(processed) - 1))]
    by_channel = {c["channel"]: c for c in year["channels"]}
    estimate = max(c["duration_ms"]["p95"] for c in by_channel.values())
    assert abs(estimate - p95) / p95 < 0.1
    assert max(c["duration_ms"]["max"] for c in by_channel.values()) == pytest.approx(processed[-1])

    statements.clear()
    started = time.perf_counter()
    hour = collect_stats(store, now - timedelta(hours=1), now)
    elapsed_hour = time.perf_counter() - started
    assert len(statements) == 3
    expected = sum(1 for r in records if r.received_at >= now - timedelta(hours=1))
    assert sum(c["processed"] + c["failed"] + c["duplicate"] for c in hour["channels"]) == expected
    # The window's index bounds the work: an hour out of a year costs milliseconds.
    assert elapsed_hour < 0.25, elapsed_hour
    assert elapsed_year < 5, elapsed_year
    store.close()

    assert main(["stats", "--database", commproc_db, "--since", "400d", "--json"]) == 0
    assert sum(t["count"] for t in json.loads(capsys.readouterr().out)["event_types"]) == count
    assert main(["stats", "--database", commproc_db, "--since", "1e300d"]) == 2
    assert "--since takes a duration" in capsys.readouterr().err
