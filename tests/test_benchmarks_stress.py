"""benchmarks/stress.py: its exactly-once verdict, and a small multi-worker run on PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

from email_workloads import email_workload  # noqa: E402
from stress import ORDER_FREE, judge, run_stress  # noqa: E402
from workloads import sms_workload  # noqa: E402


def loads_and_counts() -> tuple[dict, dict[str, int]]:
    sms = sms_workload(40)
    email = email_workload(10**9, max_messages=8)
    loads = {"sms": sms, "email": email}
    items = sms.events + email.events
    counts = {table: 100 for table in ORDER_FREE}
    counts.update(
        processing_records=items,
        processed_records=items,
        failed_events=0,
        leads=sms.senders + len(email.leads),
        sms_conversations=sms.senders,
    )
    return loads, counts


def test_judge_passes_a_clean_result() -> None:
    loads, counts = loads_and_counts()
    checks = judge(counts, loads, {"sms": (0, 0), "email": (0, 0)}, dict(counts))
    assert all(ok for ok, _ in checks.values()), checks
    assert len(checks) == 6


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        ({"processing_records": -1, "processed_records": -1}, "one processing record per event, processed"),
        ({"processed_records": -1}, "one processing record per event, processed"),
        ({"failed_events": 1}, "no failed events"),
        ({"leads": 1}, "one lead per person"),
        ({"sms_conversations": 1}, "one conversation per SMS sender"),
        ({"messages": 1}, "same records as one worker"),
    ],
)
def test_judge_names_what_went_wrong(change: dict[str, int], failing: str) -> None:
    loads, counts = loads_and_counts()
    reference = dict(counts)
    for key, delta in change.items():
        counts[key] += delta
        if key != "messages":
            reference[key] += delta  # so that only the check under test objects
    checks = judge(counts, loads, {"sms": (0, 0), "email": (0, 0)}, reference)
    assert [name for name, (ok, _) in checks.items() if not ok] == [failing]


def test_judge_sees_messages_left_on_the_queue() -> None:
    loads, counts = loads_and_counts()
    checks = judge(counts, loads, {"sms": (0, 1), "email": (0, 0)}, None)
    assert not checks["queues empty"][0]
    assert "same records as one worker" not in checks


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_apply_every_event_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from pg_support import require_postgres

    monkeypatch.setenv("COMMPROC_BENCH_POSTGRES_URL", require_postgres())
    result = run_stress(2, 120, 0.3)
    assert result["exactly_once"], result["checks"]
    assert result["messages"] == 120
    assert result["stats"]["received"] >= 120
    # A batch rolled back (say, by a deadlock) counts nothing; each event is processed once.
    assert result["stats"]["processed"] == result["events"]
    assert result["stats"]["failed"] == 0
