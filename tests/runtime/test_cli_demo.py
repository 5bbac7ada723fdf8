"""`commproc demo`: the bundled events through the real sms and email processors."""

from __future__ import annotations

import io
from importlib.metadata import EntryPoint

import pytest

from commproc_core.runtime.cli import main
from commproc_core.runtime.demo import bundled_events, run_demo

#: What the bundled events must record, event by event (see src/commproc_core/runtime/demo/events).
EXPECTED_EVENTS = {
    # sms: 3 inbound texts (one from a WhatsApp and one an MMS, which get their own
    # channel), STOP and HELP (each an inbound message plus the keyword event),
    # 3 status callbacks, a redelivery of the first text, a webhook without MessageSid.
    ("sms", "inbound_message", "processed"): 3,
    ("mms", "inbound_message", "processed"): 1,
    ("whatsapp", "inbound_message", "processed"): 1,
    ("sms", "keyword_opt_out", "processed"): 1,
    ("sms", "keyword_help", "processed"): 1,
    ("sms", "status_update", "processed"): 3,
    ("sms", "invalid", "failed"): 1,
    # email: SES delivery, hard bounce, complaint and inbound reply; a SendGrid batch of
    # delivered, open and click; a Postmark soft bounce; an SNS subscription
    # confirmation; a redelivered SES delivery; a truncated body.
    ("email", "delivered", "processed"): 2,
    ("email", "bounced", "processed"): 2,
    ("email", "complained", "processed"): 1,
    ("email", "opened", "processed"): 1,
    ("email", "clicked", "processed"): 1,
    ("email", "inbound", "processed"): 1,
    ("email", "SubscriptionConfirmation", "ignored"): 1,
    ("email", "invalid", "failed"): 1,
}


def test_bundled_events() -> None:
    assert len(bundled_events("sms")) == 10
    assert len(bundled_events("email")) == 9


def test_summary_matches_the_bundled_events(plugins, tmp_path) -> None:
    progress = io.StringIO()
    summary = run_demo(f"sqlite:///{tmp_path / 'demo.db'}", progress=progress)
    assert summary.missing == {}
    assert dict(summary.events) == EXPECTED_EVENTS
    sms, email = summary.stats["sms"], summary.stats["email"]
    assert (sms.received, sms.processed, sms.duplicates, sms.failed, sms.ignored, sms.deleted) == (
        10,
        8,
        1,
        1,
        0,
        10,
    )
    assert (email.received, email.processed, email.duplicates, email.failed, email.ignored) == (9, 8, 1, 1, 1)
    # sms: 4 numbers write in (the MMS and the HELP come from the same one);
    # email: 5 recipients of delivery events and 1 sender of an inbound mail.
    assert summary.tables["conversations"] == 10
    assert summary.tables["leads"] == 5
    # STOP; the complaint unsubscribes from marketing mail.
    assert summary.opt_outs == 2
    # The hard bounce and the complaint; one soft bounce is not enough.
    assert summary.suppressions == 2
    assert summary.failures == {("sms", "invalid_payload"): 1, ("email", "invalid_payload"): 1}
    # The STOP confirmation, the HELP answer, and the agent's reply to each of the 3 other texts.
    assert summary.outbox == 5
    assert "sms    [####################] 10/10 messages" in progress.getvalue()
    assert "email  [####################] 9/9 messages" in progress.getvalue()


def test_cli_demo_recreates_its_database(plugins, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet"]) == 0
    first = capsys.readouterr()
    assert first.err == ""
    assert (tmp_path / "commproc-demo.db").is_file()
    assert f"database: sqlite:///{tmp_path / 'commproc-demo.db'}" in first.out
    assert "conversations: 10, messages: 16, leads: 5, opt-outs: 2, suppressions: 2" in first.out
    assert "failures by reason: email invalid_payload: 1, sms invalid_payload: 1" in first.out
    assert main(["demo", "--quiet"]) == 0
    # A fresh database each run: the same summary, nothing counted twice.
    assert capsys.readouterr().out == first.out


def test_demo_runs_what_is_installed(monkeypatch, tmp_path, capsys) -> None:
    import commproc_core.factory as factory_module

    only_sms = [EntryPoint("sms", "commproc_sms:SMSProcessor", "commproc.channels")]
    monkeypatch.setattr(factory_module, "entry_points", lambda group: only_sms)
    assert main(["demo", "--quiet", "--database", f"sqlite:///{tmp_path / 'demo.db'}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("email: not run: no processor for channel 'email'")
    assert "sms: 10 queue messages" in out
    assert "email: 9 queue messages" not in out


def test_summary_labels_say_what_each_count_counts(plugins, tmp_path, capsys) -> None:
    assert main(["demo", "--quiet", "--database", f"sqlite:///{tmp_path / 'demo.db'}"]) == 0
    out = capsys.readouterr().out
    assert "communication events recorded (a STOP or HELP adds a keyword event to its message):" in out
    assert "CHANNEL   EVENT TYPE                STATUS     RECORDS" in out
    # Queue messages and the provider events they held are counted apart: 9 messages, 11 events.
    assert (
        "email: 9 queue messages received, 9 acknowledged, 0 left for retry; they held 11 provider events: "
        "8 processed, 1 duplicate, 1 failed, 1 ignored"
    ) in out
    assert (
        "sms: 10 queue messages received, 10 acknowledged, 0 left for retry; they held 10 provider events: "
        "8 processed, 1 duplicate, 1 failed, 0 ignored"
    ) in out


def test_demo_deletes_only_its_own_database(plugins, tmp_path, capsys) -> None:
    from commproc_core.stores.sql import upgrade

    worker_db = tmp_path / "commproc.db"
    upgrade(f"sqlite:///{worker_db}")
    before = worker_db.read_bytes()
    assert main(["demo", "--quiet", "--database", f"sqlite:///{worker_db}"]) == 2
    err = capsys.readouterr().err
    assert "is not a commproc demo database (it may be a worker's database)" in err
    assert "pass --overwrite to delete it" in err
    assert worker_db.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database at all")
    assert main(["demo", "--quiet", "--database", f"sqlite:///{notes}"]) == 2
    assert notes.read_text() == "not a database at all"
    # Asked explicitly, it goes; and a demo file is recreated without asking.
    assert main(["demo", "--quiet", "--overwrite", "--database", f"sqlite:///{worker_db}"]) == 0
    assert main(["demo", "--quiet", "--database", f"sqlite:///{worker_db}"]) == 0
    assert main(["demo", "--quiet", "--database", f"sqlite:///{tmp_path}"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_demo_without_plugins(no_plugins, tmp_path, capsys) -> None:
    assert main(["demo", "--quiet", "--database", f"sqlite:///{tmp_path / 'demo.db'}"]) == 1
    assert "python3 -m pip install ./src/commproc_sms ./src/commproc_email" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["postgresql://user@localhost/commproc", "sqlite://"])
def test_demo_refuses_databases_it_cannot_recreate(url, capsys) -> None:
    assert main(["demo", "--quiet", "--database", url]) == 2
    assert "recreates its database" in capsys.readouterr().err
