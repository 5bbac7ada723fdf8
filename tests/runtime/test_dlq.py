"""`commproc dlq dump` and `commproc dlq redrive` against moto, and the move-task path on a stub."""

from __future__ import annotations

import io
import json
import os
import stat
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from commproc_core.errors import ConfigError
from commproc_core.queues import SQSQueue
from commproc_core.runtime.cli import main
from commproc_core.runtime.dlq import dump, plan_redrive, redrive
from commproc_core.runtime.progress import Progress
from commproc_core.runtime.replay import read_inputs, replay
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor
from commproc_core.testing.moto import create_queue_with_dlq, sqs_client


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr is when a person watches."""

    def isatty(self) -> bool:
        return True


def body(i: int) -> str:
    return json.dumps({"id": f"e{i}", "from": "+14155550100", "text": f"message {i}"})


def fill_dlq(client, name: str, count: int, *, fifo: bool = False):
    """A queue whose ``count`` messages all went to its DLQ the way SQS moves them (after a receive)."""
    pair = create_queue_with_dlq(client, name, max_receive_count=1, fifo=fifo)
    for i in range(count):
        extra = {"MessageGroupId": f"g{i % 2}", "MessageDeduplicationId": f"d{i}"} if fifo else {}
        client.send_message(
            QueueUrl=pair.queue_url,
            MessageBody=body(i),
            MessageAttributes={"trace": {"DataType": "String", "StringValue": f"t{i}"}},
            **extra,
        )
    for _ in range(3):
        while client.receive_message(
            QueueUrl=pair.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
        ).get("Messages"):
            pass
    assert depth(client, pair.dlq_url) == count
    return pair


def depth(client, url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def visible(client, url: str) -> int:
    attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


# -- dump ------------------------------------------------------------------------------------


def test_dump_saves_every_message_and_deletes_none(moto_sqs, tmp_path) -> None:
    pair = fill_dlq(moto_sqs, "sms", 23)
    queue = SQSQueue(pair.dlq_url, client=moto_sqs)
    terminal = Terminal()
    result = dump(queue, tmp_path / "dump", progress=Progress(terminal, "dump"), wait_time=0)
    assert (result.saved, result.already_saved, result.seen) == (23, 0, 23)
    files = sorted((tmp_path / "dump").iterdir())
    assert len(files) == 23
    # Every message is back, visible, in the DLQ.
    assert visible(moto_sqs, pair.dlq_url) == 23
    record = json.loads(files[0].read_text())
    assert record["format"] == "commproc.sqs-message/1"
    assert record["queue_url"] == pair.dlq_url
    assert {"SentTimestamp", "ApproximateReceiveCount"} <= set(record["attributes"])
    assert record["message_attributes"]["trace"]["DataType"] == "String"
    assert sorted(json.loads(json.loads(f.read_text())["body"])["id"] for f in files) == sorted(
        f"e{i}" for i in range(23)
    )
    # The files hold message content: owner only.
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    # The progress line was drawn in place and cleared.
    assert "\rdump  " in terminal.getvalue() and terminal.getvalue().endswith("\r")

    again = dump(queue, tmp_path / "dump", wait_time=0)
    assert (again.saved, again.already_saved) == (0, 23)


def test_dump_respects_max_and_releases_on_interruption(moto_sqs, tmp_path) -> None:
    pair = fill_dlq(moto_sqs, "email", 15)
    queue = SQSQueue(pair.dlq_url, client=moto_sqs)
    assert dump(queue, tmp_path / "five", limit=5, wait_time=0).saved == 5
    assert visible(moto_sqs, pair.dlq_url) == 15

    class Interrupting(Progress):
        def update(self, *args, **kwargs) -> None:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dump(queue, tmp_path / "stopped", progress=Interrupting(None, "dump"), wait_time=0)
    # The messages received before Ctrl-C are visible again at once, not after 300 s.
    assert visible(moto_sqs, pair.dlq_url) == 15


def test_dumped_files_replay_with_their_attributes(moto_sqs, tmp_path) -> None:
    pair = fill_dlq(moto_sqs, "example", 4)
    dump(SQSQueue(pair.dlq_url, client=moto_sqs), tmp_path / "dump", wait_time=0)
    inputs = read_inputs([tmp_path / "dump"])
    assert [json.loads(i.body)["id"] for i in inputs] == ["e0", "e1", "e2", "e3"]  # sent order
    assert all(i.message_attributes["trace"]["StringValue"].startswith("t") for i in inputs)
    store = MemoryStore()
    results = replay(ExampleProcessor(store=store), inputs)
    assert [r.outcome for r in results] == ["processed"] * 4
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 4


def test_damaged_dump_file_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "1.json").write_text(json.dumps({"format": "commproc.sqs-message/1", "body": 42}))
    with pytest.raises(ConfigError, match="1.json: a dump file whose body or attributes are damaged"):
        read_inputs([tmp_path])


# -- redrive: receive, send, delete ------------------------------------------------------------


def test_redrive_moves_back_to_the_source_queue_with_count_and_rate(moto_sqs) -> None:
    pair = fill_dlq(moto_sqs, "sms", 14)
    dlq = SQSQueue(pair.dlq_url, client=moto_sqs)
    plan = plan_redrive(dlq, count=10, rate=20)
    assert (plan.method, plan.sources, plan.depth) == ("receive", (pair.queue_url,), 14)
    assert "--count" in plan.why_not_move_task
    started = time.monotonic()
    result = redrive(plan, dlq, wait_time=0)
    assert (result.moved, result.failed, result.unroutable) == (10, 0, 0)
    # 10 messages at 20 a second take half a second at least.
    assert time.monotonic() - started >= 0.45
    assert depth(moto_sqs, pair.dlq_url) == 4
    moved = moto_sqs.receive_message(
        QueueUrl=pair.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert len(moved) == 10
    assert all(m["MessageAttributes"]["trace"]["StringValue"].startswith("t") for m in moved)


def test_redrive_without_a_count_falls_back_when_move_tasks_are_missing(moto_sqs) -> None:
    pair = fill_dlq(moto_sqs, "email", 12)
    dlq = SQSQueue(pair.dlq_url, client=moto_sqs)
    plan = plan_redrive(dlq)
    assert plan.method == "receive"
    assert plan.why_not_move_task == "this SQS endpoint does not implement message move tasks"
    assert redrive(plan, dlq, wait_time=0).moved == 12
    assert depth(moto_sqs, pair.dlq_url) == 0 and depth(moto_sqs, pair.queue_url) == 12
    with pytest.raises(ConfigError, match="cannot use a message move task"):
        plan_redrive(dlq, method="move-task")


def test_redrive_fifo_keeps_groups_and_goes_to_another_queue(moto_sqs) -> None:
    pair = fill_dlq(moto_sqs, "orders", 6, fifo=True)
    other_url = moto_sqs.create_queue(QueueName="replayed.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    dlq = SQSQueue(pair.dlq_url, client=moto_sqs)
    other = SQSQueue(other_url, client=moto_sqs)
    result = redrive(plan_redrive(dlq, other, method="receive"), dlq, destination=other, wait_time=0)
    assert result.moved == 6
    received = moto_sqs.receive_message(
        QueueUrl=other_url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["MessageGroupId"]
    )["Messages"]
    assert {m["Attributes"]["MessageGroupId"] for m in received} <= {"g0", "g1"}


def test_redrive_leaves_what_it_cannot_route(moto_sqs) -> None:
    # Two queues feed one DLQ and moto does not name each message's source: nothing is guessed.
    first = fill_dlq(moto_sqs, "a", 3)
    second_url = moto_sqs.create_queue(
        QueueName="b",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": first.dlq_arn, "maxReceiveCount": "1"})
        },
    )["QueueUrl"]
    dlq = SQSQueue(first.dlq_url, client=moto_sqs)
    plan = plan_redrive(dlq, method="receive")
    assert sorted(plan.sources) == sorted([first.queue_url, second_url])
    result = redrive(plan, dlq, wait_time=0)
    assert (result.moved, result.unroutable) == (0, 3)
    assert visible(moto_sqs, first.dlq_url) == 3


def test_redrive_needs_a_destination_when_no_queue_feeds_the_dlq(moto_sqs) -> None:
    url = moto_sqs.create_queue(QueueName="lonely")["QueueUrl"]
    with pytest.raises(ConfigError, match="pass --to QUEUE_URL"):
        plan_redrive(SQSQueue(url, client=moto_sqs))
    for kwargs, message in (({"count": 0}, "--count"), ({"rate": 0}, "--rate"), ({"method": "x"}, "--via")):
        with pytest.raises(ConfigError, match=message):
            plan_redrive(SQSQueue(url, client=moto_sqs), **kwargs)


# -- redrive: SQS's own move task (moto lacks it; a stub plays SQS) ------------------------------

DLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/sms-dlq"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:sms-dlq"
SOURCE = "https://sqs.us-east-1.amazonaws.com/123456789012/sms"


def test_redrive_uses_start_message_move_task_and_follows_it(aws_env) -> None:
    client = boto3.session.Session(region_name="us-east-1").client("sqs")
    terminal = Terminal()
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_queue_attributes",
            {"Attributes": {"QueueArn": DLQ_ARN, "ApproximateNumberOfMessages": "40"}},
            {"QueueUrl": DLQ, "AttributeNames": ["All"]},
        )
        stubber.add_response("list_dead_letter_source_queues", {"queueUrls": [SOURCE]}, {"QueueUrl": DLQ})
        stubber.add_response(
            "list_message_move_tasks", {"Results": []}, {"SourceArn": DLQ_ARN, "MaxResults": 1}
        )
        stubber.add_response(
            "start_message_move_task",
            {"TaskHandle": "task-1"},
            {"SourceArn": DLQ_ARN, "MaxNumberOfMessagesPerSecond": 50},
        )
        for status, moved in (("RUNNING", 15), ("COMPLETED", 40)):
            stubber.add_response(
                "list_message_move_tasks",
                {
                    "Results": [
                        {
                            "TaskHandle": "task-1",
                            "Status": status,
                            "SourceArn": DLQ_ARN,
                            "ApproximateNumberOfMessagesMoved": moved,
                            "ApproximateNumberOfMessagesToMove": 40,
                        }
                    ]
                },
                {"SourceArn": DLQ_ARN, "MaxResults": 1},
            )
        dlq = SQSQueue(DLQ, client=client)
        plan = plan_redrive(dlq, rate=50)
        assert (plan.method, plan.depth, plan.why_not_move_task) == ("move-task", 40, None)
        assert "SQS's message move task" in plan.describe()
        naps: list[float] = []
        result = redrive(plan, dlq, progress=Progress(terminal, "redrive"), sleep=naps.append)
        stubber.assert_no_pending_responses()
    assert (result.method, result.status, result.moved, result.task_handle) == (
        "move-task",
        "COMPLETED",
        40,
        "task-1",
    )
    assert naps == [2.0]
    assert "15/40 messages" in terminal.getvalue()


def test_move_task_cannot_take_a_count_or_a_rate_above_500(aws_env) -> None:
    client = boto3.session.Session(region_name="us-east-1").client("sqs")
    with Stubber(client) as stubber:
        for _ in range(2):
            stubber.add_response("get_queue_attributes", {"Attributes": {"QueueArn": DLQ_ARN}})
            stubber.add_response("list_dead_letter_source_queues", {"queueUrls": [SOURCE]})
        dlq = SQSQueue(DLQ, client=client)
        with pytest.raises(ConfigError, match="--count limits how many move"):
            plan_redrive(dlq, count=5, method="move-task")
        with pytest.raises(ConfigError, match="at most 500 messages/s"):
            plan_redrive(dlq, rate=900, method="move-task")


# -- the commands ------------------------------------------------------------------------------


@pytest.fixture
def no_retries(monkeypatch) -> None:
    # moto's server answers the move-task APIs with a 500, which botocore would retry with backoff.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")


def test_cli_dump_then_redrive_dry_run_and_for_real(moto_endpoint, no_retries, tmp_path, capsys) -> None:
    client = sqs_client(moto_endpoint)
    pair = fill_dlq(client, "sms", 7)
    assert main(["dlq", "dump", pair.dlq_url, str(tmp_path / "dump"), "--wait-time", "0"]) == 0
    out, err = capsys.readouterr()
    assert f"saved 7 message(s) from {pair.dlq_url}" in out
    assert err == ""  # not a terminal: no progress line
    assert len(list((tmp_path / "dump").iterdir())) == 7

    assert main(["dlq", "redrive", pair.dlq_url, "--dry-run"]) == 0
    assert "dry run: would move about 7 message(s)" in capsys.readouterr().out
    assert depth(client, pair.dlq_url) == 7

    assert main(["dlq", "redrive", pair.dlq_url, "--count", "3", "--wait-time", "0"]) == 0
    assert "moved 3 message(s); 0 failed" in capsys.readouterr().out
    assert main(["dlq", "redrive", pair.dlq_url, "--wait-time", "0"]) == 0
    assert "moved 4 message(s)" in capsys.readouterr().out
    assert depth(client, pair.dlq_url) == 0 and depth(client, pair.queue_url) == 7


def test_cli_checks_queue_urls_and_options(capsys) -> None:
    assert main(["dlq", "dump", "sms-dlq", "out"]) == 2
    assert "QUEUE_URL: expected an SQS queue URL" in capsys.readouterr().err
    assert main(["dlq", "redrive", "arn:aws:sqs:us-east-1:123456789012:sms-dlq"]) == 2
    assert "give its URL instead: https://sqs.us-east-1.amazonaws.com/123456789012/sms-dlq" in (
        capsys.readouterr().err
    )
    assert main(["dlq", "dump", DLQ, "out", "--max", "0"]) == 2
    assert main(["dlq"]) == 2


def test_cli_progress_shows_on_a_terminal_only(
    moto_endpoint, no_retries, tmp_path, capsys, monkeypatch
) -> None:
    client = sqs_client(moto_endpoint)
    pair = fill_dlq(client, "email", 3)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["dlq", "dump", pair.dlq_url, str(tmp_path / "a"), "--wait-time", "0"]) == 0
    assert "\rdump  3 messages" in terminal.getvalue()
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    assert main(["dlq", "dump", pair.dlq_url, str(tmp_path / "b"), "--no-progress", "--wait-time", "0"]) == 0
    assert quiet.getvalue() == ""
    assert os.listdir(tmp_path / "b")


def test_progress_is_silent_in_a_pipe() -> None:
    pipe = io.StringIO()
    progress = Progress(pipe, "replay")
    for done in range(100):
        progress.update(done, 100, force=True)
    progress.close()
    assert pipe.getvalue() == ""
    drawn = Terminal()
    progress = Progress(drawn, "replay", unit="files")
    progress.update(5, 10, "1 rejected or failed", force=True)
    assert "replay  5/10 files" in drawn.getvalue() and "1 rejected or failed" in drawn.getvalue()


def test_replay_of_a_large_folder_shows_progress_when_results_are_redirected(
    plugins, tmp_path, capsys, monkeypatch
) -> None:
    folder = Path(tmp_path / "many")
    folder.mkdir()
    for i in range(12):
        (folder / f"{i:03d}.json").write_text(body(i))
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    args = [
        "replay",
        "example",
        str(folder),
        "--json",
        "--processor",
        "example=commproc_core.testing:ExampleProcessor",
    ]
    assert main(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 12
    assert "replay  " in terminal.getvalue() and "files" in terminal.getvalue()
