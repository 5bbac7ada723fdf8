"""EmailProcessor end to end: queue in, leads, campaigns, conversations, messages and records out."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import pytest
from email_support import SnsSigner, events, load, payload, processor, run

from commproc_core.model import Campaign, Conversation, Lead, OutboundMessage
from commproc_core.stores import MemoryStore
from commproc_core.testing import table_counts

SES_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000"
#: When the outbox row was handed to SES, just before the fixture's Send event.
SENT_AT = datetime(2016, 10, 14, 5, 2, 16, tzinfo=timezone.utc)


def add(store: Any, table: str, record: Any) -> Any:
    with store.unit_of_work() as uow:
        getattr(uow, table).add(record)
        uow.commit()
    return record


def rows(store: Any, table: str, **where: Any) -> list[Any]:
    with store.unit_of_work() as uow:
        return getattr(uow, table).find(**where)


def test_sendgrid_batch_with_one_bad_item(store: Any) -> None:
    batch = load("sendgrid_batch.json")
    bad = dict(batch[2], email="not-an-address", sg_event_id="sg_event_id_bad")
    batch.insert(3, bad)
    stats = run(processor(store), [batch])
    assert (stats.received, stats.processed, stats.failed, stats.deleted) == (1, 13, 1, 1)
    (failed,) = events(store, status="failed")
    assert (failed.provider, failed.event_type, failed.error_code) == (
        "sendgrid",
        "invalid",
        "invalid_payload",
    )
    assert failed.provider_message_id == "14c5d75ce93.dfd.64b469"
    assert failed.data == {"field": "$.email"}
    assert "not-an-address" not in (failed.error_detail or "")
    records = rows(store, "processing_records")
    assert sorted(r.item_index for r in records) == list(range(14))
    assert [r.status for r in sorted(records, key=lambda r: r.item_index)][3] == "failed"


def test_replaying_everything_twice_changes_nothing(store: Any) -> None:
    bodies: list[Any] = [load("sendgrid_batch.json")]
    bodies += [v for k, v in load("postmark.json").items() if not k.startswith("_")]
    bodies += [v for k, v in load("ses_notifications.json").items() if not k.startswith("_")]
    proc = processor(store)
    first = run(proc, bodies)
    before = table_counts(store)
    consents = {(c.address, c.scope): c for c in rows(store, "consents")}
    second = run(proc, bodies)
    assert second.processed == 0
    assert second.duplicates == first.processed
    after = table_counts(store)
    # Only the bookkeeping of the second delivery is new.
    assert {k: v for k, v in after.items() if k != "processing_records"} == {
        k: v for k, v in before.items() if k != "processing_records"
    }
    assert {(c.address, c.scope): c for c in rows(store, "consents")} == consents


def test_ses_raw_and_sns_wrapped_are_the_same_event(store: Any) -> None:
    signer = SnsSigner()
    proc = processor(store, certificate_fetcher=signer.fetch)
    bounce = payload("ses_events.json", "Bounce")
    stats = run(proc, [bounce, signer.wrap(bounce)])
    assert (stats.processed, stats.duplicates) == (1, 1)


def test_campaign_and_conversation_through_the_outbox(store: Any) -> None:
    lead = add(store, "leads", Lead(email="Recipient@Example.com", email_key="recipient@example.com"))
    campaign = add(store, "campaigns", Campaign(name="Onboarding", channel="email"))
    conversation = add(store, "conversations", Conversation(external_id="app:thread-1", channel="email"))
    add(
        store,
        "outbox",
        OutboundMessage(
            channel="email", to="recipient@example.com", body="Hi", status="sent", provider_message_id=SES_ID,
            lead_id=lead.id, campaign_id=campaign.id, conversation_id=conversation.id,
            created_at=SENT_AT, updated_at=SENT_AT,
        ),
    )  # fmt: skip
    run(processor(store), [payload("ses_events.json", n) for n in ("Send", "Delivery", "Open", "Click")])
    recorded = events(store, status="processed")
    assert {(e.lead_id, e.campaign_id, e.conversation_id) for e in recorded} == {
        (lead.id, campaign.id, conversation.id)
    }
    (outbox,) = rows(store, "outbox")
    # Opens and clicks do not change the delivery status; the latest delivery event does.
    assert outbox.status == "delivered"
    assert rows(store, "campaign_participants")[0].lead_id == lead.id
    (message,) = rows(store, "messages")
    assert (message.direction, message.status, message.conversation_id) == (
        "outbound",
        "delivered",
        conversation.id,
    )


def test_conversation_per_provider_message(store: Any) -> None:
    lead = add(store, "leads", Lead(email="jane@example.com", email_key="jane@example.com"))
    run(
        processor(store),
        [payload("ses_notifications.json", "BounceMulti"), payload("ses_notifications.json", "Delivery")],
    )
    conversations = {c.external_id: c for c in rows(store, "conversations")}
    assert set(conversations) == {
        "email:ses:00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
        "email:ses:0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000",
    }
    bounce_conversation = conversations[
        "email:ses:00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000"
    ]
    participants = rows(store, "participants", conversation_id=bounce_conversation.id)
    assert sorted(p.address for p in participants) == [
        "Zoe.Upper+Promo@bücher.example",
        "jane@example.com",
        "richard@example.com",
    ]
    assert {p.lead_id for p in participants if p.address == "jane@example.com"} == {lead.id}
    # Outbound events never create leads.
    assert len(rows(store, "leads")) == 1


@pytest.mark.parametrize(
    ("body", "campaign_name"),
    [
        (lambda: payload("ses_events.json", "Bounce"), "spring-sale"),  # SES mail.tags
        (lambda: payload("mailgun.json", "accepted"), "spring-sale"),  # Mailgun user-variables
        (lambda: payload("postmark.json", "Delivery"), "welcome-email"),  # Postmark Tag
        (lambda: load("sendgrid_batch.json")[5], "cat facts"),  # SendGrid category
    ],
)
def test_campaign_from_tags_and_metadata(store: Any, body: Any, campaign_name: str) -> None:
    campaign = add(store, "campaigns", Campaign(name=campaign_name, channel="email"))
    add(store, "campaigns", Campaign(name="Decoy", channel="email", priority=10))
    run(processor(store), [body()])
    (event,) = events(store)
    assert event.campaign_id == campaign.id


def test_campaign_id_custom_arg(store: Any) -> None:
    campaign = add(store, "campaigns", Campaign(id="c-123", name="By id", channel="email"))
    run(processor(store), [load("sendgrid_batch.json")[0]])
    assert events(store)[0].campaign_id == campaign.id


def test_no_campaign_without_a_hint(store: Any) -> None:
    add(store, "campaigns", Campaign(name="Unrelated", channel="email"))
    run(processor(store), [payload("ses_notifications.json", "Delivery")])
    assert events(store)[0].campaign_id is None


def test_lead_match_ignores_case_and_idn_form(store: Any) -> None:
    lead = add(
        store,
        "leads",
        Lead(email="zoe.upper+promo@bücher.example", email_key="zoe.upper+promo@bücher.example"),
    )
    run(processor(store), [payload("ses_notifications.json", "BounceMulti")])
    matched = [e for e in events(store) if e.lead_id == lead.id]
    assert len(matched) == 1 and matched[0].recipient == "zoe.upper+promo@bücher.example"


def test_inbound_reply_joins_the_sent_conversation(store: Any) -> None:
    campaign = add(store, "campaigns", Campaign(name="spring-sale", channel="email"))
    proc = processor(store)
    run(proc, [payload("ses_events.json", "Bounce")])  # a message that commproc knows of, tagged spring-sale
    run(proc, [payload("ses_notifications.json", "Received")])
    inbound = events(store, event_type="inbound")[0]
    (lead,) = rows(store, "leads")
    assert (lead.email, lead.email_key, lead.source) == ("sender@example.com", "sender@example.com", "email")
    conversation = rows(store, "conversations", external_id=f"email:ses:{SES_ID}")[0]
    assert inbound.conversation_id == conversation.id
    assert inbound.campaign_id == campaign.id
    message = [m for m in rows(store, "messages") if m.direction == "inbound"][0]
    assert (message.body, message.subject, message.sender) == (
        "Yes, please send me the details.",
        "Re: Example subject",
        "sender@example.com",
    )
    (thread,) = rows(store, "threads")
    assert (thread.lead_id, message.thread_id) == (lead.id, thread.id)
    (participation,) = rows(store, "campaign_participants")
    assert (participation.status, participation.response_count) == ("responded", 1)


def test_inbound_without_create_leads(store: Any) -> None:
    run(processor(store, {"create_leads": False}), [payload("ses_notifications.json", "Received")])
    assert rows(store, "leads") == []
    (event,) = events(store)
    assert event.event_type == "inbound" and event.lead_id is None
    assert rows(store, "conversations")[0].external_id == "email:ses:d6iitobk75ur44p8kdnnp7g2n800"


def test_malformed_bodies_are_recorded_and_acknowledged(store: Any) -> None:
    bodies = [
        "{not json",
        json.dumps({"hello": "world"}),
        json.dumps(payload("ses_events.json", "Bounce"))[:-5],
    ]
    stats = run(processor(store), bodies)
    assert (stats.failed, stats.deleted, stats.retried) == (3, 3, 0)
    codes = sorted(e.error_code for e in events(store))
    assert codes == ["invalid_payload", "invalid_payload", "unknown_event"]


def test_unknown_event_types_are_recorded_with_their_raw_event(store: Any) -> None:
    # Never guessed at: recorded as rejected with a reason of its own, the raw event kept.
    item = {"email": "a@example.com", "timestamp": 1513299569, "event": "brand_new", "sg_event_id": "x1"}
    stats = run(processor(store), [[item]])
    assert stats.failed == 1 and stats.processed == 0
    (event,) = events(store)
    assert (event.event_type, event.status, event.error_code) == ("unknown", "failed", "unknown_event_type")
    assert event.data["raw"] == item
    with store.unit_of_work() as uow:
        (record,) = uow.processing_records.find()
    assert (record.status, record.error_code) == ("failed", "unknown_event_type")


def test_event_data_holds_the_normalized_facts(store: Any) -> None:
    run(processor(store), [payload("ses_events.json", "Bounce")])
    (event,) = events(store)
    assert event.recipient == "recipient@example.com"
    assert event.data["bounce_class"] == "hard"
    assert event.data["smtp_status"] == "5.1.1"
    assert event.data["metadata"]["campaign"] == "spring-sale"
    assert "raw" not in event.data


def test_seed_helpers(memory_store: MemoryStore) -> None:
    proc = processor(memory_store)
    assert proc._determine_event_type(payload("postmark.json", "SpamComplaint")) == "complained"
    assert proc._determine_event_type(payload("ses_notifications.json", "SubscriptionSucceeded")) == "unknown"
    lead = add(memory_store, "leads", Lead(email="ann@example.com", email_key="ann@example.com"))
    with memory_store.unit_of_work() as uow:
        proc._local.uow, proc._local.services = uow, {}
        try:
            assert proc._get_lead_by_email("ANN@Example.COM") == lead
            assert proc._get_lead_by_email("bob@example.com") is None
            assert proc._get_lead_by_email("not an address") is None
        finally:
            proc._local.uow = None


def test_no_addresses_in_logs_at_info_and_above(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="commproc")
    batch = load("sendgrid_batch.json")
    batch.append(dict(batch[0], email="bad@@test.com", sg_event_id="bad"))
    run(processor(store), [batch, payload("ses_notifications.json", "BounceMulti"), "{oops"])
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert loud
    for text in loud:
        assert "@" not in text, text
    assert {r.name for r in caplog.records if r.name.startswith("commproc.email")} == {"commproc.email"}
