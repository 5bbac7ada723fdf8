"""``commproc db``: create or upgrade the database schema, show its version."""

from __future__ import annotations

import argparse
from typing import Any

from commproc_core.runtime.cli._common import add_database, configure_logging, usage_error

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "db",
        help="create or upgrade the database schema",
        description="Manage commproc's tables in the SQL database. Exit codes: 0 ok, 1 failed, 2 bad usage.",
    )
    commands = parser.add_subparsers(dest="db_command", metavar="COMMAND")
    upgrade = commands.add_parser(
        "upgrade",
        help="create the tables or bring them to this version's schema",
        description="Create commproc's tables, or apply the migrations they lack; safe to run again "
        "and from several hosts at once. PostgreSQL needs this before the first `commproc run`; "
        "a SQLite file upgrades itself.",
    )
    add_database(upgrade)
    upgrade.set_defaults(handler=run_upgrade)
    version = commands.add_parser("version", help="print the database's schema version")
    add_database(version)
    version.set_defaults(handler=run_version)
    parser.set_defaults(handler=lambda args: usage_error("choose a db command: upgrade or version"))


def _sql_url(args: argparse.Namespace) -> str | None:
    """The database URL (flag, then environment, then default); None for memory://."""
    from commproc_core.stores.sql.engine import resolve_url

    url = str(resolve_url(args.database))
    return None if url.startswith("memory:") else url


def run_upgrade(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    url = _sql_url(args)
    if url is None:
        return usage_error("memory:// has no schema to upgrade; give an SQL database URL")
    from commproc_core.stores.sql import SCHEMA_VERSION, upgrade

    result = upgrade(url)
    if result.applied:
        applied = ", ".join(str(v) for v in result.applied)
        before = result.from_version or "nothing"
        print(f"schema upgraded from {before} to {result.to_version} (applied {applied})")
    else:
        print(f"schema already at version {result.to_version} (this commproc: {SCHEMA_VERSION})")
    return 0


def run_version(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    url = _sql_url(args)
    if url is None:
        return usage_error("memory:// has no schema version; give an SQL database URL")
    from commproc_core.stores.sql import SCHEMA_VERSION, current_version

    found = current_version(url)
    print(f"database schema version: {found if found is not None else 'none (run `commproc db upgrade`)'}")
    print(f"this commproc's schema version: {SCHEMA_VERSION}")
    return 0 if found == SCHEMA_VERSION else 1
