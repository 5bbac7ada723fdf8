"""Corpus cases whose expectation depends on state already in the store, replayed with --database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conformance_support import payloads, run_replay

from commproc_core.model import Campaign, Lead, OutboundMessage
from commproc_core.stores.sql import SQLStore

POSTMARK_UNSUBSCRIBE = "postmark-03-bounce-unsubscribe-without-email.json"
WHATSAPP_INBOUND = "sms-03-inbound-whatsapp.form"
WHATSAPP_USER_ID_ONLY = "sms-05-inbound-whatsapp-user-id-only.form"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, SQLStore]]:
    url = f"sqlite:///{tmp_path / 'conformance.db'}"
    store = SQLStore(url, auto_upgrade=True)
    store.check_schema()  # creates the database: replay refuses one that does not exist
    try:
        yield url, store
    finally:
        store.close()


def replay_into(url: str, channel: str, *files: Path) -> list[dict[str, Any]]:
    result = run_replay(channel, list(files), "--database", url)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_postmark_unsubscribe_without_email_resolves_its_recipient_through_the_outbound_message(
    database: tuple[str, SQLStore],
) -> None:
    url, store = database
    body = json.loads((payloads("email") / POSTMARK_UNSUBSCRIBE).read_text())
    with store.unit_of_work() as uow:
        lead = uow.leads.add(Lead(email="John.Doe@Example.com", email_key="john.doe@example.com"))
        uow.outbox.add(
            OutboundMessage(
                channel="email",
                to="John.Doe@Example.com",
                body="Spring sale",
                status="delivered",
                provider_message_id=body["MessageID"],
                lead_id=lead.id,
            )
        )
        uow.commit()
    (line,) = replay_into(url, "email", payloads("email") / POSTMARK_UNSUBSCRIBE)
    (event,) = line["events"]
    assert (line["outcome"], event["event_type"]) == ("processed", "unsubscribed")
    assert event["to"] == "john.doe@example.com"
    with store.unit_of_work() as uow:
        stored = uow.events.find_one(channel="email", event_type="unsubscribed")
        consent = uow.consents.find_one(address="john.doe@example.com", scope="marketing")
    assert stored is not None and stored.lead_id == lead.id
    assert stored.data["recipient_source"] == "outbound_message"
    assert consent is not None and consent.status == "opted_out"


def test_whatsapp_message_joins_the_whatsapp_nurturing_campaign(database: tuple[str, SQLStore]) -> None:
    url, store = database
    with store.unit_of_work() as uow:
        uow.campaigns.add(Campaign(name="SMS nurture", channel="sms", is_nurturing=True, priority=5))
        whatsapp = uow.campaigns.add(Campaign(name="WhatsApp nurture", channel="whatsapp", is_nurturing=True))
        uow.commit()
    (line,) = replay_into(url, "sms", payloads("sms") / WHATSAPP_INBOUND)
    assert line["events"][0]["channel"] == "whatsapp"
    with store.unit_of_work() as uow:
        stored = uow.events.find_one(channel="whatsapp", event_type="inbound_message")
    assert stored is not None and stored.campaign_id == whatsapp.id


def test_whatsapp_user_id_is_a_lead_key(database: tuple[str, SQLStore], tmp_path: Path) -> None:
    url, store = database
    first = payloads("sms") / WHATSAPP_USER_ID_ONLY
    # The same person writes again once their number is shared, the id beside it.
    later = tmp_path / "later.form"
    later.write_text(
        "MessageSid=SMc0f00000000000000000000000000099&AccountSid=AC0000000000000000000000000000c0f1"
        "&From=whatsapp%3A%2B14155550177&ExternalUserId=whatsapp%3AUS.13491208655302749999"
        "&To=whatsapp%3A%2B14155550199&Body=Table+for+two+please&NumMedia=0"
    )
    lines = replay_into(url, "sms", first, later)
    assert [line["events"][0]["record_status"] for line in lines] == ["processed", "processed"]
    with store.unit_of_work() as uow:
        events = uow.events.find(channel="whatsapp", event_type="inbound_message")
    lead_ids = {event.lead_id for event in events}
    assert len(events) == 2 and len(lead_ids) == 1 and None not in lead_ids
