"""``commproc stats``: what the processors did over a recent window, from the database."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any

from commproc_core.runtime.cli._common import add_database, configure_logging, print_table, usage_error
from commproc_core.runtime.stats_query import COUNTS, collect_stats

__all__ = ["collect_stats", "register"]

DESCRIPTION = """\
Counts and rates per channel (from the processing records) and per event type
(from the communication events) over a recent window, processing time
percentiles, and recent failures by reason. The database does the counting:
one grouped query per table, so a long window on a busy database stays fast.
Percentiles are estimated from 1-2-5 duration buckets (exact for sparse data,
never outside the real range of the bucket holding them).

Exit codes: 0 ok, 1 the database failed, 2 bad usage."""


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


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _print(figures: dict[str, Any], window: str) -> None:
    print(f"commproc stats for the last {window} (since {figures['since']})\n")
    if not figures["channels"] and not figures["event_types"]:
        print("nothing recorded in this window")
        return
    header = ("CHANNEL", *(k.upper() for k in COUNTS), "PER MIN", "P50 MS", "P95 MS", "MAX MS")
    rows: list[tuple[Any, ...]] = [header]
    for c in figures["channels"]:
        timing = c["duration_ms"]
        times = (_ms(timing[k]) for k in ("p50", "p95", "max"))
        rows.append((c["channel"], *(c[k] for k in COUNTS), c["processed_per_minute"], *times))
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
    now = utcnow()
    try:
        since = now - timedelta(seconds=parse_duration(args.since))
    except (ValueError, OverflowError):
        shown = args.since if len(args.since) <= 20 else args.since[:17] + "..."
        return usage_error(
            f"--since takes a duration such as 90s, 15m, 1h or 2d (up to years), not {shown!r}"
        )
    store = open_store(args)
    try:
        figures = collect_stats(store, since, now, channel=args.channel, recent=args.failures)
    finally:
        store.close()
    if args.json:
        print(json.dumps(figures, default=str))
    else:
        _print(figures, args.since)
    return 0
