"""Signature policies as a user meets them: unsigned SNS envelopes, Mailgun checked first, blank secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from email_support import TOPIC_ARN, SnsSigner, events, payload, processor, run

from commproc_core.errors import ConfigError, SignatureError
from commproc_core.factory import ProcessorFactory
from commproc_core.parsing import config_problems
from commproc_core.stores import MemoryStore
from commproc_email import EmailSettings, SnsVerifier

NOW = datetime.now(timezone.utc)
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
PAGE = Path(__file__).resolve().parents[2] / "docs" / "email.md"


@pytest.fixture(scope="module")
def signer() -> SnsSigner:
    return SnsSigner()


def unsigned(signer: SnsSigner, message: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """An SNS Notification as SNS would send it, with every signature field removed."""
    envelope = signer.wrap(message)
    for key in ("Signature", "SignatureVersion", "SigningCertURL"):
        del envelope[key]
    envelope.update(fields)
    return envelope


# -- SNS envelopes without a signature ------------------------------------------------------------


def test_default_policy_accepts_an_unsigned_envelope(signer: SnsSigner) -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return signer.pem

    store = MemoryStore()
    proc = processor(store, certificate_fetcher=fetch)
    assert proc.settings.sns_signature == "if_present"
    stats = run(proc, [unsigned(signer, payload("ses_notifications.json", "BounceMulti"))])
    assert (stats.processed, stats.failed) == (3, 0)
    assert fetched == []
    assert {e.data["transport"]["sns_TopicArn"] for e in events(store)} == {TOPIC_ARN}


def test_required_policy_rejects_an_unsigned_envelope_as_missing(signer: SnsSigner) -> None:
    store = MemoryStore()
    proc = processor(store, {"sns_signature": "required"}, certificate_fetcher=signer.fetch)
    stats = run(proc, [unsigned(signer, payload("ses_events.json", "Bounce"))])
    assert (stats.processed, stats.failed, stats.deleted) == (0, 1, 1)
    (failed,) = events(store)
    assert (failed.status, failed.error_code) == ("failed", "missing_signature")
    with store.unit_of_work() as uow:
        assert uow.consents.count() == 0


def test_off_policy_accepts_an_unsigned_envelope(signer: SnsSigner) -> None:
    proc = processor(MemoryStore(), {"sns_signature": "off"})
    assert run(proc, [unsigned(signer, payload("ses_events.json", "Delivery"))]).processed == 1


def test_verifier_names_a_missing_signature(signer: SnsSigner) -> None:
    envelope = unsigned(signer, {"eventType": "Send"})
    with pytest.raises(SignatureError) as info:
        SnsVerifier(signer.fetch).verify(envelope)
    assert (info.value.code, info.value.field) == ("missing_signature", "$.Signature")
    SnsVerifier(signer.fetch).verify(envelope, required=False)


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_signature_fields_count_as_missing(signer: SnsSigner, empty: str | None) -> None:
    envelope = unsigned(signer, {"eventType": "Send"}, Signature=empty, SignatureVersion=empty)
    SnsVerifier(signer.fetch).verify(envelope, required=False)


@pytest.mark.parametrize(
    "kept",
    [
        {"SignatureVersion": "1"},
        {"Signature": "AAAA"},
        {"SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem"},
    ],
)
def test_a_partial_signature_is_checked_and_fails(signer: SnsSigner, kept: dict[str, str]) -> None:
    # Any signature field means a signature arrived: it must verify.
    store = MemoryStore()
    proc = processor(store, certificate_fetcher=signer.fetch)
    stats = run(proc, [unsigned(signer, payload("ses_events.json", "Delivery"), **kept)])
    assert stats.failed == 1
    assert events(store)[0].error_code == "bad_signature"


def test_topic_allow_list_applies_to_unsigned_envelopes(signer: SnsSigner) -> None:
    store = MemoryStore()
    proc = processor(store, {"sns_topic_arns": [TOPIC_ARN]})
    other = unsigned(
        signer, payload("ses_events.json", "Delivery"), TopicArn="arn:aws:sns:us-east-1:999999999999:other"
    )
    mine = unsigned(signer, payload("ses_events.json", "Bounce"))
    stats = run(proc, [other, mine])
    assert (stats.processed, stats.failed) == (1, 1)
    assert [e.error_code for e in events(store, status="failed")] == ["bad_signature"]


def test_a_signed_envelope_still_fails_when_tampered_under_the_default(signer: SnsSigner) -> None:
    store = MemoryStore()
    proc = processor(store, certificate_fetcher=signer.fetch)
    envelope = signer.wrap(payload("ses_events.json", "Delivery"))
    envelope["Message"] = json.dumps(payload("ses_events.json", "Bounce"))
    assert run(proc, [envelope]).failed == 1
    assert events(store)[0].error_code == "bad_signature"


# -- Mailgun: the signature before the payload -------------------------------------------------------


def mailgun_block(
    key: str = MAILGUN_KEY, timestamp: str | None = None, token: str = "t" * 50
) -> dict[str, str]:
    stamp = timestamp if timestamp is not None else str(int(NOW.timestamp()))
    digest = hmac.new(key.encode(), f"{stamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"timestamp": stamp, "token": token, "signature": digest}


def incomplete_event() -> dict[str, Any]:
    """A Mailgun webhook whose event-data misses required fields (no timestamp, no event)."""
    return {"event-data": {"recipient": "alice@example.com"}}


def mailgun_outcome(config: dict[str, Any], body: dict[str, Any]) -> str | None:
    store = MemoryStore()
    run(processor(store, config), [body])
    (recorded,) = events(store)
    return recorded.error_code if recorded.status == "failed" else None


KEYED = {"mailgun_signing_key": MAILGUN_KEY}
REQUIRED = {"mailgun_signing_key": MAILGUN_KEY, "mailgun_signature": "required"}


@pytest.mark.parametrize(
    ("config", "signature", "expected"),
    [
        # A forged (or replayed-and-edited) incomplete event is a bad signature...
        (KEYED, mailgun_block(key="forged"), "bad_signature"),
        (KEYED, {"timestamp": "1", "token": "x", "signature": "00"}, "bad_signature"),
        (KEYED, "not-a-block", "bad_signature"),
        (KEYED, {}, "bad_signature"),
        # ...a genuinely signed incomplete event is an invalid payload...
        (KEYED, mailgun_block(), "invalid_payload"),
        # ...an unsigned one is invalid under if_present, missing under required.
        (KEYED, None, "invalid_payload"),
        (REQUIRED, None, "missing_signature"),
        ({}, mailgun_block(key="forged"), "invalid_payload"),
        ({**KEYED, "mailgun_signature": "off"}, mailgun_block(key="forged"), "invalid_payload"),
    ],
)
def test_mailgun_authenticates_before_it_parses(
    config: dict[str, Any], signature: Any, expected: str
) -> None:
    body = incomplete_event()
    if signature is not None:
        body["signature"] = signature
    assert mailgun_outcome(config, body) == expected


@pytest.mark.parametrize(
    "signature",
    [
        {"timestamp": "1529006854", "token": "t" * 50, "signature": "é" * 64},
        {"timestamp": "1529006854", "token": "\ud800", "signature": "0" * 64},
        {"timestamp": 1529006854, "token": "t" * 50, "signature": "0" * 64},
    ],
)
def test_odd_mailgun_signatures_fail_cleanly(signature: dict[str, Any]) -> None:
    body = payload("mailgun.json", "delivered")
    body["signature"] = signature
    assert mailgun_outcome(KEYED, body) == "bad_signature"


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "soon"])
def test_mailgun_timestamps_must_be_numbers(stamp: str) -> None:
    # Signed with the right key: only the freshness check can refuse it.
    body = payload("mailgun.json", "delivered")
    body["signature"] = mailgun_block(timestamp=stamp)
    assert mailgun_outcome(KEYED, body) == "bad_signature"


def test_a_valid_mailgun_signature_on_a_valid_event_is_processed() -> None:
    body = payload("mailgun.json", "delivered")
    body["signature"] = mailgun_block()
    assert mailgun_outcome(REQUIRED, body) is None


# -- secrets and keys must not be blank ---------------------------------------------------------------


@pytest.mark.parametrize("blank", ["", " ", "\t\n  "])
@pytest.mark.parametrize("key", ["mailgun_signing_key", "sendgrid_public_key", "sns_certificate_dir"])
def test_blank_secrets_are_refused(key: str, blank: str) -> None:
    problems = config_problems(EmailSettings, {key: blank})
    assert problems == [f"must not be empty or whitespace @ config.{key}"]
    with pytest.raises(ConfigError, match=f"config.{key}"):
        processor(MemoryStore(), {key: blank})
    assert ProcessorFactory().validate_processor_config("email", {key: blank}) == problems


def test_a_blank_key_does_not_satisfy_required() -> None:
    problems = config_problems(EmailSettings, {"mailgun_signature": "required", "mailgun_signing_key": " "})
    assert "must not be empty or whitespace @ config.mailgun_signing_key" in problems


def test_an_unreadable_sendgrid_key_is_reported_by_config_validation() -> None:
    problems = config_problems(EmailSettings, {"sendgrid_public_key": "not a key"})
    assert problems == ["not a base64 DER or PEM public key @ config.sendgrid_public_key"]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"mailgun_signing_key": 5}, "mailgun_signing_key"),
        ({"sendgrid_public_key": ["a"]}, "sendgrid_public_key"),
        ({"sns_certificate_dir": 1}, "sns_certificate_dir"),
        ({"sns_certificate_connect_timeout": 0}, "sns_certificate_connect_timeout"),
        ({"sns_certificate_connect_timeout": 61}, "sns_certificate_connect_timeout"),
        ({"sns_certificate_read_timeout": -1}, "sns_certificate_read_timeout"),
        ({"sns_certificate_read_timeout": "10"}, "sns_certificate_read_timeout"),
        ({"sns_certificate_read_timeout": True}, "sns_certificate_read_timeout"),
    ],
)
def test_wrong_signature_settings_are_problems_not_crashes(config: dict[str, Any], field: str) -> None:
    problems = config_problems(EmailSettings, config)
    assert problems and all(p.endswith(f"@ config.{field}") for p in problems)


def test_timeouts_accept_fractions() -> None:
    assert config_problems(EmailSettings, {"sns_certificate_connect_timeout": 0.5}) == []


# -- the docs' queue policy -----------------------------------------------------------------------------


def test_docs_queue_policy_is_valid_and_lets_only_the_topic_send() -> None:
    section = PAGE.read_text().split("## SES through SNS", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```json\n")[1:]]
    assert blocks, "the SES through SNS section shows a queue policy"
    policy = json.loads(blocks[0])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    allow = next(s for s in statements.values() if s["Effect"] == "Allow")
    deny = next(s for s in statements.values() if s["Effect"] == "Deny")
    topic = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert allow["Action"] == deny["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == deny["Resource"]
    assert deny["Principal"] == "*"
    assert deny["Condition"]["ArnNotEquals"]["aws:SourceArn"] == topic
