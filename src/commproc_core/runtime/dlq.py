"""Dead-letter queue tools: save every message of a DLQ to files, and move messages back.

:func:`dump` receives every message of a queue without deleting any, writes
each (body and attributes) to a file of its own, and makes them visible
again at the end, so ``commproc replay`` can inspect or re-drive them
locally while the queue keeps them.

:func:`redrive` moves messages from a DLQ back to where they came from (or
to another queue). Where the endpoint supports it, and no count is asked
for, it starts SQS's own message move task (``StartMessageMoveTask``) and
follows it; otherwise it receives, sends to the destination and deletes
from the DLQ only what was sent, at a rate it is told, up to a count.
A message sent but not deleted (a crash in between) is delivered twice:
commproc's dedupe keys make the second one a recorded duplicate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from commproc_core.errors import ConfigError, QueueCredentialsError, QueueError
from commproc_core.model import QueueMessage
from commproc_core.ports import VisibilityChange
from commproc_core.queues.sqs import SQSQueue, unsupported_operation
from commproc_core.runtime.progress import Progress
from commproc_core.runtime.replay import DUMP_FORMAT

__all__ = [
    "DUMP_FORMAT",
    "DumpResult",
    "RedrivePlan",
    "RedriveResult",
    "dump",
    "dump_record",
    "plan_redrive",
    "redrive",
]

log = logging.getLogger("commproc.dlq")

#: StartMessageMoveTask's highest rate (messages per second).
MOVE_TASK_MAX_RATE = 500
#: SendMessageBatch's payload limit on endpoints that predate SQS's 1 MiB messages.
_BATCH_BYTES = 262_144
_DONE = ("COMPLETED", "CANCELLED", "FAILED")
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def dump_record(message: QueueMessage) -> dict[str, Any]:
    """The JSON object a dumped message is saved as."""
    return {
        "format": DUMP_FORMAT,
        "queue_url": message.queue_url,
        "message_id": message.message_id,
        "body": message.body,
        "attributes": dict(message.attributes),
        "message_attributes": dict(message.message_attributes),
    }


def _file_name(message: QueueMessage) -> str:
    # Sent time first, so a folder listed by name is in the order SQS received them.
    sent = str(message.attributes.get("SentTimestamp", "0"))
    sent = sent if sent.isdigit() else "0"
    return f"{int(sent):013d}-{_SAFE.sub('_', message.message_id)[:100]}.json"


def _write_new(path: Path, record: Mapping[str, Any]) -> bool:
    """Write ``record`` to ``path`` readable by the owner only; False if the file already exists."""
    if path.exists():
        return False
    partial = path.with_name(f".{path.name}.partial")
    data = json.dumps(record, ensure_ascii=False, indent=1).encode("utf-8", "surrogatepass")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)
    return True


@attrs.frozen
class DumpResult:
    """What a dump did: files written, messages already on disk, distinct messages seen."""

    folder: str
    saved: int
    already_saved: int
    seen: int


def dump(
    queue: SQSQueue,
    folder: str | Path,
    *,
    limit: int | None = None,
    visibility_timeout: int = 300,
    wait_time: int = 2,
    progress: Progress | None = None,
) -> DumpResult:
    """Save every message of ``queue`` (up to ``limit``) to ``folder``, one file each, deleting none.

    Received messages stay hidden for ``visibility_timeout`` while the dump
    runs (so none is read twice) and are made visible again at the end, even
    when the dump is interrupted. Each receive raises the messages'
    ``ApproximateReceiveCount``; a DLQ with its own redrive policy may move
    them on.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    handles: dict[str, str] = {}
    saved = already = 0
    stale_rounds = 0
    try:
        while limit is None or len(handles) < limit:
            want = 10 if limit is None else max(1, min(10, limit - len(handles)))
            messages = queue.receive(
                want, wait_time, visibility_timeout=visibility_timeout, attribute_names=["All"]
            )
            if not messages:
                break  # a long poll that finds nothing: the queue holds no visible message
            fresh = [m for m in messages if m.message_id not in handles]
            for message in messages:
                handles[message.message_id] = message.receipt_handle
            # Only messages seen before: their visibility ran out while the dump ran.
            stale_rounds = 0 if fresh else stale_rounds + 1
            if stale_rounds >= 3:
                break
            for message in fresh:
                if _write_new(target / _file_name(message), dump_record(message)):
                    saved += 1
                else:
                    already += 1
            if progress is not None:
                progress.update(len(handles), note=f"{saved} saved")
    finally:
        _release(queue, handles.values())
        if progress is not None:
            progress.close()
    return DumpResult(folder=str(target), saved=saved, already_saved=already, seen=len(handles))


