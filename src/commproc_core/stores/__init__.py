"""Store adapters: :class:`MemoryStore` here, the SQL store in ``commproc_core.stores.sql``."""

from commproc_core.stores.memory import MemoryStore
from commproc_core.stores.spec import TABLES, Range, TableSpec, UniqueKey

__all__ = ["TABLES", "MemoryStore", "Range", "TableSpec", "UniqueKey"]
