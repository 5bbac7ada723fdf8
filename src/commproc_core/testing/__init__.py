"""Test helpers for commproc and its plugins.

A plugin author tests a channel the way commproc tests its own: a
:class:`~commproc_core.queues.MemoryQueue` loaded with bodies, a
:class:`~commproc_core.stores.MemoryStore` (or the SQL store), :func:`drain`
to run the processor, :func:`assert_stats` and :func:`table_counts` to check
what happened. The store contract suite lives in
``commproc_core.testing.store_contract`` (it needs pytest); moto helpers in
``commproc_core.testing.moto``.
"""

from commproc_core.testing.example import ExampleEvent, ExampleProcessor
from commproc_core.testing.helpers import FixedClock, assert_stats, body, drain, make_message, table_counts

__all__ = [
    "ExampleEvent",
    "ExampleProcessor",
    "FixedClock",
    "assert_stats",
    "body",
    "drain",
    "make_message",
    "table_counts",
]
