"""``commproc replay`` and ``commproc inspect``: captured queue message bodies through a processor."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from commproc_core.errors import ConfigError
from commproc_core.runtime.cli._common import add_database, configure_logging, database_target, open_store

__all__ = ["register"]

REPLAY_DESCRIPTION = """\
Process each file (or every file of a folder, in name order) as one queue
message body, in order, through CHANNEL's processor: how to re-drive a DLQ
dump or try a payload you captured. Nothing is read from or deleted on a queue.

A file saved by `commproc dlq dump` is recognised: its body is replayed with
the attributes SQS delivered it with. Without --database the records go to a
throw-away SQLite file; --database must name an existing commproc database
(`commproc db upgrade` creates one). With --json each input gives one line:
  {"source": FILE, "outcome": "processed"|"duplicate"|"rejected"|"ignored"|"failed",
   "reason": ERROR_CODE|null, "detail": WHAT_IT_MEANS|null, "events": [...]}

Exit codes: 0 every input processed, duplicate or ignored; 1 some input was
rejected or failed; 2 bad usage or configuration."""

INSPECT_DESCRIPTION = """\
Run one queue message body through CHANNEL's processor against an in-memory
store and show what it would record; nothing is written anywhere.

Exit codes: 0 the payload would be processed (or is ignored); 1 it would be
rejected or fail; 2 bad usage or configuration."""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("channel", metavar="CHANNEL", help="channel type (sms, email, ...)")
    parser.add_argument("--config", metavar="FILE", help="the channel's config, as a JSON or .toml file")
    parser.add_argument(
        "--processor",
        dest="processors",
        metavar="NAME=MODULE:CLASS",
        action="append",
        default=[],
        help="serve channel type NAME with a processor class not installed as a plugin",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per input line")


def register(subparsers: Any) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="process saved queue message bodies (files or folders) through a channel",
        description=REPLAY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(replay)
    replay.add_argument("paths", metavar="PATH", nargs="+", help="a body file, or a folder of them")
    add_database(
        replay,
        "store the records in this existing commproc database (default: a throw-away SQLite file)",
    )
    replay.set_defaults(handler=run_replay)
    inspect = subparsers.add_parser(
        "inspect",
        help="show what one queue message body would record, writing nothing",
        description=INSPECT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(inspect)
    inspect.add_argument("paths", metavar="FILE", nargs=1, help="the queue message body")
    inspect.set_defaults(handler=run_inspect, database=None, schema=None, table_prefix=None)


@contextmanager
def _store(args: argparse.Namespace, *, memory: bool) -> Iterator[Any]:
    if memory:
        from commproc_core.stores import MemoryStore

        yield MemoryStore()
        return
    folder = None
    if args.database is None:
        from commproc_core.stores.sql import SQLStore

        # The command's own throw-away file: the one database replay creates tables in.
        folder = tempfile.mkdtemp(prefix="commproc-replay-")
        store = SQLStore(f"sqlite:///{Path(folder) / 'replay.db'}", auto_upgrade=True)
    else:
        store = open_store(args)
    try:
        yield store
    finally:
        store.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _processor(args: argparse.Namespace, store: Any) -> Any:
    from commproc_core.factory import ProcessorFactory
    from commproc_core.runtime.settings import load_channel_config, parse_processor_spec
    from commproc_core.runtime.worker import load_object

    factory = ProcessorFactory(store)
    for text in args.processors:
        try:
            name, target = parse_processor_spec(text)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        factory.register_processor(name, load_object(target))
    config = load_channel_config(args.config) if args.config else {}
    return factory.build_processor(args.channel, None, config)


def _human(result: Any) -> str:
    kinds = ", ".join(f"{e['event_type']}{' (duplicate)' if e['duplicate'] else ''}" for e in result.events)
    reason = f" [{result.reason}: {result.detail}]" if result.reason and result.detail else ""
    reason = reason or (f" [{result.reason}]" if result.reason else "")
    return f"{result.source}: {result.outcome}{reason}" + (f": {kinds}" if kinds else "")


def _run(args: argparse.Namespace, *, memory: bool) -> int:
    from commproc_core.runtime.progress import Progress
    from commproc_core.runtime.replay import read_inputs, replay_iter

    configure_logging("WARNING")
    inputs = read_inputs(args.paths)
    bad = 0
    # On a terminal the result lines are the progress; redirected, a line on stderr shows it.
    progress = Progress(
        sys.stderr, "replay", unit="files", enabled=None if not sys.stdout.isatty() else False
    )
    with _store(args, memory=memory) as store:
        processor = _processor(args, store)
        try:
            for done, result in enumerate(replay_iter(processor, inputs), 1):
                bad += result.outcome in ("rejected", "failed")
                if args.json:
                    print(json.dumps(result.as_dict(), default=str), flush=True)
                elif memory:
                    print(json.dumps(result.as_dict(), indent=2, default=str))
                else:
                    print(_human(result), flush=True)
                progress.update(done, len(inputs), f"{bad} rejected or failed")
        finally:
            progress.close()
            processor.close()
    if not args.json and not memory:
        where = (
            database_target(args).describe()
            if args.database
            else "a throw-away database (pass --database URL to keep the records)"
        )
        print(f"{len(inputs)} input(s), {bad} rejected or failed; records in {where}", file=sys.stderr)
    return 1 if bad else 0


def run_replay(args: argparse.Namespace) -> int:
    return _run(args, memory=False)


def run_inspect(args: argparse.Namespace) -> int:
    return _run(args, memory=True)
