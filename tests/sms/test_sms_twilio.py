"""Structuring Twilio's webhook parameters (twilio.py) and classifying events (events.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sms_support import ACCOUNT, DOCUMENTED_STATUSES, inbound, payload, status

from commproc_core.errors import InvalidPayload, PermanentError, UnknownEventShape
from commproc_sms.events import (
    STATUS_RANKS,
    advances,
    build_event,
    inbound_dedupe_key,
    parse_dlr_date,
    status_dedupe_key,
    status_rank,
)
from commproc_sms.twilio import (
    INBOUND,
    STATUS,
    STATUSES,
    TwilioInbound,
    TwilioStatus,
    determine_kind,
    parse_twilio,
)


def test_inbound_sms_form_from_twilio_docs():
    parsed = parse_twilio(payload("inbound_sms.form"))
    assert isinstance(parsed, TwilioInbound)
    assert parsed.message_sid == "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    assert parsed.account_sid == ACCOUNT
    assert parsed.messaging_service_sid == "MG00112233445566778899aabbccddeeff"
    assert (parsed.from_, parsed.to) == ("+14155550123", "+14155550199")
    assert parsed.body == "Hi there! Is the offer still on?"
    assert (parsed.num_media, parsed.num_segments) == (0, 1)
    assert (parsed.from_city, parsed.from_state, parsed.from_zip, parsed.from_country) == (
        "SAN FRANCISCO",
        "CA",
        "94105",
        "US",
    )
    assert parsed.sms_status == "received"
    # The deprecated copies are kept as unknown parameters, not lost.
    assert parsed.extra["SmsSid"] == parsed.message_sid
    assert parsed.extra["SmsMessageSid"] == parsed.message_sid


def test_json_numbers_become_text_and_counts():
    parsed = parse_twilio(payload("inbound_sms_numbers.json"))
    assert isinstance(parsed, TwilioInbound)
    assert parsed.from_ == "14155550124"
    assert parsed.to == "14155550199"
    assert parsed.from_zip == "94105"
    assert parsed.num_media == 0 and parsed.num_segments == 1
    # An empty optional parameter is treated as absent.
    assert parsed.to_city is None
    assert "AddOns" in parsed.extra


def test_mms_media_in_order():
    parsed = parse_twilio(payload("inbound_mms.json"))
    assert isinstance(parsed, TwilioInbound)
    assert parsed.num_media == 2
    assert [m.content_type for m in parsed.media] == ["image/jpeg", "image/png"]
    assert parsed.media[0].url.endswith("/Media/ME00000000000000000000000000000000")
    assert build_event(parsed).channel == "mms"


def test_media_numbering_sorted_numerically():
    data = inbound("", NumMedia="11")
    for i in range(11):
        data[f"MediaUrl{i}"] = f"https://media.example/{i}"
    parsed = parse_twilio(data)
    assert isinstance(parsed, TwilioInbound)
    assert [m.url for m in parsed.media] == [f"https://media.example/{i}" for i in range(11)]
    assert all(m.content_type is None for m in parsed.media)


def test_whatsapp_inbound():
    parsed = parse_twilio(payload("inbound_whatsapp.form"))
    assert isinstance(parsed, TwilioInbound)
    assert parsed.profile_name == "Ana" and parsed.wa_id == "447700900123"
    assert parsed.message_type == "text"
    event = build_event(parsed)
    assert event.channel == "whatsapp"
    assert event.sender.kind == "e164" and event.sender.whatsapp
    assert event.sender.canonical == "+447700900123"
    assert (event.from_address, event.to_address) == ("+447700900123", "+14155550199")
    assert event.from_raw == "whatsapp:+447700900123"
    assert event.lead_key == "+447700900123" and event.sender_whatsapp_id is None
    assert parsed.extra["ReferralNumMedia"] == "0"


def test_advanced_opt_out_type():
    parsed = parse_twilio(payload("inbound_advanced_opt_out.form"))
    assert isinstance(parsed, TwilioInbound)
    assert parsed.opt_out_type == "STOP"


def test_legacy_sms_sid_only():
    data = inbound("hello")
    data["SmsSid"] = data.pop("MessageSid")
    parsed = parse_twilio(data)
    assert parsed.message_sid == data["SmsSid"]


def test_unknown_parameters_are_kept_not_rejected():
    parsed = parse_twilio(inbound("hi", BrandNewParam="x", Nested={"a": [1, 2]}))
    assert parsed.extra["BrandNewParam"] == "x"
    assert parsed.extra["Nested"] == {"a": [1, 2]}


@pytest.mark.parametrize("value", DOCUMENTED_STATUSES)
def test_every_documented_status_parses_and_ranks(value):
    data = status("SM" + "a" * 32, value)
    if value in ("received", "receiving"):
        # An inbound message reports these too; a callback has no Body.
        assert determine_kind(data) == STATUS
    parsed = parse_twilio(data)
    assert isinstance(parsed, TwilioStatus)
    assert parsed.message_status == value
    assert value in STATUS_RANKS
    event = build_event(parsed)
    assert event.dedupe_key == f"twilio:status:{'SM' + 'a' * 32}:{value}:"


def test_status_with_error_and_dlr_date():
    parsed = parse_twilio(payload("status_undelivered.form"))
    assert isinstance(parsed, TwilioStatus)
    assert parsed.error_code == "30003"
    assert parse_dlr_date(parsed.raw_dlr_done_date) == datetime(2026, 1, 1, 12, 3, tzinfo=timezone.utc)
    event = build_event(parsed)
    assert event.dedupe_key.endswith(":undelivered:30003")


def test_error_code_as_json_number():
    parsed = parse_twilio(status("SM" + "b" * 32, "failed", ErrorCode=30008))
    assert isinstance(parsed, TwilioStatus)
    assert parsed.error_code == "30008"


def test_whatsapp_read_receipt():
    parsed = parse_twilio(payload("status_whatsapp_read.form"))
    assert isinstance(parsed, TwilioStatus)
    event = build_event(parsed)
    assert (event.channel, event.status, parsed.event_type) == ("whatsapp", "read", "READ")


def test_mm_sid_status_is_mms():
    assert build_event(parse_twilio(status("MM" + "c" * 32, "sent"))).channel == "mms"


def test_inbound_with_received_message_status_is_inbound():
    data = inbound("hello", MessageStatus="received")
    assert determine_kind(data) == INBOUND


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({k: v for k, v in inbound("x").items() if k != "From"}, "From"),
        ({k: v for k, v in inbound("x").items() if k != "AccountSid"}, "AccountSid"),
        ({k: v for k, v in inbound("x").items() if k != "MessageSid"}, "MessageSid"),
        (
            {k: v for k, v in status("SM" + "d" * 32, "sent").items() if k not in ("MessageSid", "SmsSid")},
            "MessageSid",
        ),
        (inbound("x", NumMedia="two"), "NumMedia"),
        (inbound("x", NumMedia="-1"), "NumMedia"),
        (inbound("x", NumMedia=True), "NumMedia"),
        (inbound("x", From={"number": "+14155550100"}), "From"),
        (inbound("x", Body=["a", "b"]), "Body"),
        (inbound("x", MessageSid="not a sid!"), "MessageSid"),
        (inbound("x", MediaUrl0=["x"]), "MediaUrl0"),
    ],
)
def test_malformed_fields_name_the_parameter(data, field):
    with pytest.raises(InvalidPayload) as caught:
        parse_twilio(data)
    assert caught.value.field == field
    assert field in caught.value.detail


def test_errors_never_carry_the_values():
    with pytest.raises(InvalidPayload) as caught:
        parse_twilio(inbound("secret body", From=["+14155550100"], NumMedia="lots"))
    text = str(caught.value)
    assert "+14155550100" not in text and "secret body" not in text and "lots" not in text
    assert "From" in text and "NumMedia" in text


def test_all_missing_fields_reported_at_once():
    with pytest.raises(InvalidPayload) as caught:
        parse_twilio({"Body": "hi"})
    for name in ("MessageSid", "AccountSid", "From", "To"):
        assert f"{name}: required field missing" in caught.value.detail


@pytest.mark.parametrize("data", [{}, {"foo": "bar"}, {"AccountSid": ACCOUNT, "MessageSid": "SM1"}])
def test_unknown_shape(data):
    with pytest.raises(UnknownEventShape):
        parse_twilio(data)


@pytest.mark.parametrize("data", [[], "text", 42, None])
def test_not_an_object(data):
    with pytest.raises(InvalidPayload):
        parse_twilio(data)


def test_dedupe_keys():
    assert inbound_dedupe_key("SM1") == "twilio:in:SM1"
    assert status_dedupe_key("SM1", "failed", "30003") != status_dedupe_key("SM1", "failed", None)
    assert status_dedupe_key("SM1", "sent", None) != status_dedupe_key("SM1", "delivered", None)


def test_status_ranks_follow_the_lifecycle():
    order = ["scheduled", "queued", "sending", "sent", "delivered", "read"]
    assert [status_rank(s) for s in order] == sorted(status_rank(s) for s in order)
    assert status_rank("accepted") == status_rank("scheduled")
    assert {status_rank(s) for s in ("delivered", "undelivered", "failed", "canceled")} == {4}
    assert advances(None, "queued") and advances("pending", "sent") and advances("sending", "sent")
    assert not advances("sending", "queued")
    assert not advances("delivered", "sent")
    assert not advances("delivered", "failed")  # the first terminal status wins
    assert advances("delivered", "read")
    assert not advances("queued", "made_up_status")


@pytest.mark.parametrize("raw", [None, "", "26010112", "2613011200", "abcdefghij", "２６０１０１１２００"])
def test_bad_dlr_dates_are_none(raw):
    assert parse_dlr_date(raw) is None


_KEYS = st.sampled_from(
    [
        "MessageSid",
        "SmsSid",
        "AccountSid",
        "From",
        "To",
        "Body",
        "NumMedia",
        "NumSegments",
        "MessageStatus",
        "ErrorCode",
        "MediaUrl0",
        "MediaContentType0",
        "MediaUrl12",
        "OptOutType",
        "FromCountry",
        "SmsStatus",
        "Other",
    ]
)
_VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just("9" * 5000),
    st.just("SM" + "0" * 32),
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=10))
def test_anything_is_parsed_or_a_permanent_error(data):
    try:
        parsed = parse_twilio(data)
    except PermanentError as error:
        assert error.field
    else:
        build_event(parsed)


# -- shapes real callbacks take ---------------------------------------------------------------


def test_status_callback_needs_only_sid_and_status():
    parsed = parse_twilio({"MessageSid": "SM" + "e" * 32, "MessageStatus": "delivered"})
    assert isinstance(parsed, TwilioStatus)
    assert (parsed.account_sid, parsed.from_, parsed.to) == (None, None, None)
    event = build_event(parsed)
    assert (event.status, event.sender, event.recipient, event.from_address) == (
        "delivered",
        None,
        None,
        None,
    )
    with_error = parse_twilio(
        {"MessageSid": "SM" + "e" * 32, "MessageStatus": "failed", "ErrorCode": "30008"}
    )
    assert build_event(with_error).dedupe_key == f"twilio:status:{'SM' + 'e' * 32}:failed:30008"


def test_status_callback_with_only_the_deprecated_names():
    parsed = parse_twilio({"SmsSid": "SM" + "f" * 32, "SmsStatus": "sent"})
    assert isinstance(parsed, TwilioStatus)
    assert (parsed.message_sid, parsed.message_status) == ("SM" + "f" * 32, "sent")


def test_an_inbound_message_saying_received_without_body_stays_inbound():
    data = {k: v for k, v in inbound("x").items() if k not in ("Body", "NumMedia")}
    assert determine_kind(data) == INBOUND


def test_every_documented_status_is_ranked():
    assert set(STATUS_RANKS) == STATUSES == set(DOCUMENTED_STATUSES)


@pytest.mark.parametrize("value", ["delivrd", "DELIVERED-ish", "pending", "Zq7 secret"])
def test_an_unknown_status_is_refused_with_its_own_code(value):
    with pytest.raises(PermanentError) as caught:
        parse_twilio(status("SM" + "a" * 32, value))
    assert (caught.value.code, caught.value.field) == ("unknown_status", "MessageStatus")
    assert not isinstance(caught.value, InvalidPayload)
    assert value not in str(caught.value)


def test_status_case_is_not_a_new_status():
    assert build_event(parse_twilio(status("SM" + "a" * 32, "Delivered"))).status == "delivered"


# -- addresses on the event ---------------------------------------------------------------------


def test_whatsapp_sender_known_only_by_user_id():
    data = inbound("hi", sender="whatsapp:US.13491208655302741918", to="whatsapp:+14155550199")
    event = build_event(parse_twilio(data))
    assert (event.channel, event.sender.kind) == ("whatsapp", "whatsapp_id")
    assert (event.from_address, event.lead_key) == ("US.13491208655302741918",) * 2
    assert event.sender_whatsapp_id == "US.13491208655302741918"
    assert event.from_raw == "whatsapp:US.13491208655302741918" and event.to_address == "+14155550199"


@pytest.mark.parametrize(
    ("external", "expected"),
    [
        ("whatsapp:US.13491208655302741918", "US.13491208655302741918"),
        ("US.13491208655302741918", "US.13491208655302741918"),
        ("whatsapp:foo_bar", None),  # courier ignores an id it cannot read; so does commproc
        ("whatsapp:+14155550100", None),  # a number is no user id
    ],
)
def test_external_user_id_next_to_a_number(external, expected):
    data = inbound("hi", sender="whatsapp:+14155550123", to="whatsapp:+14155550199", ExternalUserId=external)
    event = build_event(parse_twilio(data))
    assert (event.from_address, event.lead_key) == ("+14155550123", "+14155550123")
    assert event.sender_whatsapp_id == expected


@pytest.mark.parametrize(("sender", "kind"), [("ACME", "alphanumeric"), ("89345", "short_code")])
def test_sender_ids_are_kept_as_given_and_match_no_lead(sender, kind):
    event = build_event(parse_twilio(inbound("hi", sender=sender)))
    assert (event.sender.kind, event.from_address, event.lead_key) == (kind, sender, None)


def test_an_unreadable_sender_has_no_address_and_keeps_the_raw_text():
    event = build_event(parse_twilio(inbound("hi", sender="+1 (415) 555")))
    assert (event.sender.kind, event.from_address, event.from_raw, event.lead_key) == (
        "invalid",
        None,
        "+1 (415) 555",
        None,
    )


def test_whatsapp_status_addresses_lose_the_prefix():
    event = build_event(parse_twilio(payload("status_whatsapp_read.form")))
    assert (event.channel, event.from_address, event.to_address) == (
        "whatsapp",
        "+14155550199",
        "+447700900123",
    )


# -- errors name the parameter, never its value -----------------------------------------------------


def test_a_media_error_names_the_parameter_sent():
    data = inbound("x", NumMedia="1", MediaUrl3=["Zq7"])
    with pytest.raises(InvalidPayload) as caught:
        parse_twilio(data)
    assert caught.value.field == "MediaUrl3"


MARK = "Zq7 +14155550100 secret@example.invalid"


@pytest.mark.parametrize(
    "base", [inbound("hello there"), status("SM" + "b" * 32, "delivered", ErrorCode="30003")]
)
def test_no_error_repeats_a_parameter_value(base):
    refused = 0
    for name in list(base):
        for value in (MARK, [MARK], {MARK: MARK}, True, -7, 1.5):
            try:
                build_event(parse_twilio({**base, name: value}))
            except PermanentError as error:
                refused += 1
                text = f"{error} {error.detail} {error.field}"
                assert "Zq7" not in text and "example.invalid" not in text, (name, text)
    assert refused >= 10
