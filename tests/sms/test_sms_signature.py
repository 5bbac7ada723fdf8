"""X-Twilio-Signature (signature.py) and SMSProcessor.authenticate through the real pipeline."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from sms_support import TOKEN, Harness, apigw_v1, apigw_v2, form, inbound, payload_text

from commproc_core.errors import ConfigError, SignatureError
from commproc_core.pipeline.envelope import Envelope
from commproc_sms.signature import (
    body_sha256,
    compute_signature,
    url_variants,
    verify_envelope,
    verify_signature,
)

DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_twilio_documented_example():
    assert compute_signature("12345", DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert verify_signature(["12345"], DOC_URL, DOC_SIGNATURE, params=DOC_PARAMS.items())


def test_parameter_order_does_not_matter():
    reversed_pairs = list(reversed(list(DOC_PARAMS.items())))
    assert compute_signature("12345", DOC_URL, reversed_pairs) == DOC_SIGNATURE


@pytest.mark.parametrize(
    "url",
    ["https://mycompany.com:443/myapp.php?foo=1&bar=2", "https://mycompany.com/myapp.php?foo=1&bar=2"],
)
def test_with_and_without_default_port(url):
    assert verify_signature(["12345"], url, DOC_SIGNATURE, params=DOC_PARAMS.items())


def test_signed_with_port_received_without():
    signed = compute_signature("12345", "https://mycompany.com:443/myapp.php", DOC_PARAMS)
    assert verify_signature(["12345"], "https://mycompany.com/myapp.php", signed, params=DOC_PARAMS.items())


def test_url_variants():
    assert url_variants("https://a.example/x?y=1") == [
        "https://a.example/x?y=1",
        "https://a.example:443/x?y=1",
    ]
    assert url_variants("http://a.example:80/x") == ["http://a.example:80/x", "http://a.example/x"]
    assert url_variants("http://[::1]:8080/x") == ["http://[::1]:8080/x", "http://[::1]/x"]


@pytest.mark.parametrize(
    "change",
    [
        {"Digits": "1235"},
        {"Extra": "1"},
        {"To": "+18005551213"},
    ],
)
def test_tampered_parameters_fail(change):
    params = {**DOC_PARAMS, **change}
    assert not verify_signature(["12345"], DOC_URL, DOC_SIGNATURE, params=params.items())


def test_wrong_token_url_or_signature_fails():
    assert not verify_signature(["54321"], DOC_URL, DOC_SIGNATURE, params=DOC_PARAMS.items())
    assert not verify_signature(["12345"], DOC_URL + "&baz=3", DOC_SIGNATURE, params=DOC_PARAMS.items())
    assert not verify_signature(
        ["12345"], "http://mycompany.com/myapp.php?foo=1&bar=2", DOC_SIGNATURE, params=DOC_PARAMS.items()
    )
    assert not verify_signature(["12345"], DOC_URL, "", params=DOC_PARAMS.items())
    assert not verify_signature([], DOC_URL, DOC_SIGNATURE, params=DOC_PARAMS.items())


def test_token_rotation():
    assert verify_signature(["old-token", "12345"], DOC_URL, DOC_SIGNATURE, params=DOC_PARAMS.items())


def test_json_body_sha256():
    body = json.dumps({"MessageSid": "SM1", "Body": "hi"})
    url = f"https://example.com/hook?bodySHA256={body_sha256(body)}"
    signature = compute_signature("12345", url)
    assert verify_signature(["12345"], url, signature, body=body)
    assert not verify_signature(["12345"], url, signature, body=body.replace("hi", "ho"))


def _envelope(**kwargs):
    return Envelope(kind="apigw_v1", body_format="form", raw_body="", **kwargs)


def test_verify_envelope_policy():
    assert verify_envelope(_envelope(), ["12345"], public_url=None, required=False) is False
    with pytest.raises(SignatureError) as caught:
        verify_envelope(_envelope(), ["12345"], public_url=None, required=True)
    assert caught.value.field == "headers.x-twilio-signature"
    with pytest.raises(SignatureError):
        verify_envelope(
            _envelope(headers={"x-twilio-signature": "x"}), ["12345"], public_url=None, required=False
        )
    pairs = tuple(DOC_PARAMS.items())
    good = _envelope(
        headers={"x-twilio-signature": DOC_SIGNATURE}, url="https://internal.example/prod/x", form=pairs
    )
    with pytest.raises(SignatureError):
        verify_envelope(good, ["12345"], public_url=None, required=False)
    # The public URL Twilio called wins over API Gateway's view of it.
    assert verify_envelope(good, ["12345"], public_url=DOC_URL, required=False) is True
    base = _envelope(
        headers={"x-twilio-signature": DOC_SIGNATURE}, url="https://x.example/y?foo=1&bar=2", form=pairs
    )
    assert verify_envelope(base, ["12345"], public_url="https://mycompany.com/myapp.php", required=False)


# -- through the pipeline -------------------------------------------------------------------


def signed_config(**extra):
    return {"auth_token": TOKEN, **extra}


def test_documented_apigw_v1_fixture_verifies():
    h = Harness(config=signed_config(require_signature=True))
    stats = h.run(payload_text("apigw_v1_inbound.json"))
    assert stats["processed"] == 1 and stats["failed"] == 0
    event = h.one("events", event_type="inbound_message")
    assert event.data["signature_verified"] is True


def test_documented_apigw_v2_base64_fixture_verifies():
    h = Harness(config=signed_config(require_signature=True))
    assert h.run(payload_text("apigw_v2_inbound_base64.json"))["processed"] == 1


def test_tampered_body_fails_and_is_recorded():
    envelope = json.loads(payload_text("apigw_v1_inbound.json"))
    envelope["body"] = envelope["body"].replace("offer", "0ffer")
    h = Harness(config=signed_config())
    stats = h.run(envelope)
    assert (stats["processed"], stats["failed"], stats["deleted"]) == (0, 1, 1)
    failed = h.one("events", status="failed")
    assert failed.error_code == "bad_signature"
    assert h.rows("messages") == [] and h.rows("leads") == []


def test_wrong_token_fails():
    h = Harness(config={"auth_token": "not-the-token"})
    assert h.run(apigw_v1(form(inbound("hello"))))["failed"] == 1


def test_missing_signature_when_required():
    h = Harness(config=signed_config(require_signature=True))
    stats = h.run(apigw_v1(form(inbound("hello")), token=None), inbound("raw queue, no headers"))
    assert stats["failed"] == 2
    assert {e.error_code for e in h.rows("events", status="failed")} == {"bad_signature"}


def test_unsigned_accepted_when_not_required():
    h = Harness(config=signed_config())
    assert h.run(apigw_v1(form(inbound("hello")), token=None), inbound("raw"))["processed"] == 2


def test_v2_with_query_string_and_json_body():
    params = inbound("hello")
    body = json.dumps(params)
    h = Harness(config=signed_config(require_signature=True))
    query = f"bodySHA256={body_sha256(body)}"
    envelope = apigw_v2(body, raw_query=query, content_type="application/json", base64_body=False)
    assert h.run(envelope)["processed"] == 1
    tampered = apigw_v2(body, raw_query=query, content_type="application/json", base64_body=False)
    tampered["body"] = body.replace("hello", "HELLO")
    assert h.run(tampered)["failed"] == 1


def test_public_url_behind_a_custom_domain():
    body = form(inbound("hello"))
    public = "https://hooks.example.com/twilio/sms"
    envelope = apigw_v1(body, token=None, signature=compute_signature(TOKEN, public, parse_qsl(body)))
    assert Harness(config=signed_config()).run(envelope)["failed"] == 1
    assert Harness(config=signed_config(public_url=public)).run(envelope)["processed"] == 1


def test_require_signature_needs_a_token():
    with pytest.raises(ConfigError):
        Harness(config={"require_signature": True})
