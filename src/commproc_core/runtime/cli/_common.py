"""What the subcommands share: the database options, logging, tables, errors.

Heavy imports (SQLAlchemy, boto3, the plugins) happen inside the functions,
so ``commproc --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from commproc_core.redact import RedactingFilter
from commproc_core.runtime.database import DatabaseTarget, resolve_target
from commproc_core.runtime.masking import MaskingFormatter, mask_urls

__all__ = [
    "JsonFormatter",
    "add_database",
    "configure_logging",
    "database_target",
    "logging_restored",
    "open_store",
    "print_table",
    "usage_error",
]

DATABASE_HELP = "database URL (default: $COMMPROC_DATABASE_URL, then sqlite:///commproc.db)"


def add_database(parser: argparse.ArgumentParser, help_text: str = DATABASE_HELP) -> None:
    """``--database``, ``--schema`` and ``--table-prefix``: where commproc's tables are."""
    parser.add_argument("--database", metavar="URL", default=None, help=help_text)
    parser.add_argument(
        "--schema",
        metavar="NAME",
        default=None,
        help="PostgreSQL schema holding commproc's tables (default: $COMMPROC_SCHEMA, else the search path)",
    )
    parser.add_argument(
        "--table-prefix",
        metavar="PREFIX",
        default=None,
        help="prefix of commproc's table names (default: $COMMPROC_TABLE_PREFIX, else none)",
    )


def database_target(args: argparse.Namespace) -> DatabaseTarget:
    """The database the options (or the environment) name."""
    return resolve_target(args.database, args.schema, args.table_prefix)


def open_store(args: argparse.Namespace) -> Any:
    """The store the options name; its schema must exist and be current (nothing is created)."""
    from commproc_core.runtime.database import open_database

    return open_database(database_target(args))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            # The redacting filter leaves the masked traceback in exc_text.
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return mask_urls(json.dumps(entry, ensure_ascii=False))


class _CliHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (and replaces when called again)."""


def configure_logging(level: str = "WARNING", log_format: str = "text", stream: TextIO | None = None) -> None:
    """Log ``commproc.*`` to ``stream`` (stderr) through a RedactingFilter, in text or JSON.

    Every line, tracebacks included, has URL passwords and secret query values masked.
    """
    handler = _CliHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        text = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        handler.setFormatter(MaskingFormatter(text))
    root = logging.getLogger("commproc")
    for old in [h for h in root.handlers if isinstance(h, _CliHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # commproc's records are handled here; a host's root handlers would print them twice.
    root.propagate = False


@contextmanager
def logging_restored() -> Iterator[None]:
    """Undo configure_logging when a command returns, so ``main()`` called in-process leaves no trace."""
    logger = logging.getLogger("commproc")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    try:
        yield
    finally:
        for handler in [h for h in logger.handlers if h not in saved[1]]:
            logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[2]


def print_table(rows: Sequence[Sequence[Any]], out: TextIO | None = None) -> None:
    """Rows as left-aligned columns; the first row is the header."""
    stream = out or sys.stdout
    cells = [[str(c) for c in row] for row in rows]
    if not cells:
        return
    widths = [max(len(row[i]) for row in cells if i < len(row)) for i in range(len(cells[0]))]
    for row in cells:
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip(), file=stream)


def usage_error(message: str) -> int:
    """Print ``message`` as a usage error; the exit code for it (2)."""
    print(f"commproc: error: {mask_urls(message)}", file=sys.stderr)
    return 2
