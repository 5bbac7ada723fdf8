"""``commproc run``: the long-running worker."""

from __future__ import annotations

import argparse
from typing import Any

from commproc_core.errors import ConfigError
from commproc_core.runtime.cli._common import configure_logging

__all__ = ["register"]

DESCRIPTION = """\
Poll every channel's SQS queue and process what arrives, until SIGTERM or SIGINT.

Channels come from the database (`commproc channels add`), unless --channel
or a [[channels]] table in --config names them. Settings are read from the
TOML file (--config or $COMMPROC_CONFIG), then COMMPROC_* environment
variables (COMMPROC_POLLERS, COMMPROC_WAIT_TIME, ...), then these flags.
AWS region, credentials and endpoint come from boto3's own configuration
(AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_SQS ...) unless --region or
--endpoint-url is given.

At start-up every channel must load, every queue and the database must
answer, and the database must hold a current schema (`commproc db upgrade`):
otherwise the worker exits 2 naming each problem. --allow-degraded starts it
anyway; /readyz then answers 503 with the reason of each poller, channel or
database at fault.

On SIGTERM or Ctrl-C the worker stops receiving, finishes and acknowledges
in-flight batches, and exits 0. A poll in progress is not cut short, so
stopping takes up to the wait time (20 s by default) plus one batch; the
worker says what it waits for, and a second Ctrl-C stops at once (unfinished
batches return to their queue after the visibility timeout). Lower
--wait-time for faster shutdowns at the price of more empty receives.

Exit codes: 0 stopped cleanly, 1 failed (or in-flight work did not finish
within --shutdown-timeout), 2 bad configuration or a start-up check failed."""


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "run",
        help="run the worker: poll the channels' queues until stopped",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--config", metavar="FILE", help="TOML settings file (see docs/running.md)")
    add(
        "--database", dest="database_url", metavar="URL", help="database URL (default: sqlite:///commproc.db)"
    )
    add("--schema", metavar="NAME", help="PostgreSQL schema of commproc's tables (default: the search path)")
    add("--table-prefix", metavar="PREFIX", help="prefix of commproc's table names (default: none)")
    add(
        "--allow-degraded",
        action="store_true",
        default=None,
        help="start even if a channel does not load or a queue or the database does not answer; "
        "/readyz then answers 503 naming them",
    )
    add(
        "--channel",
        dest="channels",
        metavar="TYPE=QUEUE_URL",
        action="append",
        default=[],
        help="poll this queue with this channel type, instead of the stored channels (repeatable)",
    )
    add(
        "--processor",
        dest="processors",
        metavar="NAME=MODULE:CLASS",
        action="append",
        default=[],
        help="serve channel type NAME with a processor class not installed as a plugin (repeatable)",
    )
    add("--pollers", type=int, metavar="N", help="poller threads per queue (default 1)")
    add(
        "--batch-size", type=int, metavar="N", help="messages per receive, 1-10 (default: channel config, 10)"
    )
    add("--wait-time", type=int, metavar="S", help="long-poll wait, 0-20 s (default: channel config, 20)")
    add("--visibility-timeout", type=int, metavar="S", help="visibility timeout of received messages")
    add("--heartbeat", type=float, metavar="FRACTION", help="extend visibility after this fraction of it")
    add("--shutdown-timeout", type=float, metavar="S", help="longest wait for in-flight work on stop (30)")
    add("--region", help="AWS region of the queues (default: boto3's configuration)")
    add("--endpoint-url", metavar="URL", help="SQS endpoint (default: boto3's, e.g. $AWS_ENDPOINT_URL_SQS)")
    add("--log-format", choices=("text", "json"), help="log line format (default text)")
    add("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper, help="(default INFO)")
    add("--metrics-port", type=int, metavar="PORT", help="serve /healthz, /readyz and /metrics on PORT")
    add("--metrics-host", metavar="HOST", help="address to serve them on (default 127.0.0.1)")
    add("--sender", metavar="MODULE:CALLABLE", help="factory of the Sender the outbox dispatcher uses")
    parser.set_defaults(handler=run)


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    from commproc_core.runtime.settings import parse_channel_spec, parse_processor_spec

    names = (
        "database_url",
        "pollers",
        "batch_size",
        "wait_time",
        "visibility_timeout",
        "heartbeat",
        "shutdown_timeout",
        "region",
        "endpoint_url",
        "log_format",
        "log_level",
        "metrics_port",
        "metrics_host",
        "sender",
        "schema",
        "table_prefix",
        "allow_degraded",
    )
    flags: dict[str, Any] = {name: getattr(args, name) for name in names}
    try:
        flags["channels"] = [parse_channel_spec(text) for text in args.channels]
        flags["processors"] = dict(parse_processor_spec(text) for text in args.processors)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    return flags


def run(args: argparse.Namespace) -> int:
    from commproc_core.runtime.settings import load_settings

    settings = load_settings(_flags(args), config_file=args.config)
    configure_logging(settings.log_level, settings.log_format)
    from commproc_core.runtime.worker import Worker

    worker = Worker.from_settings(settings)
    return worker.run()
