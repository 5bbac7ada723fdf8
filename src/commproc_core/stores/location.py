"""Where the database is: the environment variables every entry point reads, without importing SQLAlchemy.

The worker, the CLI, the Lambda handler and processors built without a store
all find the database the same way: an argument when given, else
``$COMMPROC_DATABASE_URL``, ``$COMMPROC_SCHEMA`` and ``$COMMPROC_TABLE_PREFIX``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["DEFAULT_URL", "PREFIX_ENV", "SCHEMA_ENV", "SUPPORTED", "URL_ENV", "locate"]

#: The database URL, when none is given.
URL_ENV = "COMMPROC_DATABASE_URL"
#: The PostgreSQL schema and the table-name prefix, when none is given.
SCHEMA_ENV = "COMMPROC_SCHEMA"
PREFIX_ENV = "COMMPROC_TABLE_PREFIX"
#: The embedded default: a SQLite file in the working directory.
DEFAULT_URL = "sqlite:///commproc.db"
SUPPORTED = "commproc keeps its records in SQLite (sqlite:///path/commproc.db) or PostgreSQL (postgresql://user@host/db)"


def locate(
    url: str | None = None,
    schema: str | None = None,
    table_prefix: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None, str]:
    """(URL, schema, table prefix): each argument given, else its environment variable.

    A URL or schema found nowhere is None, a table prefix "".
    """
    env = os.environ if environ is None else environ
    return (
        url or env.get(URL_ENV) or None,
        schema if schema is not None else (env.get(SCHEMA_ENV) or None),
        table_prefix if table_prefix is not None else env.get(PREFIX_ENV, ""),
    )
