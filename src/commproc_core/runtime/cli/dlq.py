"""``commproc dlq``: save a dead-letter queue's messages to files, and move them back to their queue."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from commproc_core.errors import ConfigError
from commproc_core.runtime.cli._common import configure_logging, usage_error
from commproc_core.runtime.masking import mask_urls

__all__ = ["register"]

DUMP_DESCRIPTION = """\
Save every message of QUEUE_URL (a dead-letter queue, usually) into DIR, one
JSON file per message holding its body, attributes and message attributes.
Nothing is deleted: the messages are hidden while the dump runs (so none is
read twice) and visible again when it ends. `commproc replay CHANNEL DIR`
then processes the files, and `commproc inspect CHANNEL FILE` shows one.
Files already in DIR are kept, so dumping again adds only new messages. The
files hold message content: DIR and its files are readable by you only.

Exit codes: 0 ok, 1 SQS failed, 2 bad usage."""

REDRIVE_DESCRIPTION = """\
Move messages from the dead-letter queue DLQ_URL back to the queue they came
from (the queue whose redrive policy names the DLQ), or to --to QUEUE_URL.

Where the endpoint supports it and no --count is given, SQS moves them
itself (StartMessageMoveTask; --rate up to 500 messages/s) and this command
follows the task. Otherwise (--count, an SQS-compatible endpoint without
move tasks, or --via receive) it receives each message, sends it to the
destination and deletes it from the DLQ once sent, at up to --rate messages
per second. --dry-run shows what would move, where and how, and moves
nothing. Fix what sent the messages to the DLQ first, or they come back.

Exit codes: 0 ok, 1 some messages did not move (or the task failed), 2 bad usage."""


def _aws_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--region", default=None, help="AWS region (default: $COMMPROC_REGION, then boto3's configuration)"
    )
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        default=None,
        help="SQS endpoint (default: $COMMPROC_ENDPOINT_URL, then boto3's, e.g. $AWS_ENDPOINT_URL_SQS)",
    )
    parser.add_argument(
        "--wait-time",
        type=int,
        default=2,
        choices=range(21),
        metavar="S",
        help="long poll (0-20 s) that tells an empty queue; 0 is a short poll, which SQS may answer "
        "empty while messages remain (default 2)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress line (it only shows on a terminal anyway)"
    )


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dlq",
        help="dump a dead-letter queue to files, or redrive its messages",
        description="Tools for dead-letter queues: `dump` saves their messages, `redrive` moves them back.",
    )
    commands = parser.add_subparsers(dest="dlq_command", metavar="COMMAND")
    dump = commands.add_parser(
        "dump",
        help="save every message of a queue to files, deleting none",
        description=DUMP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dump.add_argument("queue_url", metavar="QUEUE_URL")
    dump.add_argument("folder", metavar="DIR", help="folder for the message files (created if missing)")
    dump.add_argument("--max", type=int, metavar="N", help="save at most N messages")
    dump.add_argument(
        "--visibility-timeout",
        type=int,
        default=300,
        metavar="S",
        help="how long received messages stay hidden while the dump runs (default 300 s)",
    )
    _aws_options(dump)
    dump.set_defaults(handler=run_dump)

    redrive = commands.add_parser(
        "redrive",
        help="move a dead-letter queue's messages back to their queue",
        description=REDRIVE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    redrive.add_argument("dlq_url", metavar="DLQ_URL")
    redrive.add_argument("--to", metavar="QUEUE_URL", help="move them here instead of to their source queue")
    redrive.add_argument("--count", type=int, metavar="N", help="move at most N messages")
    redrive.add_argument("--rate", type=float, metavar="N", help="move at most N messages per second")
    redrive.add_argument(
        "--dry-run", action="store_true", help="say what would move, where and how; move nothing"
    )
    redrive.add_argument(
        "--via",
        choices=("auto", "move-task", "receive"),
        default="auto",
        help="how to move: SQS's move task where possible (auto), only it, or receive-send-delete",
    )
    redrive.add_argument(
        "--no-wait", action="store_true", help="start a move task and return without following it"
    )
    _aws_options(redrive)
    redrive.set_defaults(handler=run_redrive)
    parser.set_defaults(handler=lambda args: usage_error("choose a dlq command: dump or redrive"))


def _queue(url: str, args: argparse.Namespace, what: str) -> Any:
    from commproc_core.queues import SQSQueue
    from commproc_core.runtime.queue_urls import queue_url_problem

    problem = queue_url_problem(url)
    if problem:
        raise ConfigError(f"{what}: {problem}")
    return SQSQueue(
        url,
        region_name=args.region or os.environ.get("COMMPROC_REGION") or None,
        endpoint_url=args.endpoint_url or os.environ.get("COMMPROC_ENDPOINT_URL") or None,
    )


def _progress(args: argparse.Namespace, label: str) -> Any:
    from commproc_core.runtime.progress import Progress

    return Progress(sys.stderr, label, enabled=False if args.no_progress else None)


def run_dump(args: argparse.Namespace) -> int:
    from commproc_core.runtime.dlq import dump

    configure_logging("WARNING")
    if args.max is not None and args.max < 1:
        return usage_error(f"--max must be at least 1, got {args.max}")
    if not 0 <= args.visibility_timeout <= 43_200:
        return usage_error("--visibility-timeout must be between 0 and 43200 seconds")
    queue = _queue(args.queue_url, args, "QUEUE_URL")
    result = dump(
        queue,
        args.folder,
        limit=args.max,
        visibility_timeout=args.visibility_timeout,
        wait_time=args.wait_time,
        progress=_progress(args, "dump"),
    )
    already = f" ({result.already_saved} already in the folder)" if result.already_saved else ""
    print(
        f"saved {result.saved} message(s) from {mask_urls(queue.url)} to {result.folder}{already}; "
        "the messages stay in the queue"
    )
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    from commproc_core.runtime.dlq import plan_redrive, redrive

    configure_logging("WARNING")
    dlq = _queue(args.dlq_url, args, "DLQ_URL")
    destination = _queue(args.to, args, "--to") if args.to else None
    plan = plan_redrive(dlq, destination, count=args.count, rate=args.rate, method=args.via)
    if args.dry_run:
        print(f"dry run: would move {mask_urls(plan.describe())}")
        return 0
    print(f"moving {mask_urls(plan.describe())}", file=sys.stderr)
    result = redrive(
        plan,
        dlq,
        destination=destination,
        progress=_progress(args, "redrive"),
        wait=not args.no_wait,
        wait_time=args.wait_time,
    )
    if result.method == "move-task":
        if result.status == "RUNNING":
            print(
                f"move task {result.task_handle} started; follow it with "
                f"`aws sqs list-message-move-tasks --source-arn {plan.dlq_arn}`"
            )
            return 0
        reason = f": {result.failure_reason}" if result.failure_reason else ""
        status = str(result.status).lower()
        print(f"move task {result.task_handle} {status}: {result.moved} message(s) moved{reason}")
        return 0 if result.status == "COMPLETED" else 1
    print(f"moved {result.moved} message(s); {result.failed} failed to send and stay in the DLQ")
    if result.unroutable:
        print(
            f"{result.unroutable} message(s) stay in the DLQ: several queues feed it and SQS did not say "
            "which each came from; move them with --to QUEUE_URL"
        )
    return 1 if result.failed or result.unroutable else 0
