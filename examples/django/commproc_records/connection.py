"""commproc's database: the host's PostgreSQL (Django's ``default``), in the schema ``COMMPROC_SCHEMA``."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import connections


def database_url(alias: str = "default") -> str:
    """A SQLAlchemy URL for Django's database ``alias`` (its test database while tests run)."""
    db = connections[alias].settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        raise ValueError("commproc shares the host's database only on PostgreSQL")
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgresql+psycopg://{auth}{'@' if auth else ''}{host}{port}/{quote(db['NAME'], safe='')}"


def schema() -> str:
    return str(settings.COMMPROC_SCHEMA)


def open_store() -> Any:
    """commproc's SQL store on the host's database, in commproc's schema."""
    from commproc_core.stores.sql import SQLStore

    return SQLStore(database_url(), schema=schema())


def table(name: str) -> str:
    """``db_table`` for commproc's table ``name``: Django quotes this as ``"schema"."name"``."""
    return f'{schema()}"."{name}'
