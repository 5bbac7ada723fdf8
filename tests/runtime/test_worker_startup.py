"""Fail fast at start-up, honest /readyz with a reason per poller, readiness logged once per change, Ctrl-C."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from runtime_support import CLI, subprocess_env, wait_for

from commproc_core.errors import QueueUnavailable
from commproc_core.queues import MemoryQueue, SQSQueue
from commproc_core.runtime.cli import main
from commproc_core.runtime.startup import StartupError
from commproc_core.runtime.worker import Worker
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor
from commproc_core.testing.moto import FAKE_AWS_ENV, create_queue_with_dlq, sqs_client

EXAMPLE = ["--processor", "example=commproc_core.testing:ExampleProcessor"]


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def run_in_thread(argv: list[str]) -> tuple[threading.Thread, list[int]]:
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(main(argv)), daemon=True)
    thread.start()
    return thread, code


# -- start-up -------------------------------------------------------------------------------


def test_a_misspelled_channel_or_a_missing_queue_stops_the_start_naming_each(
    moto_endpoint, commproc_db, capsys
) -> None:
    client = sqs_client(moto_endpoint)
    good = create_queue_with_dlq(client, "sms-inbound")
    missing = good.queue_url.replace("sms-inbound", "sms-inbound-typo")
    args = ["run", "--database", commproc_db, *EXAMPLE, "--wait-time", "1"]
    code = main([*args, "--channel", f"smss={good.queue_url}", "--channel", f"example={good.queue_url}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "the worker cannot start (1 problem(s); pass --allow-degraded" in err
    assert "smss on sms-inbound: no processor for channel 'smss'" in err

    assert main([*args, "--channel", f"example={missing}"]) == 2
    err = capsys.readouterr().err
    assert "example on sms-inbound-typo: SQS GetQueueAttributes" in err and "no such queue" in err


def test_bad_queue_urls_and_memory_queues_are_start_up_problems(commproc_db, capsys) -> None:
    assert main(["run", "--database", commproc_db, *EXAMPLE, "--channel", "example=sms-inbound"]) == 2
    assert "expected an SQS queue URL" in capsys.readouterr().err
    assert main(["run", "--database", commproc_db, *EXAMPLE, "--channel", "example=memory://inbound"]) == 2
    assert "memory:// queues exist only inside the process" in capsys.readouterr().err


def test_no_database_no_start(sqlite_url, tmp_path, capsys) -> None:
    assert main(["run", "--database", sqlite_url, "--channel", "sms=https://sqs/1/q"]) == 2
    assert "no commproc database at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_degraded_start_reports_down_channels_and_failing_pollers_until_they_recover(
    moto_endpoint, commproc_db, capsys, monkeypatch
) -> None:
    client = sqs_client(moto_endpoint)
    good = create_queue_with_dlq(client, "email-events")
    later = good.queue_url.replace("email-events", "created-later")
    monkeypatch.setenv("COMMPROC_BACKOFF_BASE", "0.05")
    monkeypatch.setenv("COMMPROC_BACKOFF_MAX", "0.2")
    argv = ["run", "--database", commproc_db, *EXAMPLE, "--wait-time", "1", "--metrics-port", "0"]
    argv += ["--log-format", "json", "--allow-degraded"]
    argv += ["--channel", f"example={good.queue_url}", "--channel", f"example={later}"]
    argv += ["--channel", f"emial={good.queue_url}"]
    from commproc_core.runtime import worker as worker_module

    started: list[Worker] = []
    real_start = worker_module.Worker.start

    def remember(self: Worker) -> None:
        started.append(self)
        real_start(self)

    monkeypatch.setattr(worker_module.Worker, "start", remember)
    thread, code = run_in_thread(argv)
    try:
        wait_for(lambda: bool(started) and started[0].http is not None)
        url = started[0].http.url + "/readyz"
        status, body = get(url)
        assert status == 503
        reasons = {(p["channel"], p["queue"], p["reason"]) for p in body["problems"]}
        assert ("emial", "email-events", "channel_not_found") in reasons
        assert ("example", "created-later", "queue_not_found") in reasons
        assert body["pollers"]["down"] == 1
        client.create_queue(QueueName="created-later")
        wait_for(lambda: all(p["reason"] != "queue_not_found" for p in get(url)[1]["problems"]))
        status, body = get(url)
        # The misspelled channel stays down for as long as the worker runs.
        assert status == 503 and [p["channel"] for p in body["problems"]] == ["emial"]
    finally:
        if started:
            started[0].stop()
        thread.join(timeout=20)
    assert code == [0]
    messages = [json.loads(line)["message"] for line in capsys.readouterr().err.splitlines()]
    assert any(m.startswith("starting degraded: emial on email-events") for m in messages)
    assert any("recovered after" in m and "queue_not_found" in m for m in messages)


# -- readiness --------------------------------------------------------------------------------


class Switchable:
    """A MemoryQueue whose receives fail while ``down`` is set, as an unreachable SQS does."""

    def __init__(self, inner: MemoryQueue) -> None:
        self.inner = inner
        self.down = False

    @property
    def url(self) -> str:
        return self.inner.url

    def receive(self, *args, **kwargs):
        if self.down:
            raise QueueUnavailable("SQS ReceiveMessage on memory://x: cannot reach SQS")
        return self.inner.receive(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_readyz_is_503_with_a_reason_per_poller_while_sqs_is_unreachable_and_logs_once(caplog) -> None:
    store = MemoryStore()
    sms = Switchable(MemoryQueue("memory://sms-inbound"))
    email = MemoryQueue("memory://email-events")
    processors = [
        ExampleProcessor(queue=sms, store=store, config={"wait_time": 0}),
        ExampleProcessor(queue=email, store=store, config={"wait_time": 0}),
    ]
    worker = Worker(processors, pollers=2, backoff_base=0.05, backoff_max=0.1)
    caplog.set_level(logging.DEBUG, logger="commproc.worker")
    worker.start()
    try:
        assert worker.readiness()[0] is True
        sms.down = True
        wait_for(lambda: worker.liveness()[1]["pollers"]["failing"] == 2)
        for _ in range(5):  # probes every few seconds
            ready, details = worker.readiness()
        assert ready is False
        assert sorted((p["poller"], p["queue"], p["reason"]) for p in details["problems"]) == [
            ("example-0", "sms-inbound", "queue_unavailable"),
            ("example-1", "sms-inbound", "queue_unavailable"),
        ]
        assert all(p["error"] == "QueueUnavailable" and p["since"] for p in details["problems"])
        time.sleep(0.5)  # several retries each
        sms.down = False
        wait_for(lambda: worker.readiness()[0] is True)
        for _ in range(3):
            worker.readiness()
    finally:
        assert worker.drain()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert sum(m.startswith("not ready: ") for m in lines) == 1
    assert sum(m.startswith("ready again") for m in lines) == 1
    # Each poller logs its trouble when it starts and its recovery, not every retry.
    failing = [m for m in lines if "failing (queue_unavailable" in m]
    assert len(failing) == 2
    retries = [
        r
        for r in caplog.records
        if r.levelno == logging.DEBUG and "failing (queue_unavailable" in r.getMessage()
    ]
    assert len(retries) >= 2
    assert sum("recovered after" in m for m in lines) == 2


def test_embedded_worker_fails_fast_or_starts_degraded() -> None:
    store = MemoryStore()
    store.set_available(False)
    processor = ExampleProcessor(queue=MemoryQueue("memory://q"), store=store, config={"wait_time": 0})
    with pytest.raises(StartupError, match="store on -: in-memory store is marked unavailable"):
        Worker([processor]).start()
    worker = Worker([processor], allow_degraded=True)
    worker.start()
    try:
        ready, details = worker.readiness()
        assert ready is False and details["store"] == "store_unavailable"
    finally:
        store.set_available(True)
        assert worker.drain()


def test_sqs_queue_check_runs_at_start(moto_sqs, caplog) -> None:
    url = moto_sqs.create_queue(QueueName="no-dlq")["QueueUrl"]
    store = MemoryStore()
    queue = SQSQueue(url, client=moto_sqs)
    worker = Worker([ExampleProcessor(queue=queue, store=store, config={"wait_time": 0})])
    caplog.set_level(logging.WARNING, logger="commproc.worker")
    worker.start()
    try:
        assert queue.calls["GetQueueAttributes"] >= 1
    finally:
        worker.drain()
    assert any("has no dead-letter queue" in r.getMessage() for r in caplog.records)


# -- stopping ------------------------------------------------------------------------------------


def test_waiting_for_says_what_a_stop_waits_for() -> None:
    queue = MemoryQueue("memory://inbound")
    worker = Worker([ExampleProcessor(queue=queue, store=MemoryStore(), config={"wait_time": 2})])
    worker.start()
    try:
        wait_for(lambda: "in a long poll on inbound" in worker.waiting_for())
        assert "SQS answers within" in worker.waiting_for()
    finally:
        assert worker.drain()
    assert worker.waiting_for() == "nothing but helper threads"


@pytest.mark.slow
def test_ctrl_c_says_what_it_waits_for_and_a_second_one_stops_at_once(moto_endpoint, commproc_db) -> None:
    client = sqs_client(moto_endpoint)
    queue = create_queue_with_dlq(client, "quiet")
    env = subprocess_env(**FAKE_AWS_ENV, AWS_ENDPOINT_URL_SQS=moto_endpoint)
    command = [*CLI, "run", "--database", commproc_db, *EXAMPLE, "--channel", f"example={queue.queue_url}"]
    process = subprocess.Popen([*command, "--wait-time", "20"], stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stderr.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("worker started" in line for line in lines), timeout=30)
        time.sleep(0.5)  # inside its 20 s long poll
        process.send_signal(signal.SIGINT)
        wait_for(lambda: any("stopping on SIGINT" in line for line in lines), timeout=10)
        first = next(line for line in lines if "stopping on SIGINT" in line)
        assert "in a long poll on quiet (SQS answers within" in first
        assert "send Ctrl-C again to stop at once" in first
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 1
        # Far sooner than the 20 s long poll would have taken.
        assert time.monotonic() - stopped_at < 5
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(timeout=5)
    assert any("second signal: stopped without waiting" in line for line in lines)


def test_probes_of_a_database_that_is_down_log_once(caplog) -> None:
    from commproc_core.stores.sql import SQLStore

    # Nothing listens on port 1: every ping fails at once.
    store = SQLStore("postgresql://commproc@127.0.0.1:1/commproc")
    processor = ExampleProcessor(queue=MemoryQueue("memory://q"), store=store, config={"wait_time": 0})
    worker = Worker([processor], store=store, allow_degraded=True)
    worker.start()
    caplog.clear()
    caplog.set_level(logging.INFO, logger="commproc")
    try:
        for _ in range(4):
            ready, details = worker.readiness()
            assert not ready and details["store"] == "store_unavailable"
    finally:
        worker.drain()
        store.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines.count("not ready: store: store_unavailable") == 1
    assert not any(line.startswith("store ping failed") for line in lines)
    # Outside a probe the store's own warnings still reach the log.
    with caplog.at_level(logging.WARNING, logger="commproc.store"), pytest.raises(Exception):
        store.ping()
    assert any(r.getMessage().startswith("store ping failed") for r in caplog.records)


def test_readiness_is_logged_when_it_fails_for_new_reasons_not_as_problems_clear(caplog) -> None:
    from commproc_core.runtime.worker_state import ReadinessLog

    def problem(poller: str) -> dict:
        return {"poller": poller, "channel": "sms", "queue": "sms-inbound", "reason": "queue_unavailable"}

    readiness = ReadinessLog()
    caplog.set_level(logging.INFO, logger="commproc")
    readiness.note(True, [], "ok", False)
    readiness.note(False, [problem("a")], "ok", False)  # not ready: logged
    readiness.note(False, [problem("a"), problem("b")], "ok", False)  # a new reason: logged
    readiness.note(False, [problem("b")], "ok", False)  # one cleared: not news
    readiness.note(False, [problem("b")], "ok", False)  # the same: not news
    readiness.note(True, [], "ok", False)  # ready again: logged
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[0] for line in lines] == ["not ready", "not ready", "ready again"]
