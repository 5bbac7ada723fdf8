"""``commproc demo``: bundled SMS and email events through the real processors, into SQLite.

No AWS account and no server: the events go onto in-memory queues
(:class:`~commproc_core.queues.MemoryQueue`, SQS semantics), the installed
channel plugins process them exactly as in production, and the records land
in a fresh SQLite file the user can open afterwards.

The demo recreates its file on every run, so it marks the files it creates
(SQLite's ``application_id`` header field) and deletes only a file carrying
that mark: pointed at a worker's ``commproc.db`` by mistake, it refuses
unless told ``overwrite``.
"""

from __future__ import annotations

import sqlite3
import sys
from collections import Counter
from collections.abc import Mapping
from contextlib import closing
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

import attrs

from commproc_core.errors import ChannelLoadError, ChannelNotFound, ConfigError, DuplicateChannelError
from commproc_core.pipeline.stats import ProcessingStats

__all__ = ["DEFAULT_DATABASE", "DEMO_CHANNELS", "DemoSummary", "bundled_events", "format_summary", "run_demo"]

DEFAULT_DATABASE = "sqlite:///commproc-demo.db"

#: The ``application_id`` of a demo database ("cmpd"): the mark that lets the demo delete it.
DEMO_APPLICATION_ID = 0x636D7064

#: The channels the demo runs, with the config each gets. SMS turns the agent
#: on with its built-in template reply, so regular messages get an answer
#: queued in the outbox (the demo sends nothing).
DEMO_CHANNELS: Mapping[str, Mapping[str, Any]] = {
    "sms": {"agent_mode": True},
    "email": {},
}

#: Messages per receive: small, so the progress display has steps to show.
_BATCH = 4


def bundled_events(channel: str) -> list[tuple[str, str]]:
    """The demo's queue message bodies for ``channel``: (file name, body), in name order."""
    folder = files("commproc_core.runtime.demo").joinpath("events").joinpath(channel)
    entries = sorted((entry for entry in folder.iterdir() if entry.is_file()), key=lambda e: e.name)
    return [(entry.name, entry.read_text(encoding="utf-8")) for entry in entries]


@attrs.frozen(kw_only=True)
class DemoSummary:
    """What the demo did, read back from the database."""

    database: str
    #: Channel -> stats of its run.
    stats: Mapping[str, ProcessingStats]
    #: Channel -> why it did not run (plugin missing or broken).
    missing: Mapping[str, str]
    #: (channel, event type, status) -> communication events recorded.
    events: Mapping[tuple[str, str, str], int]
    #: Table name -> records.
    tables: Mapping[str, int]
    opt_outs: int
    suppressions: int
    #: (channel, error code) -> failed events.
    failures: Mapping[tuple[str, str], int]
    #: Outbound replies queued (keyword confirmations, agent replies), not sent.
    outbox: int


def _application_id(path: Path) -> int | None:
    """The ``application_id`` of a SQLite file, read-only; None when it is no SQLite database."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            return int(conn.execute("PRAGMA application_id").fetchone()[0])
    except sqlite3.Error:
        return None


def _fresh_database(url: str, *, overwrite: bool = False) -> str:
    """Delete the demo's SQLite file (and its journal files), create it marked; the URL to open.

    A file that is not a demo database is deleted only with ``overwrite``.
    """
    if url.split(":", 1)[0] == "memory":
        return url
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise ConfigError(
            f"the demo recreates its database from scratch, so it takes a SQLite file URL "
            f"(sqlite:///path/demo.db) or memory://, not {parsed.render_as_string(hide_password=True)}"
        )
    path = Path(parsed.database)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; the demo needs a file name (sqlite:///path/demo.db)")
    if path.exists() and not overwrite and _application_id(path) != DEMO_APPLICATION_ID:
        raise ConfigError(
            f"{path} exists and is not a commproc demo database (it may be a worker's database); the demo "
            "deletes and recreates its file, so it leaves this one alone. Choose another --database, or "
            "pass --overwrite to delete it"
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")
        conn.commit()
    return str(parsed.set(database=str(path.resolve())).render_as_string(hide_password=False))


class _Progress:
    """One line per channel on ``out``; redrawn in place on a terminal."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.tty = bool(out is not None and out.isatty())

    def update(self, channel: str, done: int, total: int, final: bool = False) -> None:
        if self.out is None:
            return
        width = 20
        filled = width * done // max(total, 1)
        line = f"{channel:<6} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} messages"
        if self.tty:
            self.out.write("\r" + line + ("\n" if final else ""))
        elif final:
            self.out.write(line + "\n")
        self.out.flush()


