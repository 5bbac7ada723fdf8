"""No per-event garbage: what a batch leaves for the cycle collector does not grow with its events.

Reference cycles are freed only by the garbage collector, whose passes cost
time in proportion to everything alive. 0.1 left cyclic garbage behind for
every event; now a batch leaves a fixed handful of objects (its unit of
work and the repositories that point back at it), whatever it holds.

``gc.collect()`` counts the whole process's garbage, threads left running by
other tests included, so each figure is the least of a few runs: other
threads can only add to it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from sms_support import Harness, inbound, status

from commproc_core.model import OutboundMessage

BATCHES = 20
RUNS = 3


@pytest.fixture
def collector_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _garbage(batches: list[list[dict[str, Any]]]) -> int:
    h = Harness()
    with h.store.unit_of_work() as uow:
        for i in range(10 * BATCHES):
            uow.outbox.add(
                OutboundMessage(
                    channel="sms", to=f"+1415555{i:04d}", body="hi", provider_message_id=f"SM{i:032d}"
                )
            )
        uow.commit()
    h.run(inbound("warm up", sender="+14155559999"))
    gc.collect()
    for items in batches:
        h.run(*items)  # one batch each
    return gc.collect()


def _busy_batch(n: int) -> list[dict[str, Any]]:
    # New senders (a lead, conversation, thread and participants each), a known one, a status callback, STOP.
    first = 10 * n
    items = [inbound(f"hello {i}", sender=f"+1415555{i:04d}") for i in range(first, first + 6)]
    items.append(inbound("again", sender=f"+1415555{first:04d}"))
    items += [status(f"SM{i:032d}", "delivered", to=f"+1415555{i:04d}") for i in range(first + 6, first + 8)]
    items.append(inbound("STOP", sender=f"+1415555{first + 1:04d}"))
    return items


def test_a_batch_leaves_the_same_garbage_whatever_it_holds(collector_paused: None) -> None:
    ones = min(
        _garbage([[inbound("hello", sender=f"+1415555{n:04d}")] for n in range(BATCHES)]) for _ in range(RUNS)
    )
    tens = min(_garbage([_busy_batch(n) for n in range(BATCHES)]) for _ in range(RUNS))
    # A fixed handful per batch...
    assert ones <= 20 * BATCHES
    # ...and nothing per event: 180 more events leave (next to) no more garbage.
    assert tens - ones < 0.5 * 9 * BATCHES, (ones, tens)
