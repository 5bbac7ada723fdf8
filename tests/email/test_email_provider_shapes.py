"""Shapes real providers send that a strict reading refused: times, recipients, rejections.

The conformance corpus (tests/conformance) runs documented payloads end to
end; these tests pin the rules behind it one by one.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from email_support import load, payload
from hypothesis import given, settings
from hypothesis import strategies as st

from commproc_core.errors import InvalidPayload, PermanentError
from commproc_core.model import QueueMessage
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.processor import EventPayload
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock
from commproc_email import EmailEvent, EmailProcessor
from commproc_email.events import EVENT_TYPES, REJECT_REASONS, with_outbound_recipient
from commproc_email.records import event_data

HANDLED = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
QUEUED = datetime(2031, 5, 6, 7, 0, 0, tzinfo=timezone.utc)
SNS_TIME = "2031-05-06T06:59:58.123Z"


def events_of(
    data: Any, *, sns: dict[str, Any] | None = None, sent_at: datetime | None = None, now: datetime = HANDLED
) -> list[EmailEvent]:
    proc = EmailProcessor(store=MemoryStore(), queue_url="memory://unused", clock=FixedClock(now))
    message = QueueMessage(message_id="sqs-1", receipt_handle="r", body="", sent_at=sent_at)
    envelope = Envelope(
        kind="sns" if sns is not None else "json",
        body_format="json",
        raw_body="",
        sns=sns,
        queue_message=message,
    )
    return list(proc.validate_event(EventPayload(data=data, envelope=envelope)))


def one(data: Any, **kwargs: Any) -> EmailEvent:
    (event,) = events_of(data, **kwargs)
    return event


def sns_envelope(timestamp: Any = SNS_TIME) -> dict[str, Any]:
    return {"Type": "Notification", "MessageId": "sns-1", "Timestamp": timestamp, "Message": "{}"}


# -- times ---------------------------------------------------------------------------


def ses_bounce_without_time() -> dict[str, Any]:
    data = payload("ses_events.json", "Bounce")
    del data["bounce"]["timestamp"]
    return data


@pytest.mark.parametrize(
    ("sns", "sent_at", "occurred_at", "source"),
    [
        (sns_envelope(), QUEUED, datetime(2031, 5, 6, 6, 59, 58, 123000, tzinfo=timezone.utc), "sns"),
        (None, QUEUED, QUEUED, "queue"),
        (None, None, HANDLED, "received"),
        # A broken envelope time is no reason to refuse the event: the next source is used.
        (sns_envelope("not a time"), QUEUED, QUEUED, "queue"),
        (sns_envelope(None), None, HANDLED, "received"),
    ],
)
def test_an_event_without_its_own_time_takes_the_transports(sns, sent_at, occurred_at, source) -> None:
    event = one(ses_bounce_without_time(), sns=sns, sent_at=sent_at)
    assert (event.occurred_at, event.time_source) == (occurred_at, source)
    assert event_data(event)["time_source"] == source


def test_own_time_wins_over_every_fallback() -> None:
    event = one(payload("ses_events.json", "Bounce"), sns=sns_envelope(), sent_at=QUEUED)
    assert (event.occurred_at, event.time_source) == (
        datetime(2017, 8, 5, 0, 41, 2, 669000, tzinfo=timezone.utc),
        "event",
    )
    assert "time_source" not in event_data(event)


def test_a_null_time_falls_back_but_a_malformed_one_is_refused() -> None:
    data = ses_bounce_without_time()
    data["bounce"]["timestamp"] = None
    assert one(data, sns=sns_envelope()).time_source == "sns"
    data["bounce"]["timestamp"] = "yesterday"
    with pytest.raises(InvalidPayload) as caught:
        events_of(data, sns=sns_envelope())
    assert caught.value.field == "$.bounce.timestamp"


def test_ses_open_and_click_need_no_mail_timestamp() -> None:
    for name, kind in (("Open", "opened"), ("Click", "clicked")):
        data = payload("ses_events.json", name)
        del data["mail"]["timestamp"]
        event = one(data)
        assert (event.event_type, event.time_source) == (kind, "event")


def test_ses_send_is_timed_by_its_mail_then_by_the_envelope() -> None:
    data = payload("ses_events.json", "Send")
    assert one(data, sns=sns_envelope()).time_source == "mail"
    del data["mail"]["timestamp"]
    assert one(data, sns=sns_envelope()).time_source == "sns"


def test_a_derived_key_never_depends_on_when_the_event_was_handled() -> None:
    # Redelivered later, the same timeless event must deduplicate.
    data = {"RecordType": "Open", "MessageID": "m-1", "Recipient": "ann@example.com"}
    first = one(data, now=HANDLED)
    again = one(data, now=HANDLED + timedelta(hours=3))
    assert first.time_source == again.time_source == "received"
    assert first.dedupe_key == again.dedupe_key
    # A time the payload or its queue fixes does identify the event.
    assert one(data, sent_at=QUEUED).dedupe_key != one(data, sent_at=QUEUED + timedelta(seconds=1)).dedupe_key


def test_transport_facts_are_kept() -> None:
    event = one(ses_bounce_without_time(), sns=sns_envelope(), sent_at=QUEUED)
    assert event.transport == {
        "kind": "sns",
        "sns_MessageId": "sns-1",
        "sns_Timestamp": SNS_TIME,
        "sqs_message_id": "sqs-1",
        "sqs_sent_at": QUEUED.isoformat(),
    }


# -- rejections keep a malformed address ------------------------------------------------


@pytest.mark.parametrize("reason", ["Invalid", "Bounced Address", "Recipient List over Package Quota"])
def test_sendgrid_drop_of_a_malformed_address_is_an_invalid_rejection(reason: str) -> None:
    item = dict(load("sendgrid_batch.json")[8], email="john.example.com", reason=reason)
    event = one(item)
    assert (event.event_type, event.reject_reason) == ("rejected", "invalid")
    assert (event.recipient_raw, event.recipient, event.recipient_key) == ("john.example.com", None, None)
    assert (event.description, event.mta_response) == (reason, None)


def test_only_rejections_are_lenient_about_the_address() -> None:
    item = dict(load("sendgrid_batch.json")[6], email="john.example.com")  # a bounce
    with pytest.raises(InvalidPayload) as caught:
        events_of(item)
    assert caught.value.field == "$.email"
    # An address that is not text at all is still a malformed payload, even on a drop.
    with pytest.raises(InvalidPayload):
        events_of(dict(load("sendgrid_batch.json")[8], email=["a@example.com"]))


def test_ses_reject_and_suppression_bounce_keep_a_malformed_address() -> None:
    data = payload("ses_events.json", "Reject")
    data["mail"]["destination"] = ["ok@example.com", "no-at-sign"]
    ok, bad = events_of(data)
    assert (ok.recipient_key, ok.reject_reason) == ("ok@example.com", "blocked")
    assert (bad.recipient_raw, bad.recipient, bad.reject_reason) == ("no-at-sign", None, "invalid")
    data = payload("ses_notifications.json", "OnAccountSuppressionList")
    data["bounce"]["bouncedRecipients"][0]["emailAddress"] = "no-at-sign"
    event = one(data)
    assert (event.event_type, event.recipient_raw, event.reject_reason) == (
        "rejected",
        "no-at-sign",
        "invalid",
    )


def test_mailgun_rejected_to_header_with_a_malformed_address() -> None:
    data = {
        "event-data": {
            "event": "rejected",
            "timestamp": 1529704976.1,
            "reject": {"reason": "Bad recipient", "description": ""},
            "message": {"headers": {"to": "Someone <not-an-address>", "message-id": "m@example.org"}},
        }
    }
    event = one(data)
    assert (event.event_type, event.reject_reason, event.recipient_source) == (
        "rejected",
        "invalid",
        "to_header",
    )
    assert (event.recipient, event.recipient_raw) == (None, "Someone <not-an-address>")
    assert event.description == "Bad recipient"


def test_mailgun_only_rejected_events_read_the_to_header() -> None:
    data = payload("mailgun.json", "delivered")
    del data["event-data"]["recipient"]
    event = one(data)
    assert event.recipient is None and event.recipient_source is None


# -- Postmark ---------------------------------------------------------------------------


def test_postmark_unsubscribe_without_email_carries_what_the_processor_needs() -> None:
    data = {"RecordType": "Bounce", "ID": 7, "Type": "Unsubscribe", "TypeCode": 16, "MessageID": "pm-1"}
    event = one(data, sent_at=QUEUED)
    assert (event.event_type, event.reject_reason) == ("unsubscribed", "unsubscribed")
    assert (event.recipient_key, event.recipient_unresolved, event.provider_message_id) == (
        None,
        True,
        "pm-1",
    )
    assert (event.occurred_at, event.time_source, event.dedupe_key) == (QUEUED, "queue", "postmark:Bounce:7")
    assert event_data(event)["recipient_unresolved"] is True
    resolved = with_outbound_recipient(event, "Ann.Lee@Example.com")
    assert (resolved.recipient, resolved.recipient_key) == ("Ann.Lee@example.com", "ann.lee@example.com")
    assert (resolved.recipient_source, resolved.recipient_unresolved) == ("outbound_message", False)
    broken = with_outbound_recipient(event, "nobody")
    assert (broken.recipient_raw, broken.recipient_key, broken.recipient_unresolved) == (
        "nobody",
        None,
        False,
    )


def test_postmark_record_without_address_or_message_is_not_unresolved() -> None:
    event = one({"RecordType": "Bounce", "ID": 8, "Type": "Unsubscribe"})
    assert event.recipient_key is None and not event.recipient_unresolved


@pytest.mark.parametrize(
    ("code", "event_type", "bounce_class"),
    [(1, "bounced", "hard"), (4096, "bounced", "soft"), (2, "deferred", None), (100008, "inbound_failed", None),
     (999999, "unknown", None)],
)  # fmt: skip
def test_postmark_type_code_alone_classifies(code: int, event_type: str, bounce_class: str | None) -> None:
    data = dict(payload("postmark.json", "HardBounce"), TypeCode=code)
    del data["Type"]
    event = one(data)
    assert (event.event_type, event.bounce_class) == (event_type, bounce_class)


def test_postmark_type_wins_over_type_code() -> None:
    data = dict(payload("postmark.json", "HardBounce"), TypeCode=4096)
    assert one(data).bounce_class == "hard"


def test_postmark_spam_complaint_keeps_details_and_description() -> None:
    data = payload("postmark.json", "SpamComplaint")
    assert one(data).description == "Test spam complaint details"
    data["Description"] = "The subscriber explicitly marked this message as spam."
    event = one(data)
    assert (
        event.description
        == "The subscriber explicitly marked this message as spam.; Test spam complaint details"
    )
    assert event.mta_response is None


def test_postmark_subscription_change_reads_missing_suppress_sending_as_true() -> None:
    data = payload("postmark.json", "SubscriptionChangeManual")
    del data["SuppressSending"]
    assert one(data).event_type == "unsubscribed"
    assert one(dict(data, SuppressSending=False)).event_type == "subscribed"


# -- field placement and vocabulary ----------------------------------------------------------


def test_sendgrid_drop_reason_is_a_description_and_bounce_reason_an_mta_response() -> None:
    items = load("sendgrid_batch.json")
    dropped, bounce = one(items[8]), one(items[6])
    assert (dropped.description, dropped.mta_response) == (items[8]["reason"], None)
    assert bounce.mta_response == items[6]["reason"]


def test_mailgun_deferral_reject_reason_is_other() -> None:
    event = one(payload("mailgun.json", "failed_temporary"))
    assert (event.event_type, event.reject_reason) == ("deferred", "other")


def test_vocabulary_is_anymails() -> None:
    assert {
        "queued", "sent", "rejected", "failed", "bounced", "deferred", "delivered", "autoresponded", "opened",
        "clicked", "complained", "unsubscribed", "subscribed", "inbound", "inbound_failed", "unknown",
    } == EVENT_TYPES  # fmt: skip
    assert {"invalid", "bounced", "timed_out", "blocked", "spam", "unsubscribed", "other"} == REJECT_REASONS


def test_a_value_outside_the_vocabulary_is_a_programming_error_that_names_no_value() -> None:
    event = one(payload("postmark.json", "Delivery"))
    with pytest.raises(ValueError, match="event_type must be one of") as caught:
        attrs.evolve(event, event_type="Z9-private-text")
    assert "Z9-private-text" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "reject_reason"),
    [
        (payload("ses_events.json", "Complaint"), "spam"),
        (dict(load("sendgrid_batch.json")[9]), "spam"),
        (payload("mailgun.json", "complained"), "spam"),
        (payload("postmark.json", "SpamComplaint"), "spam"),
    ],
)
def test_every_complaint_has_reject_reason_spam(data: Any, reject_reason: str) -> None:
    event = one(data)
    assert (event.event_type, event.reject_reason) == ("complained", reject_reason)


def test_an_ses_not_spam_report_is_no_spam_complaint() -> None:
    data = payload("ses_events.json", "Complaint")
    data["complaint"]["complaintFeedbackType"] = "not-spam"
    event = one(data)
    assert (event.event_type, event.reject_reason, event.description) == ("complained", None, "not-spam")


# -- lenient readings never turn into crashes ---------------------------------------------------


def _survives(data: Any, **kwargs: Any) -> list[EmailEvent]:
    try:
        return events_of(data, **kwargs)
    except PermanentError:
        return []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(max_size=40))
def test_any_address_text_on_a_rejection_is_recorded_or_refused(to: str, timestamp: str) -> None:
    mailgun = {
        "event-data": {
            "event": "rejected",
            "timestamp": 1529704976.1,
            "reject": {"reason": "r"},
            "message": {"headers": {"to": to, "message-id": "m@example.org"}},
        }
    }
    for event in _survives(mailgun):
        assert event.event_type == "rejected" and event.reject_reason in ("other", "invalid")
    for event in _survives(dict(load("sendgrid_batch.json")[8], email=to)):
        assert event.recipient_raw == to
    bounce = dict(payload("postmark.json", "HardBounce"), Type="BadEmailAddress", Email=to)
    for event in _survives(bounce):
        assert event.recipient_raw == to
    _survives(ses_bounce_without_time(), sns=sns_envelope(timestamp))
