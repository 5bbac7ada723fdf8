"""The benchmark harness runs, and what it counts adds up (nothing here is timed).

The quickest mode runs every memory and SQLite case once through the real
orchestrator (worker process, counting pass, one timed round); the checks
are on counts that are known exactly: the floor's statements, batches,
events processed without loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

pytestmark = pytest.mark.slow


def run_bench(tmp_path: Path, cases: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "pipeline.py"), "--quick", "--cases", cases, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=str(ROOT),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout


def batches(events: int) -> int:
    return -(-events // 10)


def test_quick_run_on_memory_and_sqlite(tmp_path: Path) -> None:
    cases = "import,null-memory,sms-memory,sms-sqlite,email-memory,email-sqlite,floor-sqlite*"
    result, printed = run_bench(tmp_path, cases)
    names = [
        "import",
        "null-memory",
        "sms-memory",
        "sms-sqlite",
        "email-memory",
        "email-sqlite",
        "floor-sqlite",
        "floor-sqlite-multirow",
    ]
    assert list(result["cases"]) == names
    assert result["revisions"] == ["current"] and result["rounds"] == 1
    for name in names:
        summary = result["cases"][name]["current"]
        assert summary["errors"] == [], name
        assert len(summary["rounds"]) == 1, name
        assert name in printed

    assert 0 < result["cases"]["import"]["current"]["import_ms"]["median"] < 60_000

    sms = result["cases"]["sms-memory"]["current"]["rounds"][0]
    assert sms["events"] == sms["messages"] == 60  # one Twilio webhook per queue message
    # One receive and one DeleteMessageBatch per 10 messages, then the empty receive that ends the drain.
    assert sms["queue_calls"] == 2 * batches(60) + 1
    email = result["cases"]["email-memory"]["current"]["rounds"][0]
    assert email["events"] >= 60 and email["messages"] < email["events"]  # SendGrid batches
    null = result["cases"]["null-memory"]["current"]
    assert null["rounds"][0]["events"] == 300
    assert null["cpu_us_per_event"]["median"] > 0

    for name in ("sms-sqlite", "email-sqlite"):
        summary = result["cases"][name]["current"]
        counts = summary["counts"]
        assert counts["batches"] == batches(counts["messages"])
        # BEGIN and COMMIT per batch, and at least one write statement per batch (a batch's
        # rows of one table go in one statement, so there may be fewer statements than events).
        assert counts["statements"] >= 3 * counts["batches"]
        assert summary["statements_per_event"] == counts["statements"] / counts["events"]
        assert counts["round_trips"] is None  # SQLite has no round trips
        assert 0 < summary["floor_ratio"]

    # The floor's statements are known exactly: per 10 events BEGIN, the INSERTs, COMMIT.
    row = result["cases"]["floor-sqlite"]["current"]["counts"]
    assert row["statements"] == 3 * row["events"] + 2 * batches(row["events"])
    multi = result["cases"]["floor-sqlite-multirow"]["current"]["counts"]
    assert multi["statements"] == (3 + 2) * batches(multi["events"])


def test_unknown_case_is_refused(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "pipeline.py"), "--quick", "--cases", "sms-oracle"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
    )
    assert done.returncode != 0
    assert "no case matches sms-oracle" in done.stderr


@pytest.mark.postgres
def test_postgres_counts_through_the_proxy(tmp_path: Path) -> None:
    from pg_support import require_postgres

    url = require_postgres()
    cases = "floor-postgres,floor-postgres-multirow,roundtrips-postgres"
    result, _ = run_bench(tmp_path, cases, env={"COMMPROC_BENCH_POSTGRES_URL": url})
    row = result["cases"]["floor-postgres"]["current"]["counts"]
    multi = result["cases"]["floor-postgres-multirow"]["current"]["counts"]
    # psycopg sends BEGIN before the first INSERT of each transaction; each statement is one
    # round trip, plus one each time psycopg prepares one of the three INSERTs (on its sixth use).
    assert row["statements"] == 3 * row["events"] + 2 * batches(row["events"])
    assert row["round_trips"] == row["statements"] + 3
    assert multi["statements"] == (3 + 2) * batches(multi["events"])
    assert multi["round_trips"] == multi["statements"] + 3
    parts = result["cases"]["roundtrips-postgres"]["current"]["parts"]
    assert set(parts) == {"sms_first_contact", "sms_known_sender", "ses_delivery"}
    for part in parts.values():
        assert part["events"] == 20
        # Every batch at least begins, writes and commits.
        assert part["round_trips"] >= 3 * part["batches"]
        assert part["statements"] >= part["events"]
