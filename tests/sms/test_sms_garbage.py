"""No per-event garbage: what a batch leaves for the cycle collector does not grow with its events.

Reference cycles are freed only by the garbage collector, whose passes cost
time in proportion to everything alive. 0.1 left cyclic garbage behind for
every event; now a batch leaves a fixed handful of objects (its unit of
work and the repositories that point back at it), whatever it holds.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from sms_support import Harness, inbound, status

from commproc_core.model import OutboundMessage


@pytest.fixture
def collector_paused() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _garbage_per_batch(h: Harness, items: list[dict[str, str]]) -> float:
    h.run(inbound("warm up", sender="+14155550999"))
    gc.collect()
    h.run(*items)
    return gc.collect() / -(-len(items) // 10)


def test_a_batch_leaves_the_same_garbage_whatever_it_holds(collector_paused: None) -> None:
    h = Harness()
    with h.store.unit_of_work() as uow:
        for i in range(30):
            uow.outbox.add(
                OutboundMessage(
                    channel="sms", to=f"+1415555{i:04d}", body="hi", provider_message_id=f"SM{i:032d}"
                )
            )
        uow.commit()
    # New senders (a lead, conversation, thread and participants each), known ones, status callbacks, keywords.
    traffic = [inbound(f"hello {i}", sender=f"+1415555{i:04d}") for i in range(60)]
    traffic += [inbound("again", sender=f"+1415555{i:04d}") for i in range(30)]
    traffic += [status(f"SM{i:032d}", "delivered", to=f"+1415555{i:04d}") for i in range(30)]
    traffic += [inbound("STOP", sender=f"+1415555{i:04d}") for i in range(10)]
    busy = _garbage_per_batch(h, traffic)
    quiet = _garbage_per_batch(Harness(), [inbound("hello", sender="+14155550100")])
    # Per batch, not per event: a busy batch of 10 leaves what a batch of one does.
    assert busy <= quiet <= 20
