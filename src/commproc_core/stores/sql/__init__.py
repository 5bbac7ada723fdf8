"""The SQL store: SQLite and PostgreSQL through SQLAlchemy Core.

::

    from commproc_core.stores.sql import SQLStore, upgrade

    upgrade("sqlite:///commproc.db")        # what `commproc db upgrade` runs
    store = SQLStore("sqlite:///commproc.db")
"""

from commproc_core.stores.sql.engine import DEFAULT_URL, URL_ENV, create_engine
from commproc_core.stores.sql.factory import open_store
from commproc_core.stores.sql.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    Migration,
    UpgradeResult,
    current_version,
    upgrade,
)
from commproc_core.stores.sql.repository import SQLRepository
from commproc_core.stores.sql.schema import SQLSchema
from commproc_core.stores.sql.store import SQLStore, SQLUnitOfWork

__all__ = [
    "DEFAULT_URL",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "URL_ENV",
    "Migration",
    "SQLRepository",
    "SQLSchema",
    "SQLStore",
    "SQLUnitOfWork",
    "UpgradeResult",
    "create_engine",
    "current_version",
    "open_store",
    "upgrade",
]
