"""``manage.py process_communications``: the guide's Django processor command, on commproc.

The guide ran its processors from Django: every active channel configuration,
a processor each, ``process_messages()`` in a loop. This command does the
same with commproc: the channel configurations stored in commproc's schema
(``manage.py commproc channels add``), the processors the installed plugins
provide, and commproc's worker (several pollers, graceful stop on SIGTERM,
start-up checks). ``--once`` processes what the queues hold and returns,
for a cron job or a test.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from commproc_records.connection import open_store


class Command(BaseCommand):
    help = "Process the queues of every active commproc channel (until stopped, or --once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--channel", action="append", default=[], help="only this channel type (repeatable)"
        )
        parser.add_argument("--once", action="store_true", help="process what the queues hold, then return")
        parser.add_argument("--max-messages", type=int, default=10, help="messages per receive, 1-10")
        parser.add_argument("--pollers", type=int, default=1, help="poller threads per queue (worker mode)")

    def handle(self, *args: Any, **options: Any) -> None:
        from commproc_core import ProcessorFactory

        store = open_store()
        try:
            processors = ProcessorFactory(store).get_all_processors()
            wanted = set(options["channel"])
            if wanted:
                processors = [p for p in processors if p.channel_type in wanted]
            if not processors:
                raise CommandError(
                    "no active channel configuration"
                    + (f" for {', '.join(sorted(wanted))}" if wanted else "")
                    + ": add one with `manage.py commproc channels add TYPE QUEUE_URL --config ...`"
                )
            if options["once"]:
                for processor in processors:
                    self._drain(processor, options["max_messages"])
                    processor.close()
            else:
                from commproc_core.runtime.worker import Worker

                Worker(processors, store=store, pollers=options["pollers"]).run()
        finally:
            store.close()

    def _drain(self, processor: Any, max_messages: int) -> None:
        totals: dict[str, int] = {}
        while True:
            stats = processor.process_messages(max_messages=max_messages, wait_time=0)
            for name in ("received", "processed", "failed", "duplicates", "deleted", "retried"):
                totals[name] = totals.get(name, 0) + int(stats[name])
            if stats["received"] == 0:
                break
        summary = " ".join(f"{name}={value}" for name, value in totals.items())
        self.stdout.write(f"{processor.channel_type} on {processor.queue_url}: {summary}")