def _release(queue: SQSQueue, receipt_handles: Iterable[str]) -> None:
    """Make received messages visible again at once (they stay in the queue)."""
    changes = [VisibilityChange(handle, 0) for handle in receipt_handles]
    if not changes:
        return
    try:
        result = queue.change_visibility_batch(changes)
    except QueueError as exc:
        log.warning(
            "could not make %d message(s) visible again (%s); they return by themselves", len(changes), exc
        )
        return
    if result.failed:
        log.warning("%d message(s) stay hidden until their visibility timeout ends", len(result.failed))


# -- redrive -------------------------------------------------------------------------------


@attrs.frozen
class RedrivePlan:
    """What a redrive would do, before it does anything."""

    dlq_url: str
    dlq_arn: str
    #: ``ApproximateNumberOfMessages`` of the DLQ when planned.
    depth: int
    #: ``move-task`` (SQS moves them) or ``receive`` (receive, send, delete).
    method: str
    #: The --to queue; None: each message goes back to the queue it came from.
    destination: str | None
    #: The queues whose redrive policy names this DLQ.
    sources: tuple[str, ...]
    count: int | None
    rate: float | None
    #: Why the move task is not used, when it is not.
    why_not_move_task: str | None = None

    def describe(self) -> str:
        where = self.destination or (
            self.sources[0] if len(self.sources) == 1 else "the queue each message came from"
        )
        how = (
            "SQS's message move task (StartMessageMoveTask)"
            if self.method == "move-task"
            else "receive, send, delete"
        )
        amount = f"up to {self.count} of " if self.count is not None else ""
        rate = f" at up to {self.rate:g} messages/s" if self.rate else ""
        lines = [f"{amount}about {self.depth} message(s) from {self.dlq_url} to {where}, by {how}{rate}"]
        if self.why_not_move_task and self.method == "receive":
            lines.append(f"(not the move task: {self.why_not_move_task})")
        return "\n".join(lines)


@attrs.frozen
class RedriveResult:
    """What a redrive did."""

    method: str
    moved: int
    failed: int
    #: Messages left in the DLQ because their source queue is unknown (no --to).
    unroutable: int = 0
    task_handle: str | None = None
    status: str | None = None
    failure_reason: str | None = None


def _move_task_support(dlq: SQSQueue, arn: str) -> str | None:
    """None when the endpoint runs message move tasks for this DLQ; else why not."""
    try:
        dlq.call("ListMessageMoveTasks", SourceArn=arn, MaxResults=1)
    except QueueCredentialsError:
        raise
    except Exception as exc:  # whatever the endpoint answers, the receive path still works
        if unsupported_operation(exc):
            return "this SQS endpoint does not implement message move tasks"
        return f"SQS refused to list move tasks for this queue ({type(exc).__name__})"
    return None


