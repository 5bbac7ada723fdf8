"""`commproc channels`, `db`, `stats`, `--help`: output and exit codes."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from runtime_support import CLI, subprocess_env

from commproc_core.errors import ThrottledError
from commproc_core.model import utcnow
from commproc_core.queues import MemoryQueue
from commproc_core.runtime.cli import main
from commproc_core.runtime.cli.stats import collect_stats
from commproc_core.stores.sql import SQLStore, current_version
from commproc_core.testing import ExampleProcessor, drain

SMS_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/sms-inbound"
EMAIL_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/email-events"


def test_help_is_fast_and_imports_neither_boto3_nor_sqlalchemy() -> None:
    script = (
        "import sys\n"
        "from commproc_core.runtime.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'sqlalchemy', 'prometheus_client') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [CLI[0], "-c", script], capture_output=True, text=True, env=subprocess_env(), timeout=60, check=True
    )
    assert result.stdout.splitlines()[-1] == "[]"
    for command in ("run", "demo", "replay", "inspect", "channels", "db", "stats"):
        assert f"    {command}" in result.stdout


@pytest.mark.parametrize(
    "command", [["run"], ["demo"], ["replay"], ["channels", "add"], ["db", "upgrade"], ["stats"]]
)
def test_every_command_has_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*command, "--help"])
    assert caught.value.code == 0
    assert "usage: commproc" in capsys.readouterr().out


def test_db_upgrade_and_version(sqlite_url, tmp_path, capsys) -> None:
    assert main(["db", "version", "--database", sqlite_url]) == 1
    assert "no database at" in capsys.readouterr().out
    # Asking for a version leaves no empty file behind.
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "other.db").touch()
    assert main(["db", "version", "--database", f"sqlite:///{tmp_path / 'other.db'}"]) == 1
    assert "none (run `commproc db upgrade`)" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database", sqlite_url]) == 0
    assert "schema upgraded from nothing to" in capsys.readouterr().out
    assert main(["db", "upgrade", "--database", sqlite_url]) == 0
    assert "already at version" in capsys.readouterr().out
    assert main(["db", "version", "--database", sqlite_url]) == 0
    assert current_version(sqlite_url) is not None
    assert main(["db", "upgrade", "--database", "memory://"]) == 2
    assert main(["db"]) == 2


def test_channels_add_list_enable_disable(plugins, sqlite_url, capsys) -> None:
    db = ["--database", sqlite_url]
    assert main(["db", "upgrade", *db]) == 0
    config = '{"auth_token": "s3cret-token", "agent_mode": true}'
    assert main(["channels", "add", "sms", SMS_QUEUE, "--config", config, *db]) == 0
    assert "added sms channel" in capsys.readouterr().out
    assert main(["channels", "add", "email", EMAIL_QUEUE, "--inactive", *db]) == 0
    capsys.readouterr()

    assert main(["channels", "add", "sms", SMS_QUEUE, *db]) == 2
    assert "already configured" in capsys.readouterr().err
    assert main(["channels", "add", "sms", SMS_QUEUE, "--config", '{"wait_time": 99, "nope": 1}', *db]) == 2
    err = capsys.readouterr().err
    assert "config.wait_time" in err and "nope" in err
    assert main(["channels", "add", "voice", SMS_QUEUE, *db]) == 2
    assert "no processor for channel 'voice'" in capsys.readouterr().err

    assert main(["channels", "list", "--json", *db]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(c["channel_type"], c["is_active"]) for c in listed] == [("sms", True), ("email", False)]
    assert listed[0]["config"] == {"auth_token": "***", "agent_mode": True}

    assert main(["channels", "disable", "sms", *db]) == 0
    # An id prefix needs 6 characters: 5 are refused, and the message says why.
    assert main(["channels", "enable", listed[1]["id"][:5], *db]) == 2
    assert "at least 6 characters" in capsys.readouterr().err
    assert main(["channels", "enable", listed[1]["id"][:6], *db]) == 0
    assert main(["channels", "enable", "nothing", *db]) == 2
    assert "`commproc channels list` shows the ids" in capsys.readouterr().err
    assert main(["channels", "list", *db]) == 0
    table = capsys.readouterr().out
    assert "s3cret" not in table
    assert [line.split()[2] for line in table.splitlines()[1:]] == ["no", "yes"]
    assert main(["channels", "add", "sms", SMS_QUEUE, "--replace", "--config", "{}", *db]) == 0
    assert "replaced sms channel" in capsys.readouterr().out


def test_channels_without_command_lists_plugins(plugins, capsys) -> None:
    assert main(["channels"]) == 0
    out = capsys.readouterr().out
    assert "email" in out and "sms" in out and "ok" in out


def test_stats_counts_rates_timings_and_failures(sqlite_url, capsys) -> None:
    store = SQLStore(sqlite_url, auto_upgrade=True)
    queue = MemoryQueue("memory://example")
    processor = ExampleProcessor(queue=queue, store=store)
    processor.inject["e9"] = ThrottledError("busy")
    queue.send_batch(
        [json.dumps({"id": f"e{i}", "from": "+14155550100", "text": "hi"}) for i in range(10)]
        + ["{broken", json.dumps({"from": "+1"}), json.dumps({"id": "e0", "from": "+14155550100"})]
    )
    drain(processor)
    now = utcnow()
    figures = collect_stats(store, now - timedelta(hours=1), now + timedelta(seconds=1))
    store.close()
    (channel,) = figures["channels"]
    assert {k: channel[k] for k in ("processed", "failed", "duplicate", "ignored", "retrying")} == {
        "processed": 9,
        "failed": 2,
        "duplicate": 1,
        "ignored": 0,
        "retrying": 1,
    }
    assert channel["processed_per_minute"] == pytest.approx(9 / 60, rel=0.01)
    assert 0 < channel["duration_ms"]["p50"] <= channel["duration_ms"]["p95"] <= channel["duration_ms"]["max"]
    assert {(t["event_type"], t["status"]): t["count"] for t in figures["event_types"]} == {
        ("message", "processed"): 9,
        ("invalid", "failed"): 2,
    }
    assert figures["failures_by_reason"] == [{"channel": "example", "reason": "invalid_payload", "count": 2}]
    assert len(figures["recent_failures"]) == 2

    assert main(["stats", "--database", sqlite_url, "--since", "2h", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["channels"][0]["processed"] == 9
    assert main(["stats", "--database", sqlite_url]) == 0
    text = capsys.readouterr().out
    assert "invalid_payload" in text and "recent failures" in text
    assert main(["stats", "--database", sqlite_url, "--since", "soon"]) == 2