def _summarise(
    store: Any, database: str, stats: dict[str, ProcessingStats], missing: dict[str, str]
) -> DemoSummary:
    from commproc_core.stores.spec import TABLES

    with store.unit_of_work() as uow:
        events = uow.events.find()
        consents = uow.consents.find()
        tables = {name: getattr(uow, name).count() for name in TABLES}
    return DemoSummary(
        database=database,
        stats=stats,
        missing=missing,
        events=dict(Counter((e.channel, e.event_type, e.status) for e in events)),
        tables=tables,
        opt_outs=sum(1 for c in consents if c.status == "opted_out"),
        suppressions=sum(1 for c in consents if c.status == "suppressed"),
        failures=dict(
            Counter((e.channel, e.error_code or "unknown") for e in events if e.status == "failed")
        ),
        outbox=tables["outbox"],
    )


def run_demo(
    database: str | None = None,
    *,
    processors: Mapping[str, type] | None = None,
    progress: TextIO | None = sys.stderr,
    clock: Any = None,
    overwrite: bool = False,
) -> DemoSummary:
    """Run the bundled events through every demo channel that is installed; the summary.

    ``processors`` registers processor classes by channel type on top of
    the installed plugins (for running from a source checkout). An existing
    file that is not a demo database is replaced only with ``overwrite``.
    """
    from commproc_core.factory import ProcessorFactory
    from commproc_core.queues import MemoryQueue
    from commproc_core.stores.sql import open_store

    url = _fresh_database(database or DEFAULT_DATABASE, overwrite=overwrite)
    # The demo's own fresh file: the one place outside `db upgrade` where tables are created.
    store = open_store(url, auto_upgrade=True) if not url.startswith("memory") else open_store(url)
    queues: dict[str, MemoryQueue] = {}
    factory = ProcessorFactory(store, queue_factory=queues.__getitem__, clock=clock)
    for name, cls in (processors or {}).items():
        factory.register_processor(name, cls)
    stats: dict[str, ProcessingStats] = {}
    missing: dict[str, str] = {}
    bar = _Progress(progress)
    try:
        for channel, config in DEMO_CHANNELS.items():
            try:
                factory.get_processor_class(channel)
            except (ChannelNotFound, ChannelLoadError, DuplicateChannelError) as exc:
                missing[channel] = str(exc)
                continue
            bodies = [body for _, body in bundled_events(channel)]
            queue_url = f"memory://demo-{channel}"
            queues[queue_url] = MemoryQueue(queue_url)
            queues[queue_url].send_batch(bodies)
            processor = factory.get_processor(channel, queue_url, config)
            total = ProcessingStats()
            try:
                while True:
                    batch = processor.process_messages(max_messages=_BATCH, wait_time=0)
                    if batch.received == 0:
                        break
                    total = total + batch
                    bar.update(channel, total.received, len(bodies))
            finally:
                processor.close()
            bar.update(channel, total.received, len(bodies), final=True)
            stats[channel] = total
        return _summarise(store, url, stats, missing)
    finally:
        store.close()


def format_summary(summary: DemoSummary) -> str:
    """The summary as the text ``commproc demo`` prints."""
    lines: list[str] = []
    for channel, reason in summary.missing.items():
        lines.append(f"{channel}: not run: {reason}")
    if summary.stats:
        rows = [("CHANNEL", "EVENT TYPE", "STATUS", "RECORDS")]
        rows += [(*key, str(count)) for key, count in sorted(summary.events.items())]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines.append("")
        lines.append("communication events recorded (a STOP or HELP adds a keyword event to its message):")
        lines += [
            "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + f"  {row[3]:>7}"
            for row in rows
        ]
        lines.append("")
        for channel, s in summary.stats.items():
            events = s.processed + s.duplicates + s.failed + s.ignored
            lines.append(
                f"{channel}: {s.received} queue messages received, {s.deleted} acknowledged, "
                f"{s.retried} left for retry; they held {events} provider events: {s.processed} processed, "
                f"{s.duplicates} duplicate, {s.failed} failed, {s.ignored} ignored"
            )
        t = summary.tables
        lines.append(
            f"conversations: {t['conversations']}, messages: {t['messages']}, leads: {t['leads']}, "
            f"opt-outs: {summary.opt_outs}, suppressions: {summary.suppressions}, "
            f"replies queued in the outbox: {summary.outbox}"
        )
        if summary.failures:
            failures = ", ".join(f"{c} {code}: {n}" for (c, code), n in sorted(summary.failures.items()))
            lines.append(f"failures by reason: {failures}")
    lines.append("")
    lines.append(f"database: {summary.database}")
    return "\n".join(lines).strip("\n") + "\n"
