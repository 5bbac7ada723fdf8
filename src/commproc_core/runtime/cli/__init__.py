"""The ``commproc`` command line.

Each subcommand lives in its own module with ``register(subparsers)``; a
command returns its exit code: 0 success, 1 the work failed, 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from commproc_core import __version__
from commproc_core.errors import ChannelNotFound, CommprocError, ConfigError
from commproc_core.runtime.cli import channels, db, demo, dlq, replay, run, stats
from commproc_core.runtime.cli._common import logging_restored
from commproc_core.runtime.masking import mask_urls

__all__ = ["build_parser", "main"]

_COMMANDS = (run, demo, replay, channels, db, stats, dlq)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="commproc",
        description="Process communication events (SMS, WhatsApp, email) from Amazon SQS.",
    )
    parser.add_argument("--version", action="version", version=f"commproc {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        with logging_restored():
            code: int = handler(args)
    except (ConfigError, ChannelNotFound) as exc:
        print(f"commproc: error: {mask_urls(str(exc))}", file=sys.stderr)
        return 2
    except CommprocError as exc:
        print(f"commproc: error: {mask_urls(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("commproc: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
