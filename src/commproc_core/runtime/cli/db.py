"""``commproc db``: create or upgrade the database schema, show its version."""

from __future__ import annotations

import argparse
from typing import Any

from commproc_core.runtime.cli._common import add_database, configure_logging, database_target, usage_error

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
        "and from several hosts at once. Run it before the first `commproc channels add` or `commproc run`; "
        "no other command creates or changes tables (SQLite included).",
    )
    add_database(upgrade)
    upgrade.set_defaults(handler=run_upgrade)
    version = commands.add_parser("version", help="print the database's schema version")
    add_database(version)
    version.set_defaults(handler=run_version)
    parser.set_defaults(handler=lambda args: usage_error("choose a db command: upgrade or version"))


def _sql_target(args: argparse.Namespace) -> Any:
    """The database the options name, checked; None for memory://."""
    from commproc_core.runtime.database import check_target

    target = database_target(args)
    if target.memory:
        return None
    check_target(target)
    return target


def run_upgrade(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = _sql_target(args)
    if target is None:
        return usage_error("memory:// has no schema to upgrade; give an SQL database URL")
    from commproc_core.stores.sql import SCHEMA_VERSION, upgrade

    result = upgrade(target.url, schema=target.schema, table_prefix=target.table_prefix)
    where = target.describe()
    if result.applied:
        applied = ", ".join(str(v) for v in result.applied)
        before = result.from_version or "nothing"
        print(f"schema upgraded from {before} to {result.to_version} (applied {applied}) in {where}")
    else:
        print(f"schema already at version {result.to_version} (this commproc: {SCHEMA_VERSION}) in {where}")
    return 0


def run_version(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    target = _sql_target(args)
    if target is None:
        return usage_error("memory:// has no schema version; give an SQL database URL")
    from commproc_core.runtime.database import sqlite_file
    from commproc_core.stores.sql import SCHEMA_VERSION, current_version

    path = sqlite_file(target.url)
    if path is not None and not path.is_file():
        # Connecting would create the file; a version query must leave no trace.
        print(f"no database at {path} (create it with `{target.upgrade_command()}`)")
        return 1
    found = current_version(target.url, schema=target.schema, table_prefix=target.table_prefix)
    print(f"database schema version: {found if found is not None else 'none (run `commproc db upgrade`)'}")
    print(f"this commproc's schema version: {SCHEMA_VERSION}")
    return 0 if found == SCHEMA_VERSION else 1
