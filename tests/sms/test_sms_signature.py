"""X-Twilio-Signature (signature.py) and SMSProcessor.authenticate through the real pipeline."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

import pytest
from sms_support import TOKEN, Harness, apigw_v1, apigw_v2, form, inbound, payload_text

from commproc_core.errors import ConfigError, SignatureError
from commproc_core.factory import ProcessorFactory
from commproc_core.pipeline.envelope import Envelope
from commproc_sms.signature import (
    body_sha256,
    compute_signature,
    signature_settings,
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


# -- SharedKey signatures (X-Twilio-Webhooks-Signature-Settings) -----------------------------------

OLD_KEY, NEW_KEY = "webhooks_sharedkey_01OLD", "webhooks_sharedkey_02NEW"
SHARED = {OLD_KEY: "old-shared-secret", NEW_KEY: "new-shared-secret"}


def shared_key_envelope(params, *, key=NEW_KEY, secret=None, algorithm="HMAC_SHA256", settings=None):
    """An API Gateway v2 event for ``params`` signed as a Webhook Rule with a SharedKey signs it."""
    body = form(params)
    envelope = apigw_v2(body, token=None, base64_body=False)
    url = f"https://{envelope['headers']['host']}/sms"
    signature = compute_signature(
        secret if secret is not None else SHARED[key], url, parse_qsl(body), algorithm=algorithm
    )
    envelope["headers"]["X-Twilio-Signature"] = signature
    envelope["headers"]["X-Twilio-Webhooks-Signature-Settings"] = (
        settings if settings is not None else f"key={key},algorithm={algorithm}"
    )
    return envelope


def test_shared_key_signature_verifies_through_the_pipeline():
    h = Harness(config={"shared_keys": SHARED, "require_signature": True})
    stats = h.run(shared_key_envelope(inbound("hello")))
    assert (stats["processed"], stats["failed"]) == (1, 0)
    assert h.one("events", event_type="inbound_message").data["signature_verified"] is True


def test_shared_key_rotation_accepts_both_keys():
    h = Harness(config={"shared_keys": SHARED, "require_signature": True})
    stats = h.run(shared_key_envelope(inbound("one"), key=OLD_KEY), shared_key_envelope(inbound("two")))
    assert (stats["processed"], stats["failed"]) == (2, 0)


def test_auth_token_and_shared_keys_side_by_side():
    h = Harness(config={"auth_token": TOKEN, "shared_keys": SHARED, "require_signature": True})
    stats = h.run(apigw_v1(form(inbound("legacy"))), shared_key_envelope(inbound("shared")))
    assert (stats["processed"], stats["failed"]) == (2, 0)


@pytest.mark.parametrize(
    ("envelope", "code"),
    [
        (
            lambda: shared_key_envelope(inbound("x"), key="webhooks_sharedkey_gone", secret="s"),
            "unknown_signing_key",
        ),
        (
            lambda: shared_key_envelope(inbound("x"), settings=f"key={NEW_KEY},algorithm=HMAC_SHA512"),
            "unsupported_signature_algorithm",
        ),
        (lambda: shared_key_envelope(inbound("x"), secret="not-the-secret"), "bad_signature"),
        # Signed with the old key but claiming the new one: the key id picks the secret.
        (lambda: shared_key_envelope(inbound("x"), secret=SHARED[OLD_KEY]), "bad_signature"),
        # The auth-token scheme, but only shared keys are configured.
        (lambda: apigw_v1(form(inbound("x"))), "unknown_signing_key"),
    ],
    ids=["unknown-key", "unknown-algorithm", "wrong-secret", "other-key", "no-auth-token"],
)
def test_shared_key_rejections_are_permanent_with_their_own_reason(envelope, code, caplog):
    caplog.set_level(logging.DEBUG)
    h = Harness(config={"shared_keys": SHARED})
    built = envelope()
    stats = h.run(built)
    assert (stats["processed"], stats["failed"], stats["deleted"]) == (0, 1, 1)
    failed = h.one("events", status="failed")
    assert failed.error_code == code
    assert h.rows("messages") == [] and h.rows("leads") == []
    # Neither a secret nor the signature reaches the log or the record.
    signature = {k.lower(): v for k, v in built["headers"].items()}["x-twilio-signature"]
    for text in (*SHARED.values(), signature):
        assert text not in caplog.text and text not in (failed.error_detail or "")


def test_settings_header_without_an_algorithm_is_the_auth_token_scheme():
    envelope = apigw_v1(form(inbound("hello")))
    envelope["headers"]["X-Twilio-Webhooks-Signature-Settings"] = f"key={NEW_KEY}"
    h = Harness(config={"auth_token": TOKEN, "shared_keys": SHARED, "require_signature": True})
    assert h.run(envelope)["processed"] == 1


def test_header_names_are_case_insensitive_in_hand_built_envelopes():
    pairs = tuple(DOC_PARAMS.items())
    signature = compute_signature("shh", DOC_URL, pairs, algorithm="HMAC_SHA256")
    envelope = _envelope(
        headers={
            "X-TWILIO-SIGNATURE": signature,
            "x-Twilio-Webhooks-Signature-SETTINGS": "algorithm=HMAC_SHA256,key=k1",
        },
        url=DOC_URL,
        form=pairs,
    )
    assert verify_envelope(envelope, [], shared_keys={"k1": "shh"}, public_url=None, required=True)
    with pytest.raises(SignatureError) as caught:
        verify_envelope(envelope, ["12345"], shared_keys={"k2": "shh"}, public_url=None, required=True)
    assert caught.value.code == "unknown_signing_key"


def test_a_settings_header_naming_no_key_tries_every_secret():
    pairs = tuple(DOC_PARAMS.items())
    signature = compute_signature("shh", DOC_URL, pairs, algorithm="HMAC_SHA256")
    envelope = _envelope(
        headers={
            "x-twilio-signature": signature,
            "x-twilio-webhooks-signature-settings": "algorithm=HMAC_SHA256",
        },
        url=DOC_URL,
        form=pairs,
    )
    assert verify_envelope(
        envelope, ["12345"], shared_keys={"k1": "other", "k2": "shh"}, public_url=None, required=True
    )
    with pytest.raises(SignatureError) as caught:
        verify_envelope(envelope, ["12345"], shared_keys={"k1": "other"}, public_url=None, required=True)
    assert caught.value.code == "bad_signature"


def test_nothing_is_checked_without_secrets():
    envelope = _envelope(
        headers={"x-twilio-signature": "x", "x-twilio-webhooks-signature-settings": "key=k,algorithm=RSA"},
        url=DOC_URL,
        form=(),
    )
    assert verify_envelope(envelope, [], shared_keys={}, public_url=None, required=False) is False


@pytest.mark.parametrize(
    ("header", "key_id", "algorithm"),
    [
        (None, None, None),
        ("", None, None),
        (f"key={NEW_KEY}", NEW_KEY, None),
        (f"key={NEW_KEY},algorithm=HMAC_SHA256", NEW_KEY, "HMAC_SHA256"),
        (f" algorithm = hmac_sha256 , key = {NEW_KEY} ", NEW_KEY, "hmac_sha256"),
        ("algorithm=,key=", None, None),
        ("Algorithm=HMAC_SHA256", None, None),
        ("algorithm=HMAC_SHA256,algorithm=HMAC_SHA1", None, "HMAC_SHA256"),
        ("garbage", None, None),
    ],
)
def test_signature_settings_parse_as_the_sdk_does(header, key_id, algorithm):
    from twilio.request_validator import get_signature_algorithm

    parsed = signature_settings(header)
    assert (parsed.key_id, parsed.algorithm) == (key_id, algorithm)
    assert (parsed.algorithm or "HMAC_SHA1") == get_signature_algorithm(header)


def test_algorithm_names():
    assert compute_signature("12345", DOC_URL, DOC_PARAMS, algorithm="hmac_sha1") == DOC_SIGNATURE
    with pytest.raises(ValueError, match="unsupported"):
        compute_signature("12345", DOC_URL, DOC_PARAMS, algorithm="HMAC_SHA512")
    assert not verify_signature(["12345"], DOC_URL, DOC_SIGNATURE, params=DOC_PARAMS, algorithm="HMAC_SHA512")


def test_issue_12_quote_in_an_api_gateway_v1_query():
    # API Gateway v1 hands over the query decoded and the URL is rebuilt with
    # ' as %27, while Twilio signed the URL as configured, with the quote.
    body = form(inbound("hello"))
    host = "abc123.execute-api.us-east-1.amazonaws.com"
    signed = f"https://{host}/prod/sms?campaign=It's"
    envelope = apigw_v1(
        body,
        host=host,
        token=None,
        signature=compute_signature(TOKEN, signed, parse_qsl(body)),
        query={"campaign": "It's"},
    )
    h = Harness(config=signed_config(require_signature=True))
    assert h.run(envelope)["processed"] == 1


# -- settings ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"auth_token": " "}, "@ config.auth_token"),
        ({"auth_token": ""}, "@ config.auth_token"),
        ({"auth_tokens": ["good", "\t "]}, "@ config.auth_tokens[1]"),
        ({"shared_keys": {OLD_KEY: "  "}}, f"@ config.shared_keys['{OLD_KEY}']"),
        ({"shared_keys": {" ": "secret"}}, "@ config.shared_keys[' ']"),
        ({"shared_keys": {OLD_KEY: 12}}, f"@ config.shared_keys['{OLD_KEY}']"),
        ({"shared_keys": ["secret"]}, "@ config.shared_keys"),
        ({"require_signature": True}, "none of auth_token, auth_tokens and shared_keys is set @ config"),
    ],
)
def test_bad_secrets_are_config_problems_with_their_paths(config, problem):
    problems = ProcessorFactory().validate_processor_config("sms", config)
    assert any(p.endswith(problem) for p in problems), problems
    given = [config.get("auth_token"), *config.get("auth_tokens", [])]
    given += list(config["shared_keys"].values()) if isinstance(config.get("shared_keys"), dict) else []
    assert not [
        p for p in problems for value in given if isinstance(value, str) and value.strip() and value in p
    ]
    with pytest.raises(ConfigError):
        Harness(config=config)


def test_blank_secret_problems_never_show_the_secret():
    problems = ProcessorFactory().validate_processor_config("sms", {"auth_tokens": ["s3cret", " \u00a0 "]})
    assert problems == [
        "must not be blank: anyone can sign with a secret of only whitespace @ config.auth_tokens[1]"
    ]


def test_shared_keys_alone_satisfy_require_signature():
    assert (
        ProcessorFactory().validate_processor_config(
            "sms", {"shared_keys": SHARED, "require_signature": True}
        )
        == []
    )


def test_a_hand_built_settings_never_signs_with_a_blank_token():
    from commproc_sms import SMSSettings

    assert SMSSettings(auth_token=" ").tokens == ()


def test_channels_list_never_shows_shared_key_secrets():
    from commproc_core.runtime.cli.channels import mask_config

    shown = json.dumps(mask_config({"auth_tokens": ["tok-a"], "shared_keys": SHARED}))
    assert not [secret for secret in (*SHARED.values(), "tok-a") if secret in shown]
