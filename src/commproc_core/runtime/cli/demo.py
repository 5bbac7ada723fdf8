"""``commproc demo``: the first thing to run; no AWS account, nothing but Python."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from commproc_core.runtime.cli._common import configure_logging

__all__ = ["register"]

DESCRIPTION = """\
Run a bundled set of realistic SMS and email events (inbound messages, a
STOP, a HELP, status callbacks, bounces, opens, a duplicate, an invalid one)
through the installed channel plugins, on in-memory queues, into a fresh
SQLite database, and print what was recorded. The database is recreated on
every run; open it with any SQLite client afterwards. The demo marks the
files it creates and deletes no other file unless given --overwrite.

Exit codes: 0 ok, 1 no channel plugin installed or the run failed, 2 bad usage."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "demo",
        help="process bundled SMS and email events into a local SQLite file",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        default=None,
        help="SQLite URL to (re)create (default: sqlite:///commproc-demo.db in the current folder)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the --database file even if it is not a demo database (its records are lost)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from commproc_core.runtime.demo import format_summary, run_demo

    # The invalid demo events are logged as warnings by the processors; the
    # summary reports them, so the log stays quiet.
    configure_logging("ERROR")
    summary = run_demo(args.database, progress=None if args.quiet else sys.stderr, overwrite=args.overwrite)
    sys.stdout.write(format_summary(summary))
    if not summary.stats:
        print(
            "no channel plugin is installed: install commproc-sms and commproc-email "
            "(from a checkout: python3 -m pip install ./src/commproc_sms ./src/commproc_email)",
            file=sys.stderr,
        )
        return 1
    return 0
