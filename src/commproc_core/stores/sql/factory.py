"""Pick a store from a URL: ``memory://`` for the in-memory store, anything else for SQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy.engine import URL

from commproc_core.ports import Store
from commproc_core.stores.location import locate
from commproc_core.stores.memory import MemoryStore
from commproc_core.stores.sql.engine import normalize_url, resolve_url
from commproc_core.stores.sql.store import SQLStore

__all__ = ["open_store", "open_store_from_environment"]


def open_store(url: str | URL | None = None, *, auto_upgrade: bool | None = None, **options: Any) -> Store:
    """The store for ``url`` (default ``$COMMPROC_DATABASE_URL``, then ``sqlite:///commproc.db``).

    ``memory://`` gives a :class:`MemoryStore`. SQL URLs give a
    :class:`SQLStore`; ``auto_upgrade`` defaults to True for SQLite (the
    embedded file creates itself) and False for PostgreSQL, whose schema an
    operator upgrades with ``commproc db upgrade``. ``options`` go to SQLStore.
    """
    resolved = resolve_url(url)
    if isinstance(resolved, str) and resolved.split(":", 1)[0] == "memory":
        if options or auto_upgrade:
            raise TypeError("memory:// takes no store options")
        # MemoryUnitOfWork sets its repositories dynamically, so mypy cannot see it is one.
        return cast(Store, MemoryStore())
    if auto_upgrade is None:
        auto_upgrade = normalize_url(resolved).get_backend_name() == "sqlite"
    return SQLStore(resolved, auto_upgrade=auto_upgrade, **options)


def open_store_from_environment(
    url: str | None = None,
    *,
    schema: str | None = None,
    table_prefix: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Store:
    """The store the arguments name, each one missing read from the environment.

    ``$COMMPROC_DATABASE_URL`` (else ``sqlite:///commproc.db``),
    ``$COMMPROC_SCHEMA`` and ``$COMMPROC_TABLE_PREFIX``: what the worker, the
    CLI, the Lambda handler and processors built without a store all read.
    """
    url, schema, table_prefix = locate(url, schema, table_prefix, environ)
    options: dict[str, Any] = {}
    if schema:
        options["schema"] = schema
    if table_prefix:
        options["table_prefix"] = table_prefix
    return open_store(url, **options)
