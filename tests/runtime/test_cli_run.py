"""`commproc run` in-process: channels from flags, SIGTERM, and the configuration errors (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time

from commproc_core.runtime.cli import main
from commproc_core.stores.sql import SQLStore
from commproc_core.testing.moto import create_queue_with_dlq, sqs_client

EXAMPLE = ["--processor", "example=commproc_core.testing:ExampleProcessor"]


def test_run_polls_flag_channels_until_sigterm(moto_endpoint, commproc_db, capsys) -> None:
    client = sqs_client(moto_endpoint)
    queue = create_queue_with_dlq(client, "example-inbound")
    for i in range(6):
        body = json.dumps({"id": f"e{i}", "from": "+14155550100", "text": "hi"})
        client.send_message(QueueUrl=queue.queue_url, MessageBody=body)
    store = SQLStore(commproc_db, auto_upgrade=True)

    def stop_when_done() -> None:
        while True:
            with store.unit_of_work() as uow:
                if uow.events.count() == 6:
                    break
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=stop_when_done, daemon=True)
    watcher.start()
    args = ["run", "--database", commproc_db, "--channel", f"example={queue.queue_url}", *EXAMPLE]
    assert main([*args, "--wait-time", "1", "--log-format", "json", "--metrics-port", "0"]) == 0
    watcher.join(timeout=5)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    messages = [line["message"] for line in lines]
    assert any(
        m.startswith("worker started: 1 channel(s), 1 poller(s) each: example:example-inbound")
        for m in messages
    )
    assert any(m.startswith("health and metrics on http://127.0.0.1:") for m in messages)
    assert messages[-1] == "worker stopped"
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 6
    store.close()


def test_no_channel_to_poll_is_a_configuration_error(commproc_db, capsys) -> None:
    assert main(["run", "--database", commproc_db]) == 2
    assert "no channel to poll" in capsys.readouterr().err
    # A channel whose plugin is missing stops the start-up, named (see test_worker_startup.py).
    assert main(["run", "--database", commproc_db, "--channel", "fax=https://sqs/1/fax"]) == 2
    err = capsys.readouterr().err
    assert "the worker cannot start (1 problem(s)" in err
    assert "fax on fax: no processor for channel 'fax'" in err


def test_bad_flags_are_configuration_errors(commproc_db, capsys) -> None:
    assert main(["run", "--database", commproc_db, "--channel", "sms"]) == 2
    assert "expected TYPE=QUEUE_URL" in capsys.readouterr().err
    assert main(["run", "--database", commproc_db, "--pollers", "0"]) == 2
    assert "must be between 1 and 64, got 0 @ --pollers" in capsys.readouterr().err
    assert main(["run", "--database", commproc_db, "--processor", "x=no.such.module:Thing"]) == 2
    assert "cannot load 'no.such.module:Thing'" in capsys.readouterr().err


def test_metrics_port_in_use(commproc_db, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Degraded: the queue (nothing listens on port 9) must not stop the start before the port does.
        args = ["run", "--database", commproc_db, "--channel", "example=http://127.0.0.1:9/q", *EXAMPLE]
        args.append("--allow-degraded")
        assert main([*args, "--metrics-port", str(port)]) == 2
    assert f"cannot serve health and metrics on 127.0.0.1:{port}" in capsys.readouterr().err
