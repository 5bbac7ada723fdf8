"""Envelope unwrapping: every documented shape, and nothing but InvalidPayload on garbage."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commproc_core.errors import InvalidPayload
from commproc_core.pipeline.envelope import unwrap_body

TWILIO_FORM = "MessageSid=SM1&From=%2B14155550100&To=%2B14155550199&Body=Hello+there"


def apigw_v1(body, *, b64=False, headers=None):
    return {
        "resource": "/sms",
        "path": "/sms",
        "httpMethod": "POST",
        "headers": headers
        or {
            "Host": "abc.execute-api.us-east-1.amazonaws.com",
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "sig",
        },
        "queryStringParameters": {"k": "v w"},
        "requestContext": {
            "path": "/prod/sms",
            "stage": "prod",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
        },
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }


def test_raw_json_object():
    u = unwrap_body('{"a": 1}')
    assert u.items == ({"a": 1},) and u.envelope.kind == "json" and u.envelope.raw_body == '{"a": 1}'


def test_raw_form():
    u = unwrap_body(TWILIO_FORM)
    assert u.items[0]["From"] == "+14155550100"
    assert u.envelope.kind == "form" and u.envelope.form[0] == ("MessageSid", "SM1")


def test_list_items_and_empty_list():
    assert unwrap_body('[{"a":1}, 2]').items == ({"a": 1}, 2)
    assert unwrap_body("[]").control == "empty_list"


@pytest.mark.parametrize("b64", [False, True])
def test_api_gateway_v1(b64):
    u = unwrap_body(json.dumps(apigw_v1(TWILIO_FORM, b64=b64)))
    env = u.envelope
    assert env.kind == "apigw_v1" and env.body_format == "form"
    assert env.url == "https://abc.execute-api.us-east-1.amazonaws.com/prod/sms?k=v+w"
    assert env.headers["x-twilio-signature"] == "sig"
    assert env.method == "POST"
    assert u.items[0]["Body"] == "Hello there"


@pytest.mark.parametrize("b64", [False, True])
def test_api_gateway_v2_json_body(b64):
    body = json.dumps({"event": "delivered"})
    event = {
        "version": "2.0",
        "routeKey": "POST /hook",
        "rawPath": "/hook",
        "rawQueryString": "bodySHA256=abc",
        "headers": {"host": "hooks.example.com", "content-type": "application/json"},
        "requestContext": {"http": {"method": "POST", "path": "/hook"}, "domainName": "hooks.example.com"},
        "body": base64.b64encode(body.encode()).decode() if b64 else body,
        "isBase64Encoded": b64,
    }
    u = unwrap_body(json.dumps(event))
    assert u.envelope.kind == "apigw_v2"
    assert u.envelope.url == "https://hooks.example.com/hook?bodySHA256=abc"
    assert u.envelope.query == {"bodySHA256": "abc"}
    assert u.items == ({"event": "delivered"},)


def test_sns_notification_with_json_and_form_messages():
    note = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "arn:aws:sns:us-east-1:1:t",
        "Message": json.dumps({"notificationType": "Bounce"}),
        "Signature": "s",
        "SignatureVersion": "1",
    }
    u = unwrap_body(json.dumps(note))
    assert u.envelope.kind == "sns" and u.envelope.sns["TopicArn"].endswith(":t")
    assert u.items == ({"notificationType": "Bounce"},)
    note["Message"] = TWILIO_FORM
    assert unwrap_body(json.dumps(note)).items[0]["MessageSid"] == "SM1"


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_sns_control_messages(kind):
    u = unwrap_body(json.dumps({"Type": kind, "MessageId": "m", "TopicArn": "t", "Message": "hi"}))
    assert u.control == kind and u.items == ()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("", "body"),
        ("   ", "body"),
        ("null", "body"),
        ('"text"', "body"),
        ("{", "body"),
        ("just words", "body"),
        (
            json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": 5}),
            "body.Message",
        ),
        (json.dumps({"requestContext": {}, "body": None}), "body"),
        (json.dumps({"requestContext": {}, "body": "!!", "isBase64Encoded": True}), "body"),
        (
            json.dumps({"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "{oops"}),
            "body.Message",
        ),
    ],
)
def test_garbage_names_the_field(body, field):
    with pytest.raises(InvalidPayload) as info:
        unwrap_body(body)
    assert info.value.field == field


def test_deep_nesting_is_invalid_not_a_crash():
    with pytest.raises(InvalidPayload):
        unwrap_body("[" * 100_000 + "]" * 100_000)


def _check(body: str) -> None:
    try:
        unwrap_body(body)
    except InvalidPayload:
        pass


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_else(data):
    _check(data.decode("utf-8", errors="replace"))
    _check(data.decode("latin-1"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_raises_anything_else(value):
    _check(json.dumps(value))


@settings(max_examples=200)
@given(
    st.sampled_from(["Notification", "SubscriptionConfirmation", "Other"]),
    json_values,
    st.booleans(),
    json_values,
)
def test_arbitrary_envelopes_never_raise_anything_else(sns_type, message, b64, body):
    _check(json.dumps({"Type": sns_type, "MessageId": "m", "TopicArn": "t", "Message": message}))
    _check(
        json.dumps(
            {
                "requestContext": {"http": body},
                "version": "2.0",
                "body": body,
                "isBase64Encoded": b64,
                "headers": message,
            }
        )
    )
    _check(json.dumps({"requestContext": message, "body": json.dumps(body), "headers": body}))


def test_ses_topic_validation_notification_is_control():
    note = {
        "Type": "Notification",
        "MessageId": "m",
        "TopicArn": "t",
        "Message": "Successfully validated SNS topic for Amazon SES event publishing.",
    }
    assert unwrap_body(json.dumps(note)).control == "SesTopicValidation"


def test_raw_body_is_kept_exactly():
    body = '[{"event": "open"}]\r\n'
    assert unwrap_body(body).envelope.raw_body == body
    assert unwrap_body("a=1&b=2\n").envelope.raw_body == "a=1&b=2\n"
