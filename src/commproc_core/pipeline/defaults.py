"""The store a processor built without one records into.

The seed's processors shared the host's database (Django's). Here a host
that configures the default factory once (``ProcessorFactory.configure``)
makes its store the one every processor built without a store uses,
``SMSProcessor(queue_url)`` included. Until then a processor opens the store
``COMMPROC_DATABASE_URL``, ``COMMPROC_SCHEMA`` and ``COMMPROC_TABLE_PREFIX``
name, for itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from commproc_core.ports import Store

__all__ = ["default_store", "set_store_provider"]

_provider: Callable[[], Store | None] | None = None
_lock = threading.Lock()


def set_store_provider(provider: Callable[[], Store | None] | None) -> None:
    """Where processors built without a store get one (None: each opens its own from the environment)."""
    global _provider  # noqa: PLW0603 (one process-wide setting, made by the factory)
    with _lock:
        _provider = provider


def default_store() -> Store:
    """The configured default factory's store, else a store of its own from ``COMMPROC_DATABASE_URL``."""
    provider = _provider
    if provider is not None and (store := provider()) is not None:
        return store
    from commproc_core.stores.sql.factory import open_store_from_environment

    return open_store_from_environment()
