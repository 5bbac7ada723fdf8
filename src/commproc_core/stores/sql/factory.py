"""Pick a store from a URL: ``memory://`` for the in-memory store, anything else for SQL."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy.engine import URL

from commproc_core.ports import Store
from commproc_core.stores.memory import MemoryStore
from commproc_core.stores.sql.engine import normalize_url, resolve_url
from commproc_core.stores.sql.store import SQLStore

__all__ = ["open_store"]


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
