"""Provider payloads (written from each provider's documentation) into normalized events."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from email_support import load, payload

from commproc_core.errors import InvalidPayload, UnknownEventShape
from commproc_core.pipeline.envelope import Envelope
from commproc_core.pipeline.processor import EventPayload
from commproc_core.stores import MemoryStore
from commproc_email import EVENT_TYPES, EmailEvent, EmailProcessor, detect_provider


def normalize(data: Any) -> list[EmailEvent]:
    proc = EmailProcessor(store=MemoryStore(), queue_url="memory://unused")
    envelope = Envelope(kind="json", body_format="json", raw_body="")
    return list(proc.validate_event(EventPayload(data=data, envelope=envelope)))


def one(data: Any) -> EmailEvent:
    events = normalize(data)
    assert len(events) == 1, events
    return events[0]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


SES_MESSAGE = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"


# -- SES event publishing ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_type", "occurred_at", "fields"),
    [
        ("Bounce", "bounced", utc(2017, 8, 5, 0, 41, 2, 669000),
         {"bounce_class": "hard", "smtp_status": "5.1.1", "mta_response": "smtp; 550 5.1.1 user unknown",
          "provider_event_id": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000"}),
        ("Complaint", "complained", utc(2017, 8, 5, 0, 41, 2, 669000), {"description": "abuse"}),
        ("Delivery", "delivered", utc(2016, 10, 19, 23, 21, 4, 133000), {"smtp_status": "2.6.0"}),
        ("Send", "sent", utc(2016, 10, 14, 5, 2, 16, 645000), {}),
        ("Reject", "rejected", utc(2016, 10, 14, 17, 38, 15, 211000),
         {"reject_reason": "blocked", "description": "Bad content"}),
        ("Open", "opened", utc(2017, 8, 9, 22, 0, 19, 652000), {"recipient_ambiguous": False}),
        ("Click", "clicked", utc(2017, 8, 9, 23, 51, 25, 570000),
         {"click_url": "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html"}),
        ("Rendering Failure", "failed", utc(2018, 1, 22, 18, 43, 6, 197000),
         {"description": "Attribute 'attributeName' is not present in the rendering data."}),
        ("DeliveryDelay", "deferred", utc(2020, 6, 16, 0, 25, 40, 95000),
         {"smtp_status": "4.4.1", "description": "TransientCommunicationFailure"}),
        ("Subscription", "unsubscribed", utc(2022, 1, 12, 1, 0, 17, 910000),
         {"subscription_group": "ContactListName/ExampleTopicName"}),
    ],
)  # fmt: skip
def test_ses_event_publishing(
    name: str, event_type: str, occurred_at: datetime, fields: dict[str, Any]
) -> None:
    data = payload("ses_events.json", name)
    event = one(data)
    assert event.provider == "ses"
    assert event.provider_event_type == name
    assert event.event_type == event_type
    assert event.occurred_at == occurred_at
    assert event.recipient == "recipient@example.com"
    assert event.recipient_key == "recipient@example.com"
    assert event.provider_message_id == data["mail"]["messageId"]
    assert event.dedupe_key.startswith("ses:h:")
    for field, value in fields.items():
        assert getattr(event, field) == value, field


def test_ses_tags_become_metadata() -> None:
    event = one(payload("ses_events.json", "Bounce"))
    assert event.metadata["ses:configuration-set"] == "ConfigSet"
    assert event.metadata["campaign"] == "spring-sale"


def test_ses_subscription_unsubscribe_all() -> None:
    data = payload("ses_events.json", "Subscription")
    data["subscription"]["newTopicPreferences"] = {"unsubscribeAll": True, "topicSubscriptionStatus": []}
    event = one(data)
    assert (event.event_type, event.subscription_group) == ("unsubscribed", None)


def test_ses_subscription_opt_in_is_subscribed() -> None:
    data = payload("ses_events.json", "Subscription")
    data["subscription"]["newTopicPreferences"]["topicSubscriptionStatus"][0]["subscriptionStatus"] = "OptIn"
    assert one(data).event_type == "subscribed"


def test_ses_open_for_a_message_with_several_recipients_blames_nobody() -> None:
    data = payload("ses_events.json", "Open")
    data["mail"]["destination"] = ["a@example.com", "b@example.com"]
    event = one(data)
    assert event.recipient is None and event.recipient_ambiguous


# -- SES classic notifications -----------------------------------------------------


def test_ses_multi_recipient_bounce_is_one_event_per_recipient() -> None:
    events = normalize(payload("ses_notifications.json", "BounceMulti"))
    assert [e.recipient_key for e in events] == [
        "jane@example.com",
        "richard@example.com",
        "zoe.upper+promo@bücher.example",
    ]
    assert {e.event_type for e in events} == {"bounced"}
    assert {e.bounce_class for e in events} == {"hard"}
    assert len({e.dedupe_key for e in events}) == 3
    assert {e.provider_event_id for e in events} == {
        "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000"
    }
    international = events[2]
    assert international.recipient_raw == "Zoe.Upper+Promo@XN--BCHER-KVA.EXAMPLE"
    assert international.recipient == "Zoe.Upper+Promo@bücher.example"
    # A recipient without status or diagnostic code is still a bounce.
    assert international.smtp_status is None and international.mta_response is None


@pytest.mark.parametrize(
    ("name", "event_type", "bounce_class", "suppressed"),
    [
        ("TransientMailboxFull", "bounced", "soft", False),
        # SES labels some dead mailboxes Transient/General; a 5.1.x code says otherwise.
        ("TransientGeneralBadMailbox", "bounced", "hard", False),
        ("Undetermined", "bounced", "undetermined", False),
        ("OnAccountSuppressionList", "rejected", "hard", True),
    ],
)
def test_ses_bounce_classes(name: str, event_type: str, bounce_class: str, suppressed: bool) -> None:
    event = one(payload("ses_notifications.json", name))
    assert (event.event_type, event.bounce_class, event.provider_suppressed) == (
        event_type,
        bounce_class,
        suppressed,
    )


@pytest.mark.parametrize("subtype", ["Suppressed", "OnAccountSuppressionList"])
def test_ses_suppression_list_subtypes_are_rejections(subtype: str) -> None:
    data = payload("ses_notifications.json", "BounceMulti")
    data["bounce"]["bounceSubType"] = subtype
    assert {(e.event_type, e.provider_suppressed) for e in normalize(data)} == {("rejected", True)}


@pytest.mark.parametrize("subtype", ["General", "NoEmail"])
def test_ses_permanent_bounces_are_hard(subtype: str) -> None:
    data = payload("ses_notifications.json", "BounceMulti")
    data["bounce"]["bounceSubType"] = subtype
    assert {e.bounce_class for e in normalize(data)} == {"hard"}


@pytest.mark.parametrize(
    "subtype", ["General", "MailboxFull", "MessageTooLarge", "ContentRejected", "AttachmentRejected"]
)
def test_ses_transient_bounces_are_soft(subtype: str) -> None:
    data = payload("ses_notifications.json", "TransientMailboxFull")
    data["bounce"]["bounceSubType"] = subtype
    data["bounce"]["bouncedRecipients"][0]["status"] = "4.0.0"
    assert one(data).bounce_class == "soft"


def test_ses_classic_complaint_names_only_the_complainant() -> None:
    event = one(payload("ses_notifications.json", "Complaint"))
    assert (event.event_type, event.recipient_key) == ("complained", "richard@example.com")


def test_ses_classic_delivery() -> None:
    event = one(payload("ses_notifications.json", "Delivery"))
    assert (event.event_type, event.recipient, event.mta_response) == (
        "delivered",
        "jane@example.com",
        "250 ok:  Message 64111812 accepted",
    )


def test_ses_received_is_an_inbound_message() -> None:
    event = one(payload("ses_notifications.json", "Received"))
    assert event.event_type == "inbound"
    assert event.dedupe_key == "ses:inbound:d6iitobk75ur44p8kdnnp7g2n800"
    assert (event.sender, event.sender_key, event.to_address) == (
        "sender@example.com",
        "sender@example.com",
        "recipient@example.com",
    )
    assert event.subject == "Re: Example subject"
    assert event.body == "Yes, please send me the details."
    assert event.in_reply_to == (f"<{SES_MESSAGE}@email.amazonses.com>",)
    assert event.recipient is None


def test_ses_received_without_content_has_no_body() -> None:
    data = payload("ses_notifications.json", "Received")
    del data["content"]
    data["mail"]["headers"] = []
    event = one(data)
    assert event.body is None and event.in_reply_to == ()


def test_ses_subscription_succeeded_is_not_an_event() -> None:
    assert normalize(payload("ses_notifications.json", "SubscriptionSucceeded")) == []


def test_ses_unknown_type_is_kept_as_unknown() -> None:
    data = payload("ses_events.json", "Send")
    data["eventType"] = "BrandNewThing"
    data["brandNewThing"] = {"x": 1}
    event = one(data)
    assert event.event_type == "unknown"
    assert event.raw["brandNewThing"] == {"x": 1}


def test_ses_missing_optional_fields() -> None:
    data = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bouncedRecipients": [{"emailAddress": "ann@example.com"}],
            "timestamp": "2024-05-01T10:00:00Z",
        },
        "mail": {"messageId": "m-1", "timestamp": "2024-05-01T09:59:00Z"},
    }
    event = one(data)
    assert (event.event_type, event.bounce_class, event.provider_event_id) == ("bounced", "hard", None)
    assert event.metadata == {}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["mail"].pop("messageId"), "$.mail.messageId"),
        (lambda d: d.pop("mail"), "$.mail"),
        (lambda d: d["bounce"].update(bouncedRecipients="jane@example.com"), "$.bounce.bouncedRecipients"),
        (lambda d: d["bounce"]["bouncedRecipients"][1].pop("emailAddress"),
         "$.bounce.bouncedRecipients[1].emailAddress"),
        (lambda d: d["bounce"]["bouncedRecipients"][0].update(emailAddress="not-an-address"),
         "$.bounce.bouncedRecipients[0].emailAddress"),
        (lambda d: d["bounce"].update(timestamp="yesterday"), "$.bounce.timestamp"),
        (lambda d: d["mail"].update(destination=["ok@example.com", 7]), "$.mail.destination[1]"),
        (lambda d: d["mail"]["commonHeaders"].update(**{"from": "John"}), "$.mail.commonHeaders.from"),
    ],
)  # fmt: skip
def test_ses_malformed_fields_are_named(change: Any, field: str) -> None:
    data = payload("ses_notifications.json", "BounceMulti")
    change(data)
    with pytest.raises(InvalidPayload) as info:
        normalize(data)
    assert info.value.field == field
    assert "jane@example.com" not in str(info.value)


# -- SendGrid ----------------------------------------------------------------------------


SENDGRID_EXPECTED = {
    "processed": ("queued", {}),
    "deferred": ("deferred", {"mta_response": "400 try again later"}),
    "delivered": ("delivered", {"mta_response": "250 OK"}),
    "open": ("opened", {"machine_open": False}),
    "machine_open": ("opened", {"machine_open": True, "tags": ("cat facts", "weekly")}),
    "click": ("clicked", {"click_url": "http://www.sendgrid.com/"}),
    "bounce": ("bounced", {"bounce_class": "hard", "reject_reason": "bounced", "smtp_status": "5.0.0"}),
    "blocked": ("bounced", {"bounce_class": "soft", "reject_reason": "blocked", "smtp_status": "5.7.1"}),
    "dropped": ("rejected", {"reject_reason": "bounced", "provider_suppressed": True}),
    "spamreport": ("complained", {}),
    "unsubscribe": ("unsubscribed", {"subscription_group": None}),
    "group_unsubscribe": ("unsubscribed", {"subscription_group": "10"}),
    "group_resubscribe": ("subscribed", {"subscription_group": "10"}),
}


@pytest.mark.parametrize("item", load("sendgrid_batch.json"), ids=lambda i: i["sg_event_id"][12:])
def test_sendgrid_items(item: dict[str, Any]) -> None:
    event = one(item)
    event_type, fields = SENDGRID_EXPECTED[item["sg_event_id"][12:]]
    assert event.provider == "sendgrid"
    assert event.event_type == event_type
    assert event.dedupe_key == f"sendgrid:{item['sg_event_id']}"
    assert event.occurred_at == datetime.fromtimestamp(item["timestamp"], tz=timezone.utc)
    assert event.recipient == item["email"]
    # The id the send API returned (X-Message-Id) is sg_message_id up to ".filter".
    assert event.provider_message_id == item["sg_message_id"].split(".filter")[0]
    for field, value in fields.items():
        assert getattr(event, field) == value, field


def test_sendgrid_custom_args_and_categories() -> None:
    event = one(load("sendgrid_batch.json")[0])
    assert event.metadata == {"campaign_id": "c-123"}
    assert event.tags == ("cat facts",)


@pytest.mark.parametrize(
    ("reason", "reject_reason", "suppressed"),
    [
        ("Bounced Address", "bounced", True),
        ("Unsubscribed Address", "unsubscribed", True),
        ("Spam Reporting Address", "spam", True),
        ("Invalid", "invalid", True),
        ("Recipient List over Package Quota", "other", False),
    ],
)
def test_sendgrid_dropped_reasons(reason: str, reject_reason: str, suppressed: bool) -> None:
    item = dict(load("sendgrid_batch.json")[8], reason=reason)
    event = one(item)
    assert (event.event_type, event.reject_reason, event.provider_suppressed) == (
        "rejected",
        reject_reason,
        suppressed,
    )


def test_sendgrid_without_event_id_gets_a_stable_derived_key() -> None:
    item = load("sendgrid_batch.json")[2]
    del item["sg_event_id"]
    first, second = one(item), one(dict(item))
    assert first.dedupe_key == second.dedupe_key
    assert first.dedupe_key.startswith("sendgrid:h:")
    assert "example@test.com" not in first.dedupe_key
    assert one(dict(item, timestamp=item["timestamp"] + 1)).dedupe_key != first.dedupe_key


def test_sendgrid_unknown_event_is_kept() -> None:
    event = one({"email": "a@example.com", "timestamp": 1513299569, "event": "brand_new", "sg_event_id": "x"})
    assert event.event_type == "unknown" and event.raw["event"] == "brand_new"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"timestamp": "soon"}, "$.timestamp"),
        ({"timestamp": True}, "$.timestamp"),
        ({"email": "example@@test.com"}, "$.email"),
        ({"event": 5}, "$.event"),
        ({"category": {"a": 1}}, "$.category"),
        ({"sg_machine_open": "yes"}, "$.sg_machine_open"),
    ],
)
def test_sendgrid_malformed_fields_are_named(change: dict[str, Any], field: str) -> None:
    item = dict(load("sendgrid_batch.json")[3], **change)
    with pytest.raises(InvalidPayload) as info:
        normalize(item)
    assert info.value.field == field


# -- Mailgun ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_type", "fields"),
    [
        ("accepted", "queued", {"metadata": {"my_var_1": "Mailgun Variable #1", "campaign": "spring-sale"}}),
        ("delivered", "delivered", {"mta_response": "OK"}),
        ("failed_permanent", "bounced", {"bounce_class": "hard", "smtp_status": "5.1.1"}),
        ("failed_temporary", "deferred", {"smtp_status": "4.2.2"}),
        ("failed_suppress_bounce", "rejected", {"provider_suppressed": True, "reject_reason": "bounced"}),
        (
            "opened",
            "opened",
            {"user_agent": load("mailgun.json")["opened"]["event-data"]["client-info"]["user-agent"]},
        ),
        ("clicked", "clicked", {"click_url": "https://example.com/offer"}),
        ("unsubscribed", "unsubscribed", {}),
        ("complained", "complained", {}),
    ],
)
def test_mailgun_events(name: str, event_type: str, fields: dict[str, Any]) -> None:
    data = payload("mailgun.json", name)
    event = one(data)
    event_data = data["event-data"]
    assert (event.provider, event.event_type, event.provider_event_type) == (
        "mailgun",
        event_type,
        event_data["event"],
    )
    assert event.recipient == "alice@example.com"
    assert event.provider_event_id == event_data["id"]
    assert event.occurred_at == datetime.fromtimestamp(event_data["timestamp"], tz=timezone.utc)
    assert event.provider_message_id == event_data["message"]["headers"]["message-id"]
    assert event.dedupe_key == f"mailgun:{event_data['id']}:{event.occurred_at.isoformat()}"
    for field, value in fields.items():
        assert getattr(event, field) == value, field


def test_mailgun_message_id_loses_angle_brackets_and_tags_are_kept() -> None:
    data = payload("mailgun.json", "delivered")
    data["event-data"]["message"]["headers"]["message-id"] = "<20130503182626.18666.16540@example.com>"
    event = one(data)
    assert event.provider_message_id == "20130503182626.18666.16540@example.com"
    assert event.tags == ("my_tag_1", "my_tag_2")


def test_mailgun_missing_optional_fields() -> None:
    data = {"event-data": {"event": "delivered", "timestamp": 1521472262.5, "recipient": "alice@example.com"}}
    event = one(data)
    assert event.provider_message_id is None and event.provider_event_id is None
    assert event.dedupe_key.startswith("mailgun:h:")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d["event-data"].pop("event"), "$.event-data.event"),
        (lambda d: d["event-data"].update(timestamp="now"), "$.event-data.timestamp"),
        (lambda d: d["event-data"].update(recipient="alice"), "$.event-data.recipient"),
        (
            lambda d: d["event-data"]["delivery-status"].update(code="550"),
            "$.event-data.delivery-status.code",
        ),
        (lambda d: d["event-data"].update(tags="one"), "$.event-data.tags"),
        (lambda d: d.update(signature="x"), "$.signature"),
    ],
)
def test_mailgun_malformed_fields_are_named(change: Any, field: str) -> None:
    data = payload("mailgun.json", "failed_permanent")
    change(data)
    with pytest.raises(InvalidPayload) as info:
        normalize(data)
    assert info.value.field == field


# -- Postmark ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_type", "occurred_at", "fields"),
    [
        ("Delivery", "delivered", utc(2019, 11, 5, 16, 33, 54, 907025), {"tags": ("welcome-email",)}),
        ("HardBounce", "bounced", utc(2019, 11, 5, 16, 33, 54, 907025),
         {"bounce_class": "hard", "smtp_status": "5.1.1", "provider_event_id": "4323372036854775807"}),
        ("SoftBounce", "bounced", utc(2019, 11, 5, 16, 40), {"bounce_class": "soft", "smtp_status": "4.2.2"}),
        ("Transient", "deferred", utc(2019, 11, 5, 16, 45), {"bounce_class": None}),
        ("Open", "opened", utc(2019, 11, 5, 16, 33, 54, 907025),
         {"metadata": {"example": "value", "example_2": "value"}}),
        ("Click", "clicked", utc(2017, 10, 25, 15, 21, 11), {"click_url": "https://example.com"}),
        ("SpamComplaint", "complained", utc(2019, 11, 5, 16, 33, 54, 907025), {"provider_event_id": "42"}),
        ("SubscriptionChangeSuppressed", "unsubscribed", utc(2020, 2, 1, 10, 53, 34, 416071),
         {"provider_suppressed": True, "reject_reason": "bounced"}),
        ("SubscriptionChangeManual", "unsubscribed", utc(2020, 2, 1, 10, 55),
         {"provider_suppressed": True, "reject_reason": "unsubscribed"}),
        ("SubscriptionChangeReactivated", "subscribed", utc(2020, 2, 2, 10, 53, 34, 416071), {}),
    ],
)  # fmt: skip
def test_postmark_records(name: str, event_type: str, occurred_at: datetime, fields: dict[str, Any]) -> None:
    data = payload("postmark.json", name)
    event = one(data)
    assert (event.provider, event.event_type, event.occurred_at) == ("postmark", event_type, occurred_at)
    assert event.provider_message_id == data["MessageID"]
    assert event.recipient == (data.get("Recipient") or data.get("Email"))
    for field, value in fields.items():
        assert getattr(event, field) == value, field


def test_postmark_ids_beyond_two_to_the_53_stay_exact() -> None:
    event = one(payload("postmark.json", "HardBounce"))
    assert event.dedupe_key == "postmark:Bounce:4323372036854775807"
    other = one(payload("postmark.json", "SoftBounce"))
    assert other.dedupe_key == "postmark:Bounce:4323372036854775808"


@pytest.mark.parametrize(
    ("bounce_type", "event_type", "fields"),
    [
        ("DnsError", "deferred", {}),
        ("AutoResponder", "autoresponded", {}),
        ("BadEmailAddress", "rejected", {"reject_reason": "invalid", "provider_suppressed": True}),
        ("ManuallyDeactivated", "rejected", {"provider_suppressed": True}),
        ("Blocked", "rejected", {"reject_reason": "blocked", "provider_suppressed": False}),
        ("SpamNotification", "bounced", {"bounce_class": "soft"}),
        ("TemplateRenderingFailed", "failed", {}),
        ("Unsubscribe", "unsubscribed", {}),
        ("SomethingNew", "unknown", {}),
    ],
)
def test_postmark_bounce_types(bounce_type: str, event_type: str, fields: dict[str, Any]) -> None:
    data = dict(payload("postmark.json", "SoftBounce"), Type=bounce_type)
    event = one(data)
    assert event.event_type == event_type
    assert event.provider_event_type == f"Bounce/{bounce_type}"
    for field, value in fields.items():
        assert getattr(event, field) == value, field


def test_postmark_unknown_record_type_is_kept() -> None:
    data = {"RecordType": "Inbound", "MessageID": "m-1", "ReceivedAt": "2024-01-01T00:00:00Z"}
    event = one(data)
    assert event.event_type == "unknown" and event.raw == data


def test_postmark_missing_optional_fields() -> None:
    event = one(
        {"RecordType": "Delivery", "Recipient": "ann@example.com", "DeliveredAt": "2024-01-01T00:00:00Z"}
    )
    assert event.tags == () and event.metadata == {} and event.provider_message_id is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"DeliveredAt": "2019-13-45"}, "$.DeliveredAt"),
        ({"Recipient": "john.example.com"}, "$.Recipient"),
        ({"MessageID": 12}, "$.MessageID"),
        ({"Metadata": ["x"]}, "$.Metadata"),
    ],
)
def test_postmark_malformed_fields_are_named(change: dict[str, Any], field: str) -> None:
    data = dict(payload("postmark.json", "Delivery"), **change)
    with pytest.raises(InvalidPayload) as info:
        normalize(data)
    assert info.value.field == field


# -- detection and shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "provider"),
    [
        (load("ses_events.json")["Send"], "ses"),
        (load("ses_notifications.json")["Delivery"], "ses"),
        (load("sendgrid_batch.json")[0], "sendgrid"),
        (load("mailgun.json")["delivered"], "mailgun"),
        (load("postmark.json")["Open"], "postmark"),
    ],
)
def test_detect_provider(data: Any, provider: str) -> None:
    assert detect_provider(data) == provider


def test_unrecognised_shapes() -> None:
    with pytest.raises(UnknownEventShape, match="no email provider recognised"):
        normalize({"hello": "world"})
    with pytest.raises(UnknownEventShape, match="legacy form-encoded Mailgun"):
        normalize(
            {
                "event": "delivered",
                "recipient": "a@example.com",
                "signature": "x",
                "token": "t",
                "timestamp": "1",
            }
        )
    with pytest.raises(InvalidPayload, match="expected a JSON object"):
        normalize(["not", "an", "object"])


def test_every_normalized_type_is_in_the_vocabulary() -> None:
    seen = set()
    for file in ("ses_events.json", "ses_notifications.json", "mailgun.json", "postmark.json"):
        for name, data in load(file).items():
            if not name.startswith("_"):
                seen |= {e.event_type for e in normalize(data)}
    seen |= {one(item).event_type for item in load("sendgrid_batch.json")}
    assert seen <= EVENT_TYPES
    assert seen >= EVENT_TYPES - {"autoresponded", "subscribed", "unknown", "inbound_failed"}
