"""Every way a Twilio webhook reaches the queue, and malformed input, through the real loop."""

from __future__ import annotations

import json

import pytest
from sms_support import Harness, apigw_v1, apigw_v2, form, inbound, payload, payload_text, sns, status

from commproc_sms.events import build_event
from commproc_sms.processor import SMSProcessor
from commproc_sms.twilio import parse_twilio


def only_message(h: Harness):
    return h.one("messages")


@pytest.mark.parametrize(
    "envelope",
    [
        pytest.param(lambda p: json.dumps(p), id="raw-json"),
        pytest.param(lambda p: form(p), id="raw-form"),
        pytest.param(lambda p: apigw_v1(form(p)), id="apigw-v1"),
        pytest.param(lambda p: apigw_v1(form(p), base64_body=True), id="apigw-v1-base64"),
        pytest.param(lambda p: apigw_v2(form(p)), id="apigw-v2-base64"),
        pytest.param(lambda p: apigw_v2(form(p), base64_body=False), id="apigw-v2"),
        pytest.param(
            lambda p: apigw_v2(json.dumps(p), content_type="application/json", token=None), id="apigw-v2-json"
        ),
        pytest.param(lambda p: sns(json.dumps(p)), id="sns-json"),
        pytest.param(lambda p: sns(form(p)), id="sns-form"),
        pytest.param(lambda p: json.dumps([p]), id="json-list"),
    ],
)
def test_every_envelope_gives_the_same_records(envelope):
    params = inbound("Hello from an envelope")
    h = Harness()
    stats = h.run(envelope(params))
    assert (stats["processed"], stats["failed"], stats["deleted"]) == (1, 0, 1)
    message = only_message(h)
    assert message.provider_message_id == params["MessageSid"]
    assert message.body == "Hello from an envelope"
    assert h.one("leads").phone == params["From"]


def test_documented_fixtures_in_their_envelopes():
    h = Harness()
    stats = h.run(
        payload_text("inbound_sms.form"),
        payload_text("inbound_mms.json"),
        payload_text("inbound_whatsapp.form"),
        payload_text("apigw_v1_inbound.json"),  # the same message as inbound_sms.form: a duplicate
        payload_text("apigw_v2_inbound_base64.json"),  # and again
        payload_text("sns_status_delivered.json"),
        payload_text("status_undelivered.form"),
        payload_text("status_whatsapp_read.form"),
        payload_text("inbound_sms_numbers.json"),
    )
    assert (stats["received"], stats["processed"], stats["duplicates"], stats["failed"]) == (9, 7, 2, 0)
    assert {m.channel for m in h.rows("messages")} == {"sms", "mms", "whatsapp"}
    assert len(h.rows("events", event_type="status_update")) == 3


def test_several_events_in_one_list_body():
    h = Harness()
    sid_ = "SM" + "e" * 32
    stats = h.run(json.dumps([inbound("one"), inbound("two"), status(sid_, "delivered")]))
    assert stats["processed"] == 3
    assert len(h.rows("processing_records")) == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param("", "invalid_payload", id="empty"),
        pytest.param("{not json", "invalid_payload", id="broken-json"),
        pytest.param("42", "invalid_payload", id="json-number"),
        pytest.param(json.dumps({"hello": "world"}), "unknown_event", id="not-twilio"),
        pytest.param(
            json.dumps({"Body": "hi", "From": "+14155550100"}), "invalid_payload", id="missing-sids"
        ),
        pytest.param(form({"Body": "hi", "MessageSid": "SM1"}), "invalid_payload", id="form-missing"),
        pytest.param(json.dumps(inbound("hi", NumMedia="many")), "invalid_payload", id="bad-count"),
        pytest.param(json.dumps(inbound("hi", From=None, To=None)), "invalid_payload", id="null-addresses"),
        pytest.param(json.dumps([1, 2]), "invalid_payload", id="list-of-numbers"),
        pytest.param(
            json.dumps({**apigw_v1("x=1"), "body": "%%%", "isBase64Encoded": True}),
            "invalid_payload",
            id="bad-base64",
        ),
    ],
)
def test_malformed_input_is_recorded_and_acknowledged(body, code):
    h = Harness()
    stats = h.run(body)
    assert stats["failed"] >= 1 and stats["deleted"] == 1 and stats["retried"] == 0
    failures = h.rows("events", status="failed")
    assert failures and {f.error_code for f in failures} == {code}
    assert all(f.provider == "twilio" for f in failures)
    assert h.rows("messages") == []


def test_failure_record_names_the_field_and_sid_but_no_personal_data():
    params = inbound("my secret body", NumMedia="lots")
    h = Harness()
    h.run(json.dumps(params))
    failure = h.one("events", status="failed")
    assert failure.provider_message_id == params["MessageSid"]
    assert failure.data["field"] == "NumMedia"
    assert "secret" not in (failure.error_detail or "") and params["From"] not in (failure.error_detail or "")


def test_one_bad_item_does_not_sink_the_others():
    h = Harness()
    stats = h.run(json.dumps([inbound("good"), {"MessageSid": "SM1"}]))
    assert (stats["processed"], stats["failed"]) == (1, 1)
    assert only_message(h).body == "good"


def test_sns_subscription_confirmation_is_ignored():
    h = Harness()
    control = {**sns("{}"), "Type": "SubscriptionConfirmation"}
    stats = h.run(control)
    assert stats["ignored"] == 1 and h.rows("messages") == []


def test_determine_event_type_and_extract_event_data():
    processor = SMSProcessor(config={}, queue=None, store=None)
    assert processor._determine_event_type(payload("inbound_sms.form")) == "inbound_message"
    assert processor._determine_event_type(payload("status_delivered.form")) == "status_update"
    data = processor._extract_event_data(build_event(parse_twilio(payload("inbound_mms.json"))))
    assert data["channel"] == "mms" and data["num_media"] == 2
    assert "+14155550125" not in json.dumps(data)
    status_data = processor._extract_event_data(build_event(parse_twilio(payload("status_undelivered.form"))))
    assert (status_data["status"], status_data["error_code"], status_data["rank"]) == (
        "undelivered",
        "30003",
        4,
    )
