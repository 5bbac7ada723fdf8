"""``commproc stats``: what the processors did over a recent window, from the database."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from commproc_core.runtime.cli._common import add_database, configure_logging, print_table, usage_error

__all__ = ["collect_stats", "register"]

DESCRIPTION = """\
Counts and rates per channel (from the processing records) and per event type
(from the communication events) over a recent window, processing time
percentiles, and recent failures by reason. Reads every record of the window,
so keep the window short on a busy database.

Exit codes: 0 ok, 1 the database failed, 2 bad usage."""


#: Processing record statuses counted per channel.
_COUNTS = ("processed", "failed", "duplicate", "ignored", "retrying")


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "stats",
        help="processed and failed counts, rates, timings and failures over a window",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_database(parser)
    parser.add_argument(
        "--since", default="1h", metavar="DURATION", help="window: 90s, 15m, 1h, 2d (default 1h)"
    )
    parser.add_argument("--channel", metavar="TYPE", help="only this channel")
    parser.add_argument("--failures", type=int, default=10, metavar="N", help="recent failures to show (10)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def _percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def collect_stats(
    store: Any, since: datetime, now: datetime, *, channel: str | None = None, recent: int = 10
) -> dict[str, Any]:
    """The figures ``commproc stats`` prints, as a JSON-able dict."""
    from commproc_core.stores.spec import Range

    where: dict[str, Any] = {"channel": channel} if channel else {}
    with store.unit_of_work() as uow:
        records = uow.processing_records.find(received_at=Range(since, None), **where)
        events = uow.events.find(recorded_at=Range(since, None), **where)
    minutes = max((now - since).total_seconds() / 60, 1e-9)
    by_channel: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[str, list[float]] = defaultdict(list)
    for record in records:
        # A "received" record with an error code is a transient failure awaiting its retry.
        status = "retrying" if record.status == "received" and record.error_code else record.status
        by_channel[record.channel][status] += 1
        if record.status == "processed" and record.duration_ms is not None:
            durations[record.channel].append(record.duration_ms)
    channels = []
    for name in sorted(by_channel):
        counts = by_channel[name]
        times = durations[name]
        channels.append(
            {
                "channel": name,
                **{k: counts[k] for k in _COUNTS},
                "processed_per_minute": round(counts["processed"] / minutes, 3),
                "failed_per_minute": round(counts["failed"] / minutes, 3),
                "duration_ms": {
                    "p50": _percentile(times, 0.5),
                    "p95": _percentile(times, 0.95),
                    "max": max(times) if times else None,
                },
            }
        )
    by_type: Counter[tuple[str, str, str]] = Counter((e.channel, e.event_type, e.status) for e in events)
    types = [
        {"channel": c, "event_type": t, "status": s, "count": n} for (c, t, s), n in sorted(by_type.items())
    ]
    failed = [e for e in events if e.status == "failed"]
    reasons = Counter((e.channel, e.error_code or "unknown") for e in failed)
    failed.sort(key=lambda e: e.recorded_at, reverse=True)
    return {
        "since": since.isoformat(),
        "until": now.isoformat(),
        "channels": channels,
        "event_types": types,
        "failures_by_reason": [
            {"channel": c, "reason": r, "count": n} for (c, r), n in reasons.most_common()
        ],
        "recent_failures": [
            {
                "recorded_at": e.recorded_at.isoformat(),
                "channel": e.channel,
                "provider": e.provider,
                "reason": e.error_code,
                "detail": e.error_detail,
                "queue_message_id": e.queue_message_id,
            }
            for e in failed[:recent]
        ],
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print(figures: dict[str, Any], window: str) -> None:
    print(f"commproc stats for the last {window} (since {figures['since']})\n")
    if not figures["channels"] and not figures["event_types"]:
        print("nothing recorded in this window")
        return
    header = ("CHANNEL", *(k.upper() for k in _COUNTS), "PER MIN", "P50 MS", "P95 MS", "MAX MS")
    rows: list[tuple[Any, ...]] = [header]
    for c in figures["channels"]:
        timing = c["duration_ms"]
        times = (_ms(timing[k]) for k in ("p50", "p95", "max"))
        rows.append((c["channel"], *(c[k] for k in _COUNTS), c["processed_per_minute"], *times))
    print_table(rows)
    print()
    print_table(
        [("CHANNEL", "EVENT TYPE", "STATUS", "COUNT")]
        + [(t["channel"], t["event_type"], t["status"], t["count"]) for t in figures["event_types"]]
    )
    if figures["failures_by_reason"]:
        print("\nfailures by reason")
        print_table(
            [("CHANNEL", "REASON", "COUNT")]
            + [(f["channel"], f["reason"], f["count"]) for f in figures["failures_by_reason"]]
        )
        print("\nrecent failures")
        for f in figures["recent_failures"]:
            print(f"  {f['recorded_at']}  {f['channel']}  {f['reason']}: {f['detail'] or ''}")


def run(args: argparse.Namespace) -> int:
    from commproc_core.model import utcnow
    from commproc_core.runtime.cli._common import open_store
    from commproc_core.runtime.settings import parse_duration

    configure_logging("WARNING")
    try:
        seconds = parse_duration(args.since)
    except ValueError:
        return usage_error(f"--since takes a duration such as 90s, 15m, 1h or 2d, not {args.since!r}")
    now = utcnow()
    store = open_store(args.database)
    try:
        figures = collect_stats(
            store, now - timedelta(seconds=seconds), now, channel=args.channel, recent=args.failures
        )
    finally:
        store.close()
    if args.json:
        print(json.dumps(figures, default=str))
    else:
        _print(figures, args.since)
    return 0
