"""``manage.py commproc ...``: commproc's own command line, on this project's database and schema.

Every ``commproc`` command works (``db upgrade``, ``channels add``, ``run``,
``stats``, ``dlq``, ``replay``...), with ``--database`` and ``--schema``
taken from the project's settings instead of the environment, so commproc
and Django can never point at different databases.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from commproc_records.connection import database_url, schema


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Command(BaseCommand):
    help = "Run a commproc command (db upgrade, channels, run, stats, dlq...) on this project's database."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "arguments", nargs=argparse.REMAINDER, help="the commproc command and its options"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from commproc_core.runtime.cli import main

        arguments = list(options["arguments"])
        if not arguments:
            raise CommandError("name a commproc command: db upgrade, channels add, run, stats...")
        with _environment(COMMPROC_DATABASE_URL=database_url(), COMMPROC_SCHEMA=schema()):
            code = main(arguments)
        if code:
            raise CommandError(f"commproc {arguments[0]} exited with status {code}", returncode=code)
