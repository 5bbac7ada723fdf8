"""The voice channel end to end: every call status, recordings, transcriptions, signatures, threading."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from commproc_voice import CALL_STATUSES, MISSED_STATUSES, RECORDING_STATUSES, VoiceProcessor
from twilio.request_validator import RequestValidator
from voice_support import (
    CALLER,
    OUR_NUMBER,
    TOKEN,
    URL,
    api_gateway,
    call,
    recording,
    run,
    sid,
    transcription,
    voice,
)

from commproc_core import MemoryStore, ProcessorFactory
from commproc_core.stores.sql import SQLStore
from commproc_core.testing import assert_stats, table_counts


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    if request.param == "memory":
        yield MemoryStore()
        return
    sql = SQLStore(f"sqlite:///{tmp_path / 'voice.db'}", auto_upgrade=True)
    yield sql
    sql.close()


def events(store, **where):
    with store.unit_of_work() as uow:
        return uow.events.find(channel="voice", order_by="recorded_at", **where)


def the_call(store, call_sid):
    with store.unit_of_work() as uow:
        return uow.messages.find_one(provider="twilio", provider_message_id=call_sid)


@pytest.mark.parametrize("status", CALL_STATUSES)
def test_every_call_status_of_an_inbound_call(store, status) -> None:
    processor, queue = voice(store)
    params = call(status, CallDuration="42" if status == "completed" else "")
    assert_stats(run(processor, queue, params), processed=1, failed=0, deleted=1)
    (event,) = events(store)
    missed = status in MISSED_STATUSES
    assert event.event_type == ("missed_call" if missed else f"call_{status.replace('-', '_')}")
    assert event.dedupe_key == f"twilio:call:{params['CallSid']}:{status}"
    assert (event.sender, event.recipient, event.data["missed"]) == (CALLER, OUR_NUMBER, missed)
    message = the_call(store, params["CallSid"])
    assert (message.direction, message.channel, message.status) == ("inbound", "voice", status)
    assert message.metadata.get("missed", False) is missed
    with store.unit_of_work() as uow:
        lead = uow.leads.find_one(phone=CALLER)
        assert lead is not None and event.lead_id == lead.id and lead.source == "twilio:voice"
        thread = uow.threads.find_one(lead_id=lead.id, channel="voice")
        assert message.thread_id == thread.id and message.conversation_id == thread.conversation_id
        conversation = uow.conversations.get(message.conversation_id)
        assert conversation.external_id == f"twilio:voice:{OUR_NUMBER}:{CALLER}"
        assert {p.role for p in uow.participants.find(conversation_id=conversation.id)} == {
            "lead",
            "business",
        }


def test_an_unanswered_outbound_call_is_not_a_missed_call(store) -> None:
    processor, queue = voice(store)
    params = call("no-answer", direction="outbound-api", caller="+14155550177")
    run(processor, queue, params)
    (event,) = events(store)
    assert event.event_type == "call_no_answer" and event.data["missed"] is False
    assert (event.sender, event.recipient) == (OUR_NUMBER, "+14155550177")
    with store.unit_of_work() as uow:
        # The lead of an outbound call is the person called.
        assert uow.leads.find_one(phone="+14155550177").id == event.lead_id
    assert the_call(store, params["CallSid"]).direction == "outbound"


def test_callbacks_out_of_order_move_the_call_forward_only(store) -> None:
    processor, queue = voice(store)
    call_sid = sid("CA")
    run(processor, queue, call("completed", call_sid=call_sid, CallDuration="61", SequenceNumber="3"))
    run(
        processor,
        queue,
        call("ringing", call_sid=call_sid, SequenceNumber="1"),
        call("in-progress", call_sid=call_sid, SequenceNumber="2"),
        call("initiated", call_sid=call_sid, SequenceNumber="0"),
    )
    message = the_call(store, call_sid)
    assert (message.status, message.metadata["duration"]) == ("completed", 61)
    assert sorted(e.event_type for e in events(store)) == [
        "call_completed",
        "call_in_progress",
        "call_initiated",
        "call_ringing",
    ]
    counts = table_counts(store)
    assert (counts["messages"], counts["leads"], counts["conversations"], counts["threads"]) == (1, 1, 1, 1)


def test_calls_of_one_person_share_the_lead_conversation_and_thread(store) -> None:
    processor, queue = voice(store)
    first, second = call("completed"), call("no-answer")
    run(processor, queue, first, second, call("ringing", call_sid=first["CallSid"]))
    with store.unit_of_work() as uow:
        calls = uow.messages.find(channel="voice")
        assert len(calls) == 2
        assert len({c.conversation_id for c in calls}) == len({c.thread_id for c in calls}) == 1
        assert uow.leads.count() == 1


def test_a_caller_who_also_texts_is_one_lead(store) -> None:
    from commproc_sms import SMSProcessor

    processor, queue = voice(store)
    run(processor, queue, call("completed"))
    sms_queue = type(queue)("memory://sms")
    sms = SMSProcessor(queue=sms_queue, store=store)
    text = {
        "MessageSid": sid("SM"),
        "AccountSid": "AC" + "0" * 31 + "1",
        "From": CALLER,
        "To": OUR_NUMBER,
        "Body": "Sorry I missed you",
    }
    run(sms, sms_queue, text)
    with store.unit_of_work() as uow:
        assert uow.leads.count() == 1
        (lead,) = uow.leads.find()
        assert {e.channel for e in uow.events.find(lead_id=lead.id)} == {"voice", "sms"}


@pytest.mark.parametrize("status", RECORDING_STATUSES)
def test_recordings_attach_to_their_call(store, status) -> None:
    processor, queue = voice(store)
    placed = call("completed")
    extra = {"ErrorCode": "16101"} if status == "absent" else {}
    rec = recording(status, placed["CallSid"], **extra)
    run(processor, queue, placed, rec)
    event = events(store, event_type=f"recording_{status.replace('-', '_')}")[0]
    assert event.provider_event_id == rec["RecordingSid"] and event.data["call_known"] is True
    message = the_call(store, placed["CallSid"])
    assert event.message_id == message.id and event.lead_id is not None
    attached = message.metadata["recordings"][rec["RecordingSid"]]
    assert (attached["status"], attached["duration"], attached["url"]) == (status, 14, rec["RecordingUrl"])
    assert attached["error_code"] == extra.get("ErrorCode")


def test_a_recording_before_its_call_is_kept(store) -> None:
    processor, queue = voice(store)
    assert_stats(run(processor, queue, recording("completed", sid("CA"))), processed=1, failed=0)
    (event,) = events(store)
    assert event.data["call_known"] is False and event.message_id is None


def test_a_transcription_is_the_calls_body_and_stays_out_of_events_and_logs(store, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="commproc")
    processor, queue = voice(store)
    placed = call("no-answer")
    words = "Hi, this is Ann, please call me back about the flat"
    run(processor, queue, placed, transcription("completed", placed["CallSid"], words))
    message = the_call(store, placed["CallSid"])
    assert message.body == words and message.metadata["transcription"]["status"] == "completed"
    for event in events(store):
        assert words not in repr(event)
    assert [e.event_type for e in events(store)] == ["missed_call", "transcription_completed"]
    assert words not in caplog.text and CALLER not in caplog.text


def test_a_failed_transcription_keeps_the_body(store) -> None:
    processor, queue = voice(store)
    placed = call("completed")
    run(processor, queue, placed, transcription("completed", placed["CallSid"], "first words"))
    run(processor, queue, transcription("failed", placed["CallSid"]))
    assert the_call(store, placed["CallSid"]).body == "first words"


def test_a_client_or_sip_caller_has_no_lead(store) -> None:
    processor, queue = voice(store)
    params = call("completed", caller="client:alice")
    run(processor, queue, params)
    (event,) = events(store)
    assert event.lead_id is None and event.data["lead_address_kind"] == "invalid"
    message = the_call(store, params["CallSid"])
    assert message.thread_id is None and message.sender == "client:alice"


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({k: v for k, v in call("completed").items() if k != "CallSid"}, "invalid_payload", "CallSid"),
        (call("ringin"), "unknown_status", "CallStatus"),
        ({"AccountSid": "AC1", "From": CALLER}, "unknown_event", "CallStatus"),
        (call("completed", CallDuration="about a minute"), "invalid_payload", "CallDuration"),
        (recording("done", sid("CA")), "unknown_status", "RecordingStatus"),
    ],
)
def test_bad_callbacks_are_rejected_naming_the_parameter(store, params, code, field) -> None:
    processor, queue = voice(store)
    assert_stats(run(processor, queue, params), processed=0, failed=1, deleted=1)
    (failed,) = events(store, status="failed")
    assert (failed.error_code, failed.data["field"]) == (code, field)
    assert CALLER not in (failed.error_detail or "")


def signed(params, secret=TOKEN):
    return RequestValidator(secret).compute_signature(URL, params)


def test_signatures_are_checked(store) -> None:
    processor, queue = voice(store, {"auth_tokens": [TOKEN], "require_signature": True})
    good, forged, unsigned = call("completed"), call("completed"), call("completed")
    stats = run(
        processor,
        queue,
        api_gateway(good, signature=signed(good)),
        api_gateway(forged, signature=signed(forged, "not-the-token")),
        api_gateway(unsigned, signature=None),
        unsigned,  # straight onto the queue: no headers to check
    )
    assert_stats(stats, processed=1, failed=3, deleted=4)
    assert [e.provider_message_id for e in events(store, status="processed")] == [good["CallSid"]]
    assert {e.error_code for e in events(store, status="failed")} == {"bad_signature"}


def test_settings_are_checked() -> None:
    factory = ProcessorFactory()
    factory.register_processor("voice", VoiceProcessor)
    assert factory.validate_processor_config("voice", {"auth_tokens": ["t"], "require_signature": True}) == []
    (blank,) = factory.validate_processor_config("voice", {"auth_tokens": [" "]})
    assert "must not hold an empty secret" in blank
    (problem,) = factory.validate_processor_config("voice", {"require_signature": True})
    assert "neither auth_tokens nor shared_keys" in problem


def test_installed_as_the_voice_channel() -> None:
    factory = ProcessorFactory()
    assert factory.get_processor_class("voice") is VoiceProcessor
    (info,) = [i for i in factory.list_channels() if i.name == "voice"]
    assert (info.distribution, info.target) == ("commproc-voice", "commproc_voice:VoiceProcessor")
    # The `commproc` command installed beside this interpreter.
    command = str(Path(sys.executable).parent / "commproc")
    listed = subprocess.run([command, "channels"], capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stderr
    (line,) = [row for row in listed.stdout.splitlines() if row.startswith("voice ")]
    assert "commproc-voice" in line and line.split()[-1] == "ok"
