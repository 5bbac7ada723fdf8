"""The storage floor: the rows of an inbound SMS written with the bare driver, a commit per 10 events.

    python benchmarks/floor.py [--events 5000] [--store sqlite|postgres|both] [--multirow]

Per event, three rows, as commproc writes them for an inbound SMS from a
known sender (a first contact adds a lead, conversation, thread and two
participants on top):

* ``messages``: the inbound message (ids, direction, channel, provider,
  provider message id, sender, recipient, a body of 30-180 characters,
  ``media`` and ``metadata`` JSON, status, timestamps);
* ``events``: its communication event (ids, channel, provider, type, status,
  dedupe key, provider message id, sender, recipient, lead, conversation and
  message ids, queue message id, timestamps, and ~650 bytes of ``data``
  JSON, the size the SMS channel stores);
* ``processing_records``: the queue item's record (channel, queue message
  id, item index, status, attempts, dedupe key, timestamps, duration).

The tables are the floor's own, with the columns, primary keys, unique keys
and indexes commproc's tables have today, so the floor does not move when
commproc's schema does. Rows are built before the clock starts: the floor is
the driver and the database only.

Row at a time (the default): three INSERTs per event, ``BEGIN``/``COMMIT``
around every 10 events. ``--multirow``: one multi-row INSERT per table per
10 events. SQLite uses a file in WAL mode with ``synchronous=NORMAL`` and
``BEGIN IMMEDIATE``, as commproc's SQLite store does; PostgreSQL uses
psycopg 3 with its defaults (as the store does).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["FloorResult", "floor_postgres", "floor_sqlite", "rows_for"]

COMMIT_EVERY = 10

_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    # name, SQLite type, PostgreSQL type
    "messages": (
        ("id", "TEXT PRIMARY KEY", "text PRIMARY KEY"),
        ("conversation_id", "TEXT NOT NULL", "text NOT NULL"),
        ("thread_id", "TEXT", "text"),
        ("direction", "TEXT NOT NULL", "text NOT NULL"),
        ("channel", "TEXT NOT NULL", "text NOT NULL"),
        ("provider", "TEXT NOT NULL", "text NOT NULL"),
        ("provider_message_id", "TEXT", "text"),
        ("sender", "TEXT", "text"),
        ("recipient", "TEXT", "text"),
        ("body", "TEXT", "text"),
        ("subject", "TEXT", "text"),
        ("media", "TEXT NOT NULL", "jsonb NOT NULL"),
        ("status", "TEXT", "text"),
        ("error_code", "TEXT", "text"),
        ("error_message", "TEXT", "text"),
        ("created_at", "TEXT NOT NULL", "timestamptz NOT NULL"),
        ("updated_at", "TEXT NOT NULL", "timestamptz NOT NULL"),
        ("metadata", "TEXT NOT NULL", "jsonb NOT NULL"),
    ),
    "events": (
        ("id", "TEXT PRIMARY KEY", "text PRIMARY KEY"),
        ("channel", "TEXT NOT NULL", "text NOT NULL"),
        ("provider", "TEXT NOT NULL", "text NOT NULL"),
        ("event_type", "TEXT NOT NULL", "text NOT NULL"),
        ("status", "TEXT NOT NULL", "text NOT NULL"),
        ("dedupe_key", "TEXT", "text"),
        ("provider_message_id", "TEXT", "text"),
        ("provider_event_id", "TEXT", "text"),
        ("sender", "TEXT", "text"),
        ("recipient", "TEXT", "text"),
        ("lead_id", "TEXT", "text"),
        ("campaign_id", "TEXT", "text"),
        ("conversation_id", "TEXT", "text"),
        ("message_id", "TEXT", "text"),
        ("queue_message_id", "TEXT", "text"),
        ("error_code", "TEXT", "text"),
        ("error_detail", "TEXT", "text"),
        ("occurred_at", "TEXT", "timestamptz"),
        ("recorded_at", "TEXT NOT NULL", "timestamptz NOT NULL"),
        ("data", "TEXT NOT NULL", "jsonb NOT NULL"),
    ),
    "processing_records": (
        ("id", "TEXT PRIMARY KEY", "text PRIMARY KEY"),
        ("channel", "TEXT NOT NULL", "text NOT NULL"),
        ("queue_message_id", "TEXT NOT NULL", "text NOT NULL"),
        ("item_index", "INTEGER NOT NULL", "bigint NOT NULL"),
        ("status", "TEXT NOT NULL", "text NOT NULL"),
        ("attempts", "INTEGER NOT NULL", "bigint NOT NULL"),
        ("dedupe_key", "TEXT", "text"),
        ("error_code", "TEXT", "text"),
        ("error_detail", "TEXT", "text"),
        ("received_at", "TEXT NOT NULL", "timestamptz NOT NULL"),
        ("processed_at", "TEXT", "timestamptz"),
        ("duration_ms", "REAL", "double precision"),
    ),
}
_UNIQUE = {
    "messages": ("provider", "provider_message_id"),
    "events": ("dedupe_key",),
    "processing_records": ("channel", "queue_message_id", "item_index"),
}
_INDEXES = {
    "messages": (("conversation_id",), ("provider_message_id",), ("thread_id",)),
    "events": (
        ("provider_message_id",),
        ("lead_id",),
        ("conversation_id",),
        ("recipient",),
        ("channel", "event_type"),
        ("recorded_at",),
    ),
    "processing_records": (("status",), ("received_at",)),
}
TABLES = tuple(_COLUMNS)


def ddl(dialect: str) -> list[str]:
    """CREATE TABLE and CREATE INDEX statements for ``sqlite`` or ``postgresql``."""
    column = 1 if dialect == "sqlite" else 2
    statements = []
    for table, columns in _COLUMNS.items():
        body = ", ".join(f"{c[0]} {c[column]}" for c in columns)
        statements.append(f"CREATE TABLE {table} ({body})")
        statements.append(f"CREATE UNIQUE INDEX uq_{table} ON {table} ({', '.join(_UNIQUE[table])})")
        for n, fields in enumerate(_INDEXES[table]):
            statements.append(f"CREATE INDEX ix_{table}_{n} ON {table} ({', '.join(fields)})")
    return statements


def rows_for(events: int, seed: int = 1) -> list[dict[str, tuple[Any, ...]]]:
    """Per event, the row of each table (values in column order)."""
    rng = random.Random(f"floor:{seed}")
    stamp = "2026-03-02T09:00:00.000000+00:00"
    out = []
    for _ in range(events):
        sid = f"SM{rng.getrandbits(128):032x}"
        ids = [f"{rng.getrandbits(128):032x}" for _ in range(5)]
        message_id, event_id, record_id, conversation_id, lead_id = ids
        sender = f"+1415{rng.randrange(2000000, 9999999)}"
        queue_message_id = f"{rng.getrandbits(128):032x}"
        body = "Is the spring offer still on? " * rng.randrange(1, 7)
        data = {
            "kind": "inbound_message",
            "channel": "sms",
            "account_sid": "AC" + "5e" * 16,
            "messaging_service_sid": "MG" + "7a" * 16,
            "signature_verified": False,
            "from_kind": "e164",
            "to_kind": "e164",
            "extra": {"SmsMessageSid": sid, "SmsSid": sid},
            "num_media": 0,
            "num_segments": 1,
            "from_number_valid": True,
            "opt_out_type": None,
            "message_type": None,
            "geo": {
                "from_city": "SAN FRANCISCO",
                "from_state": "CA",
                "from_zip": "94107",
                "from_country": "US",
                "to_city": "SAN FRANCISCO",
                "to_state": "CA",
                "to_zip": "94105",
                "to_country": "US",
            },
            "route": "regular",
        }
        out.append(
            {
                "messages": (
                    message_id, conversation_id, None, "inbound", "sms", "twilio", sid, sender,
                    "+14155550100", body, None, "[]", "received", None, None, stamp, stamp,
                    json.dumps({"num_segments": 1, "profile_name": None, "wa_id": None}),
                ),
                "events": (
                    event_id, "sms", "twilio", "inbound_message", "processed", f"twilio:in:{sid}", sid,
                    None, sender, "+14155550100", lead_id, None, conversation_id, message_id,
                    queue_message_id, None, None, stamp, stamp, json.dumps(data),
                ),
                "processing_records": (
                    record_id, "sms", queue_message_id, 0, "processed", 1, f"twilio:in:{sid}", None, None,
                    stamp, stamp, 1.5,
                ),
            }
        )  # fmt: skip
    return out


@dataclass
class FloorResult:
    seconds: float
    cpu_seconds: float
    events: int
    statements: int | None = None
    round_trips: int | None = None


def _insert(table: str, rows: int, placeholder: str) -> str:
    width = len(_COLUMNS[table])
    one = "(" + ", ".join([placeholder] * width) + ")"
    columns = ", ".join(c[0] for c in _COLUMNS[table])
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([one] * rows)


def _write(rows: Sequence[dict[str, tuple[Any, ...]]], execute: Callable[[str, Any], Any], ph: str,
           begin: str, commit: Callable[[], None], multirow: bool) -> None:  # fmt: skip
    single = {t: _insert(t, 1, ph) for t in TABLES}
    full = {t: _insert(t, COMMIT_EVERY, ph) for t in TABLES}
    for start in range(0, len(rows), COMMIT_EVERY):
        chunk = rows[start : start + COMMIT_EVERY]
        if begin:
            execute(begin, ())
        if multirow:
            for table in TABLES:
                sql = full[table] if len(chunk) == COMMIT_EVERY else _insert(table, len(chunk), ph)
                execute(sql, tuple(v for row in chunk for v in row[table]))
        else:
            for row in chunk:
                for table in TABLES:
                    execute(single[table], row[table])
        commit()


def floor_sqlite(events: int, *, multirow: bool = False, trace: Any = None) -> FloorResult:
    """The floor on a fresh SQLite file; ``trace`` (a callable) sees every statement run while timed."""
    rows = rows_for(events)
    with tempfile.TemporaryDirectory(prefix="commproc-floor-") as tmp:
        conn = sqlite3.connect(f"{tmp}/floor.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in ddl("sqlite"):
                conn.execute(statement)
            cursor = conn.cursor()
            if trace is not None:
                conn.set_trace_callback(trace)
            started, cpu = time.perf_counter(), time.process_time()

            def commit() -> None:
                cursor.execute("COMMIT")

            _write(rows, cursor.execute, "?", "BEGIN IMMEDIATE", commit, multirow)
            result = FloorResult(time.perf_counter() - started, time.process_time() - cpu, events)
            conn.set_trace_callback(None)
            return result
        finally:
            conn.close()


def floor_postgres(events: int, *, multirow: bool = False, dsn: str, proxy: Any = None) -> FloorResult:
    """The floor in a fresh schema; ``dsn`` may point at a counting proxy (``proxy``)."""
    import psycopg
    from harness import pg_schema

    rows = rows_for(events)
    with pg_schema() as schema, psycopg.connect(dsn, options=f"-c search_path={schema}") as conn:
        with conn.cursor() as cursor:
            for statement in ddl("postgresql"):
                cursor.execute(statement)
        conn.commit()
        cursor = conn.cursor()
        if proxy is not None:
            proxy.reset()
            proxy.active = True
        started, cpu = time.perf_counter(), time.process_time()
        # psycopg begins the transaction itself with the first statement.
        _write(rows, cursor.execute, "%s", "", conn.commit, multirow)
        result = FloorResult(time.perf_counter() - started, time.process_time() - cpu, events)
        if proxy is not None:
            proxy.active = False
            result.statements, result.round_trips = proxy.statements, proxy.round_trips
        return result


def pg_dsn(url: str) -> str:
    """A libpq connection string from a SQLAlchemy-style URL."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--multirow", action="store_true")
    args = parser.parse_args(argv)
    from harness import pg_url

    for store in ("sqlite", "postgres") if args.store == "both" else (args.store,):
        if store == "sqlite":
            result = floor_sqlite(args.events, multirow=args.multirow)
        else:
            result = floor_postgres(args.events, multirow=args.multirow, dsn=pg_dsn(pg_url()))
        print(f"{store:<10}{result.events / result.seconds:>12,.0f} events/s  ({result.seconds:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