def plan_redrive(
    dlq: SQSQueue,
    destination: SQSQueue | None = None,
    *,
    count: int | None = None,
    rate: float | None = None,
    method: str = "auto",
) -> RedrivePlan:
    """Check the DLQ (and destination) and choose how to move; nothing is moved."""
    if method not in ("auto", "move-task", "receive"):
        raise ConfigError(f"--via takes auto, move-task or receive, not {method!r}")
    if count is not None and count < 1:
        raise ConfigError(f"--count must be at least 1, got {count}")
    if rate is not None and not rate > 0:
        raise ConfigError(f"--rate must be above 0 messages per second, got {rate}")
    attributes = dlq.check()
    arn = attributes.get("QueueArn") or dlq.arn()
    depth = int(attributes.get("ApproximateNumberOfMessages", "0") or 0)
    if destination is not None:
        destination.check()
    try:
        listed = dlq.call("ListDeadLetterSourceQueues", QueueUrl=dlq.url)
        sources = tuple(str(url) for url in listed.get("queueUrls", ()))
    except QueueCredentialsError:
        if destination is None:
            raise
        sources = ()
    except Exception as exc:  # permission or emulator gap: only --to can say where to send them
        log.info("cannot list the queues feeding %s: %s", dlq.url, type(exc).__name__)
        sources = ()
    if destination is None and not sources:
        raise ConfigError(
            f"no queue names {dlq.url} as its dead-letter queue, so there is nowhere to send its messages "
            "back to: pass --to QUEUE_URL"
        )
    why_not: str | None = None
    if count is not None:
        why_not = "--count limits how many move, which a move task cannot"
    elif rate is not None and rate > MOVE_TASK_MAX_RATE:
        why_not = f"a move task moves at most {MOVE_TASK_MAX_RATE} messages/s"
    elif rate is not None and rate != int(rate):
        why_not = "a move task takes a whole number of messages per second"
    else:
        why_not = _move_task_support(dlq, arn)
    chosen = "move-task" if why_not is None and method != "receive" else "receive"
    if method == "move-task" and why_not is not None:
        raise ConfigError(f"cannot use a message move task: {why_not}; use --via receive")
    if method == "receive":
        why_not = "--via receive"
    return RedrivePlan(
        dlq_url=dlq.url,
        dlq_arn=arn,
        depth=depth,
        method=chosen,
        destination=destination.url if destination is not None else None,
        sources=sources,
        count=count,
        rate=rate,
        why_not_move_task=why_not,
    )


def redrive(
    plan: RedrivePlan,
    dlq: SQSQueue,
    *,
    destination: SQSQueue | None = None,
    queue_for: Callable[[str], SQSQueue] | None = None,
    progress: Progress | None = None,
    wait: bool = True,
    poll_interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
    wait_time: int = 2,
) -> RedriveResult:
    """Carry out ``plan``; ``queue_for`` makes a queue for a source URL (the DLQ's client by default).

    ``wait_time`` is the long poll that decides the DLQ is empty: a short
    poll (0) samples only some SQS servers and may miss messages.
    """
    try:
        if plan.method == "move-task":
            return _move_task(plan, dlq, destination, progress, wait, poll_interval, sleep)
        return _receive_send_delete(plan, dlq, destination, queue_for, progress, sleep, wait_time)
    finally:
        if progress is not None:
            progress.close()


def _move_task(
    plan: RedrivePlan,
    dlq: SQSQueue,
    destination: SQSQueue | None,
    progress: Progress | None,
    wait: bool,
    poll_interval: float,
    sleep: Callable[[float], None],
) -> RedriveResult:
    params: dict[str, Any] = {"SourceArn": plan.dlq_arn}
    if destination is not None:
        params["DestinationArn"] = destination.arn()
    if plan.rate is not None:
        params["MaxNumberOfMessagesPerSecond"] = int(plan.rate)
    handle = str(dlq.call("StartMessageMoveTask", **params)["TaskHandle"])
    log.info("message move task started: %s", handle)
    if not wait:
        return RedriveResult(method="move-task", moved=0, failed=0, task_handle=handle, status="RUNNING")
    try:
        while True:
            tasks = dlq.call("ListMessageMoveTasks", SourceArn=plan.dlq_arn, MaxResults=1).get("Results", [])
            task = next(
                (t for t in tasks if t.get("TaskHandle") in (handle, None)), tasks[0] if tasks else {}
            )
            status = str(task.get("Status", "RUNNING"))
            moved = int(task.get("ApproximateNumberOfMessagesMoved", 0) or 0)
            total = task.get("ApproximateNumberOfMessagesToMove")
            if progress is not None:
                progress.update(moved, int(total) if total is not None else None, status.lower(), force=True)
            if status in _DONE:
                return RedriveResult(
                    method="move-task",
                    moved=moved,
                    failed=0,
                    task_handle=handle,
                    status=status,
                    failure_reason=task.get("FailureReason"),
                )
            sleep(poll_interval)
    except KeyboardInterrupt:
        log.warning(
            "stopped watching; the move task goes on in SQS. Cancel it with "
            "`aws sqs cancel-message-move-task --task-handle %s`",
            handle,
        )
        raise


def _outgoing(message: QueueMessage, entry_id: str, fifo: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message.body}
    attributes = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
        for name, value in message.message_attributes.items()
        if isinstance(value, Mapping)
    }
    if attributes:
        entry["MessageAttributes"] = attributes
    if fifo:
        entry["MessageGroupId"] = str(message.attributes.get("MessageGroupId") or "commproc-redrive")
        # A resend after a crash within five minutes is dropped by SQS as a duplicate.
        entry["MessageDeduplicationId"] = f"redrive-{message.message_id}"[:128]
    return entry


