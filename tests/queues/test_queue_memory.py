"""MemoryQueue: SQS semantics in memory, driven by a manual clock."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from commproc_core.errors import QueueError
from commproc_core.ports import VisibilityChange
from commproc_core.queues import MemoryQueue
from commproc_core.queues.memory import INVALID_HANDLE, NOT_IN_FLIGHT


def queue_with_dlq(clock, *, max_receive_count=3, fifo=False):
    suffix = ".fifo" if fifo else ""
    dlq = MemoryQueue(f"memory://dlq{suffix}", fifo=fifo, clock=clock)
    queue = MemoryQueue(
        f"memory://q{suffix}",
        visibility_timeout=30,
        max_receive_count=max_receive_count,
        dead_letter_queue=dlq,
        fifo=fifo,
        clock=clock,
    )
    return queue, dlq


# -- visibility ---------------------------------------------------------------------------


def test_message_reappears_when_its_visibility_timeout_runs_out(clock):
    queue = MemoryQueue(visibility_timeout=30, clock=clock)
    queue.send("hi")
    [first] = queue.receive(wait_time_seconds=0)
    assert queue.in_flight() == 1
    assert queue.approximate_depth() == 0

    clock.advance(29.9)
    assert queue.receive(wait_time_seconds=0) == []
    clock.advance(0.1)
    [second] = queue.receive(wait_time_seconds=0)

    assert second.message_id == first.message_id
    assert second.receive_count == 2
    assert second.attributes["ApproximateReceiveCount"] == "2"
    assert (
        second.attributes["ApproximateFirstReceiveTimestamp"]
        == first.attributes["ApproximateFirstReceiveTimestamp"]
    )
    assert second.receipt_handle != first.receipt_handle


def test_receive_visibility_timeout_overrides_the_queue_default(clock):
    queue = MemoryQueue(visibility_timeout=30, clock=clock)
    queue.send("hi")
    queue.receive(wait_time_seconds=0, visibility_timeout=5)
    clock.advance(5)
    assert len(queue.receive(wait_time_seconds=0)) == 1


def test_a_stale_handle_fails_once_the_message_was_received_again(clock):
    queue = MemoryQueue(visibility_timeout=10, clock=clock)
    queue.send("hi")
    [first] = queue.receive(wait_time_seconds=0)
    clock.advance(10)
    [second] = queue.receive(wait_time_seconds=0)

    result = queue.delete_batch([first.receipt_handle])
    assert result.succeeded == ()
    assert result.failed[0][:2] == (first.receipt_handle, INVALID_HANDLE)
    assert queue.change_visibility_batch([VisibilityChange(first.receipt_handle, 0)]).failed[0][1] == (
        INVALID_HANDLE
    )

    assert queue.delete_batch([second.receipt_handle]).succeeded == (second.receipt_handle,)
    assert queue.messages() == []


def test_an_expired_handle_still_deletes_until_the_message_is_received_again(clock):
    queue = MemoryQueue(visibility_timeout=10, clock=clock)
    queue.send("hi")
    [message] = queue.receive(wait_time_seconds=0)
    clock.advance(11)
    assert queue.approximate_depth() == 1

    assert queue.delete_batch([message.receipt_handle]).failed == ()
    assert queue.receive(wait_time_seconds=0) == []
    assert queue.approximate_depth() == 0


def test_deleting_twice_fails_the_second_time(clock):
    queue = MemoryQueue(clock=clock)
    queue.send("hi")
    [message] = queue.receive(wait_time_seconds=0)
    result = queue.delete_batch([message.receipt_handle, message.receipt_handle])
    assert result.succeeded == (message.receipt_handle,)
    assert [code for _, code, _ in result.failed] == [INVALID_HANDLE]


def test_change_visibility_extends_from_now(clock):
    queue = MemoryQueue(visibility_timeout=10, clock=clock)
    queue.send("hi")
    [message] = queue.receive(wait_time_seconds=0)
    clock.advance(8)
    queue.change_visibility(message.receipt_handle, 20)
    clock.advance(19)
    assert queue.receive(wait_time_seconds=0) == []
    clock.advance(1)
    assert len(queue.receive(wait_time_seconds=0)) == 1


def test_change_visibility_of_a_message_no_longer_in_flight_fails(clock):
    queue = MemoryQueue(visibility_timeout=10, clock=clock)
    queue.send("hi")
    [message] = queue.receive(wait_time_seconds=0)
    clock.advance(10)

    result = queue.change_visibility_batch([VisibilityChange(message.receipt_handle, 30)])
    assert result.failed[0][1] == NOT_IN_FLIGHT
    with pytest.raises(QueueError, match="MessageNotInflight"):
        queue.change_visibility(message.receipt_handle, 30)


def test_single_message_conveniences_raise_for_bad_handles(clock):
    queue = MemoryQueue(clock=clock)
    with pytest.raises(QueueError, match=INVALID_HANDLE):
        queue.delete_message("nope")
    with pytest.raises(QueueError, match=INVALID_HANDLE):
        queue.change_visibility("nope", 0)
    assert queue.calls["DeleteMessage"] == 1
    assert queue.calls["ChangeMessageVisibility"] == 1


def test_delayed_messages_count_in_depth_but_wait_their_delay(clock):
    queue = MemoryQueue(visibility_timeout=300, clock=clock)
    queue.send("later", delay_seconds=60)
    queue.send("now")
    assert queue.approximate_depth() == 2
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["now"]
    clock.advance(60)
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["later"]


def test_messages_snapshot_shows_every_stored_message(clock):
    queue = MemoryQueue(clock=clock)
    queue.send_batch(["a", "b", "c"])
    queue.receive(max_messages=1, wait_time_seconds=0)
    snapshot = queue.messages()
    assert [m.body for m in snapshot] == ["a", "b", "c"]
    assert [m.receive_count for m in snapshot] == [1, 0, 0]


def test_message_attributes_cannot_be_changed_through_a_received_message(clock):
    queue = MemoryQueue(clock=clock)
    queue.send("x", message_attributes={"k": {"DataType": "String", "StringValue": "v"}})
    [message] = queue.receive(wait_time_seconds=0)
    with pytest.raises(TypeError):
        message.message_attributes["k"] = {}  # type: ignore[index]


# -- redrive --------------------------------------------------------------------------------


def test_redrive_moves_the_message_at_the_receive_after_max_receive_count(clock):
    queue, dlq = queue_with_dlq(clock, max_receive_count=3)
    message_id = queue.send("poison", message_attributes={"k": {"DataType": "String", "StringValue": "v"}})
    for attempt in (1, 2, 3):
        [message] = queue.receive(wait_time_seconds=0)
        assert message.receive_count == attempt
        clock.advance(30)

    # Checked at receive, as SQS does: until then the message is still in the source queue.
    assert [m.message_id for m in queue.messages()] == [message_id]
    assert dlq.messages() == []

    assert queue.receive(wait_time_seconds=0) == []
    assert queue.messages() == []
    [dead] = dlq.receive(wait_time_seconds=0)
    assert dead.message_id == message_id
    assert dead.body == "poison"
    assert dead.message_attributes["k"]["StringValue"] == "v"
    assert dead.receive_count == 4
    assert dead.queue_url == dlq.url


def test_redrive_skips_the_poison_message_and_delivers_the_next(clock):
    queue, dlq = queue_with_dlq(clock, max_receive_count=1)
    queue.send("poison")
    [poison] = queue.receive(wait_time_seconds=0)
    queue.send("fine")
    clock.advance(30)
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["fine"]
    assert [m.body for m in dlq.messages()] == ["poison"]


def test_redrive_wakes_a_long_poll_on_the_dead_letter_queue(clock):
    queue, dlq = queue_with_dlq(clock, max_receive_count=1)
    queue.send("poison")
    queue.receive(wait_time_seconds=0, visibility_timeout=0)
    results = []
    waiter = threading.Thread(target=lambda: results.append(dlq.receive(wait_time_seconds=5)))
    waiter.start()
    time.sleep(0.05)
    queue.receive(wait_time_seconds=0)
    waiter.join(2)
    assert not waiter.is_alive()
    assert [m.body for m in results[0]] == ["poison"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_receive_count": 3}, "both"),
        ({"dead_letter_queue": MemoryQueue()}, "both"),
        ({"max_receive_count": 0, "dead_letter_queue": MemoryQueue()}, "1-1000"),
        ({"fifo": True, "max_receive_count": 3, "dead_letter_queue": MemoryQueue()}, "same type"),
    ],
)
def test_invalid_redrive_policies_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MemoryQueue(**kwargs)


# -- FIFO -------------------------------------------------------------------------------------


def test_fifo_holds_a_group_while_one_of_its_messages_is_in_flight(clock):
    queue = MemoryQueue("memory://q.fifo", fifo=True, clock=clock)
    queue.send("a1", group_id="a")
    queue.send("a2", group_id="a")
    queue.send("b1", group_id="b")

    [a1] = queue.receive(max_messages=1, wait_time_seconds=0)
    [b1] = queue.receive(max_messages=1, wait_time_seconds=0)
    assert (a1.body, b1.body) == ("a1", "b1")
    assert a1.attributes["MessageGroupId"] == "a"
    assert queue.receive(wait_time_seconds=0) == []

    queue.delete_batch([a1.receipt_handle])
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["a2"]


def test_fifo_returns_several_messages_of_a_group_in_order(clock):
    queue = MemoryQueue("memory://q.fifo", fifo=True, clock=clock)
    for index in range(3):
        queue.send(f"a{index}", group_id="a")
        queue.send(f"b{index}", group_id="b")

    batch = queue.receive(wait_time_seconds=0)

    assert [m.body for m in batch] == ["a0", "a1", "a2", "b0", "b1", "b2"]
    sequence = [int(m.attributes["SequenceNumber"]) for m in batch if m.attributes["MessageGroupId"] == "a"]
    assert sequence == sorted(sequence)
    # Deleting some of a group's in-flight messages does not release the group.
    queue.delete_batch([batch[0].receipt_handle, batch[1].receipt_handle])
    queue.send("a3", group_id="a")
    assert queue.receive(wait_time_seconds=0) == []
    queue.delete_batch([batch[2].receipt_handle])
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["a3"]


def test_fifo_redelivers_an_expired_message_before_the_rest_of_its_group(clock):
    queue = MemoryQueue("memory://q.fifo", fifo=True, visibility_timeout=10, clock=clock)
    queue.send("first", group_id="g")
    queue.send("second", group_id="g")
    [first] = queue.receive(max_messages=1, wait_time_seconds=0)
    clock.advance(10)
    [again] = queue.receive(max_messages=1, wait_time_seconds=0)
    assert (again.body, again.receive_count) == ("first", 2)
    queue.change_visibility(again.receipt_handle, 0)
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["first", "second"]
    assert first.message_id == again.message_id


def test_fifo_deduplicates_within_five_minutes(clock):
    queue = MemoryQueue("memory://q.fifo", fifo=True, clock=clock)
    original = queue.send("x", group_id="g", deduplication_id="d1")
    assert queue.send("other body", group_id="g", deduplication_id="d1") == original
    # Without an id the body's hash deduplicates, as with ContentBasedDeduplication.
    by_content = queue.send("y", group_id="g")
    assert queue.send("y", group_id="g") == by_content
    assert len(queue.messages()) == 2

    clock.advance(300)
    assert queue.send("x", group_id="g", deduplication_id="d1") != original
    assert len(queue.messages()) == 3


def test_fifo_needs_a_group_id():
    with pytest.raises(ValueError, match="group_id"):
        MemoryQueue(fifo=True).send("x")


def test_fifo_redrive_keeps_the_group(clock):
    queue, dlq = queue_with_dlq(clock, max_receive_count=1, fifo=True)
    queue.send("poison", group_id="g")
    queue.send("next", group_id="g")
    [poison] = queue.receive(max_messages=1, wait_time_seconds=0)
    clock.advance(30)
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["next"]
    [dead] = dlq.receive(wait_time_seconds=0)
    assert (dead.body, dead.attributes["MessageGroupId"]) == ("poison", "g")


def test_fifo_delayed_head_holds_its_group(clock):
    queue = MemoryQueue("memory://q.fifo", fifo=True, clock=clock)
    queue.send("late", group_id="g", delay_seconds=5)
    queue.send("after", group_id="g")
    queue.send("other", group_id="h")
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["other"]
    clock.advance(5)
    assert [m.body for m in queue.receive(wait_time_seconds=0)] == ["late", "after"]


# -- long polling and threads -------------------------------------------------------------


def test_long_poll_returns_as_soon_as_another_thread_sends():
    queue = MemoryQueue()
    results = []
    waiter = threading.Thread(target=lambda: results.append(queue.receive(wait_time_seconds=10)))
    started = time.monotonic()
    waiter.start()
    time.sleep(0.1)
    queue.send("wake up")
    waiter.join(5)
    assert not waiter.is_alive()
    assert [m.body for m in results[0]] == ["wake up"]
    assert time.monotonic() - started < 2


def test_long_poll_wakes_when_visibility_is_set_to_zero():
    queue = MemoryQueue(visibility_timeout=300)
    queue.send("x")
    [message] = queue.receive(wait_time_seconds=0)
    results = []
    waiter = threading.Thread(target=lambda: results.append(queue.receive(wait_time_seconds=10)))
    waiter.start()
    time.sleep(0.05)
    queue.change_visibility_batch([VisibilityChange(message.receipt_handle, 0)])
    waiter.join(5)
    assert [m.receive_count for m in results[0]] == [2]


def test_long_poll_returns_nothing_after_the_wait():
    queue = MemoryQueue()
    started = time.monotonic()
    assert queue.receive(wait_time_seconds=1) == []
    assert 0.9 <= time.monotonic() - started < 3


def test_long_poll_picks_up_a_message_whose_visibility_runs_out():
    queue = MemoryQueue()
    queue.send("x")
    queue.receive(wait_time_seconds=0, visibility_timeout=1)
    started = time.monotonic()
    [message] = queue.receive(wait_time_seconds=5)
    assert message.receive_count == 2
    assert time.monotonic() - started < 3


def test_concurrent_consumers_each_message_once():
    queue = MemoryQueue(visibility_timeout=300)
    sent = set(queue.send_batch(f"m{index}" for index in range(2000)))
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def consume():
        while batch := queue.receive(10, 0):
            with lock:
                seen.update(m.message_id for m in batch)
            assert queue.delete_batch([m.receipt_handle for m in batch]).failed == ()

    workers = [threading.Thread(target=consume) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert set(seen) == sent
    assert max(seen.values()) == 1
    assert queue.approximate_depth() == 0 and queue.in_flight() == 0


# -- calls and throughput ---------------------------------------------------------------------


def test_calls_count_one_batch_call_per_ten_entries(clock):
    queue = MemoryQueue(clock=clock)
    queue.send_batch(str(index) for index in range(25))
    queue.send("one")
    handles = []
    while batch := queue.receive(10, 0):
        handles.extend(m.receipt_handle for m in batch)
    queue.change_visibility_batch([VisibilityChange(handle, 60) for handle in handles])
    queue.delete_batch(handles)
    queue.approximate_depth()
    assert queue.calls == {
        "SendMessageBatch": 3,
        "SendMessage": 1,
        "ReceiveMessage": 4,
        "ChangeMessageVisibilityBatch": 3,
        "DeleteMessageBatch": 3,
        "GetQueueAttributes": 1,
    }


@pytest.mark.parametrize("fifo", [False, True])
def test_twenty_thousand_messages_flow_quickly(fifo):
    queue = MemoryQueue("memory://bench.fifo" if fifo else "memory://bench", fifo=fifo)
    total = 20_000
    started = time.perf_counter()
    for start in range(0, total, 1000):
        if fifo:
            for index in range(start, start + 1000):
                queue.send(f"m{index}", group_id=f"g{index % 50}")
        else:
            queue.send_batch(f"m{index}" for index in range(start, start + 1000))
    received = 0
    while batch := queue.receive(10, 0):
        received += len(batch)
        queue.delete_batch([m.receipt_handle for m in batch])
    elapsed = time.perf_counter() - started
    assert received == total
    assert queue.approximate_depth() == 0
    # A scan per receive would take minutes here; the real cost is well under a second.
    assert elapsed < 10
