"""`commproc replay --json` and `commproc inspect` on SMS and email samples."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from commproc_core.runtime.cli import main
from commproc_core.runtime.demo import bundled_events
from commproc_core.stores.sql import SQLStore

REQUIRED = {"channel", "provider", "event_type", "provider_message_id", "dedupe_key", "duplicate"}


def samples(tmp_path: Path, channel: str) -> Path:
    folder = tmp_path / channel
    folder.mkdir()
    for name, body in bundled_events(channel):
        (folder / name).write_text(body, encoding="utf-8")
    return folder


def replay_json(capsys, *args: str) -> tuple[int, list[dict]]:
    code = main(["replay", *args, "--json"])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_replay_sms_folder(plugins, tmp_path, capsys) -> None:
    code, lines = replay_json(capsys, "sms", str(samples(tmp_path, "sms")))
    assert code == 1  # one input is rejected
    assert [(line["source"], line["outcome"], line["reason"]) for line in lines] == [
        ("01-inbound-offer.txt", "processed", None),
        ("02-inbound-mms-photo.txt", "processed", None),
        ("03-whatsapp-booking.txt", "processed", None),
        ("04-stop.txt", "processed", None),
        ("05-help.txt", "processed", None),
        ("06-status-sent.txt", "processed", None),
        ("07-status-delivered.txt", "processed", None),
        ("08-status-undelivered.txt", "processed", None),
        ("09-inbound-offer-redelivered.txt", "duplicate", None),
        ("10-invalid-no-sid.json", "rejected", "invalid_payload"),
    ]
    events = [line["events"][0] for line in lines]
    assert all(REQUIRED <= set(e) for e in events)
    first = events[0]
    assert {k: first[k] for k in ("channel", "provider", "event_type", "from", "to", "keyword_action")} == {
        "channel": "sms",
        "provider": "twilio",
        "event_type": "inbound_message",
        "from": "+14155550123",
        "to": "+14155550199",
        "keyword_action": None,
    }
    assert first["dedupe_key"] == "twilio:in:SM5d1e0a0b0c0d0e0f1011121314150001"
    assert first["duplicate"] is False
    assert events[1]["channel"] == "mms"
    assert events[2]["channel"] == "whatsapp"
    assert [events[3]["keyword_action"], events[4]["keyword_action"]] == ["opt_out", "help"]
    assert [e["status"] for e in events[5:8]] == ["sent", "delivered", "undelivered"]
    assert events[8]["duplicate"] is True and events[8]["dedupe_key"] == first["dedupe_key"]
    assert events[9]["event_type"] == "invalid" and events[9]["record_status"] == "failed"


def test_replay_email_files_in_the_order_given(plugins, tmp_path, capsys, commproc_db) -> None:
    folder = samples(tmp_path, "email")
    files = [folder / name for name in ("08-ses-delivery-redelivered.json", "01-ses-delivery.json")]
    rest = [folder / n for n in ("02-ses-hard-bounce.json", "04-sendgrid-delivered-open-click.json")]
    rest += [folder / n for n in ("07-sns-subscription-confirmation.json", "09-invalid-truncated.json")]
    code, lines = replay_json(capsys, "email", *map(str, files + rest), "--database", commproc_db)
    assert code == 1
    assert [(line["outcome"], line["reason"]) for line in lines] == [
        ("processed", None),
        ("duplicate", None),
        ("processed", None),
        ("processed", None),
        ("ignored", None),
        ("rejected", "invalid_payload"),
    ]
    delivered, again, bounce, batch, ignored, invalid = (line["events"] for line in lines)
    assert delivered[0]["recipient"] == "ann.lee@example.com" and delivered[0]["event_type"] == "delivered"
    assert again[0]["duplicate"] is True
    assert (bounce[0]["event_type"], bounce[0]["bounce_class"]) == ("bounced", "hard")
    assert [e["event_type"] for e in batch] == ["delivered", "opened", "clicked"]
    assert {e["provider"] for e in batch} == {"sendgrid"}
    assert ignored == []
    assert invalid[0]["provider"] == "unknown"
    # --database keeps the records.
    store = SQLStore(commproc_db)
    with store.unit_of_work() as uow:
        assert uow.events.count(status="processed") == 5
    store.close()


def test_replay_all_good_exits_zero_and_prints_a_line_per_input(plugins, tmp_path, capsys) -> None:
    folder = samples(tmp_path, "sms")
    assert main(["replay", "sms", str(folder / "01-inbound-offer.txt"), str(folder / "04-stop.txt")]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "01-inbound-offer.txt: processed: inbound_message",
        "04-stop.txt: processed: inbound_message",
    ]
    assert "throw-away database" in err


def test_replay_with_a_channel_config_file(plugins, tmp_path, capsys) -> None:
    folder = samples(tmp_path, "sms")
    config = tmp_path / "sms.toml"
    config.write_text('auth_token = "12345"\nrequire_signature = true\n')
    code, lines = replay_json(capsys, "sms", str(folder / "01-inbound-offer.txt"), "--config", str(config))
    assert code == 1
    assert (lines[0]["outcome"], lines[0]["reason"]) == ("rejected", "bad_signature")
    config.write_text("require_signature = true\n")
    assert main(["replay", "sms", str(folder), "--config", str(config)]) == 2
    assert "invalid SMSSettings" in capsys.readouterr().err


def test_replay_usage_errors(plugins, tmp_path, capsys) -> None:
    assert main(["replay", "sms", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["replay", "sms", str(tmp_path / "empty")]) == 2
    (tmp_path / "x.txt").write_text("x")
    assert main(["replay", "fax", str(tmp_path / "x.txt")]) == 2
    assert "no processor for channel 'fax'" in capsys.readouterr().err


def test_inspect_writes_nothing(plugins, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = samples(tmp_path, "sms")
    assert main(["inspect", "sms", str(folder / "04-stop.txt")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["outcome"] == "processed"
    assert shown["events"][0]["keyword_action"] == "opt_out"
    assert not list(tmp_path.glob("*.db"))
    assert main(["inspect", "sms", str(folder / "10-invalid-no-sid.json"), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "invalid_payload"


@pytest.mark.parametrize("name", ["sms", "email"])
def test_bundled_samples_are_replayable_from_a_copy(plugins, tmp_path, name, capsys) -> None:
    # The bundled files are plain files: users copy them as templates for their own payloads.
    folder = samples(tmp_path, name)
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    code, lines = replay_json(capsys, name, str(target))
    assert code == 1
    assert sum(line["outcome"] == "rejected" for line in lines) == 1
    assert sum(line["outcome"] == "duplicate" for line in lines) == 1


def test_inspect_inbound_email_names_both_addresses(plugins, tmp_path, capsys) -> None:
    folder = samples(tmp_path, "email")
    assert main(["inspect", "email", str(folder / "06-ses-inbound-reply.json"), "--json"]) == 0
    (event,) = json.loads(capsys.readouterr().out)["events"]
    assert (event["event_type"], event["from"], event["to"]) == (
        "inbound",
        "frank@example.com",
        "hello@shop.example",
    )