def _size(entry: Mapping[str, Any]) -> int:
    return len(json.dumps(entry, ensure_ascii=False).encode("utf-8", "surrogatepass"))


def _batches(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for entry in entries:
        entry_size = _size(entry)
        if batch and (len(batch) == 10 or size + entry_size > _BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry_size
    if batch:
        yield batch


def _receive_send_delete(
    plan: RedrivePlan,
    dlq: SQSQueue,
    destination: SQSQueue | None,
    queue_for: Callable[[str], SQSQueue] | None,
    progress: Progress | None,
    sleep: Callable[[float], None],
    wait_time: int,
) -> RedriveResult:
    make = queue_for or (lambda url: SQSQueue(url, client=dlq.client))
    queues: dict[str, SQSQueue] = {}
    if destination is not None:
        queues[destination.url] = destination

    def route(message: QueueMessage) -> str | None:
        if destination is not None:
            return destination.url
        if len(plan.sources) == 1:
            return plan.sources[0]
        # Several queues feed this DLQ: SQS names each message's origin (where it does).
        arn = str(message.attributes.get("DeadLetterQueueSourceArn") or "")
        name = arn.rsplit(":", 1)[-1] if arn else ""
        return next((url for url in plan.sources if name and url.rstrip("/").endswith("/" + name)), None)

    moved = failed = unroutable = 0
    started = time.monotonic()
    skipped: dict[str, str] = {}
    failing_rounds = 0
    try:
        while plan.count is None or moved < plan.count:
            want = 10 if plan.count is None else min(10, plan.count - moved)
            if plan.rate is not None:
                want = max(1, min(want, int(plan.rate)))
            messages = [
                m
                for m in dlq.receive(want, wait_time, visibility_timeout=60, attribute_names=["All"])
                if m.message_id not in skipped
            ]
            if not messages:
                break
            by_queue: dict[str, list[QueueMessage]] = {}
            for message in messages:
                url = route(message)
                if url is None:
                    unroutable += 1
                    skipped[message.message_id] = message.receipt_handle
                else:
                    by_queue.setdefault(url, []).append(message)
            round_moved = 0
            for url, group in by_queue.items():
                target = queues.get(url) or queues.setdefault(url, make(url))
                fifo = url.endswith(".fifo")
                entries = [_outgoing(m, str(i), fifo) for i, m in enumerate(group)]
                sent: set[str] = set()
                for batch in _batches(entries):
                    outcome = target.send_batch(batch)
                    sent.update(outcome.sent)
                    for entry_id, code, _ in outcome.failed:
                        log.warning(
                            "sending message %s to %s failed: %s", group[int(entry_id)].message_id, url, code
                        )
                done = [m for i, m in enumerate(group) if str(i) in sent]
                failed += len(group) - len(done)
                for i, message in enumerate(group):
                    if str(i) not in sent:
                        skipped[message.message_id] = message.receipt_handle
                if done:
                    deleted = dlq.delete_batch([m.receipt_handle for m in done])
                    if deleted.failed:
                        log.warning(
                            "%d message(s) were sent but not deleted from the DLQ; they may be delivered "
                            "twice (harmless: dedupe keys recognise them)",
                            len(deleted.failed),
                        )
                moved += len(done)
                round_moved += len(done)
            failing_rounds = failing_rounds + 1 if not round_moved and by_queue else 0
            if failing_rounds >= 3:
                raise QueueError(f"three rounds of sends failed in a row; stopped after moving {moved}")
            if progress is not None:
                total = min(plan.count, plan.depth) if plan.count is not None else plan.depth
                progress.update(moved, max(total, moved))
            if plan.rate is not None:
                # Pace by the total so far: a slow round is not followed by a burst beyond the rate.
                ahead = moved / plan.rate - (time.monotonic() - started)
                if ahead > 0:
                    sleep(ahead)
    finally:
        # Messages left alone (unknown source, failed send) are released for the next attempt.
        with contextlib.suppress(Exception):
            _release(dlq, list(skipped.values()))
    return RedriveResult(method="receive", moved=moved, failed=failed, unroutable=unroutable)
