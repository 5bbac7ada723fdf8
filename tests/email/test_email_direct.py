"""EmailProcessor called the guide's way (validate_event and process_event by hand) and its channel contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from email_support import load, payload

from commproc_core.errors import SignatureError, UnknownEventShape
from commproc_core.stores.sql import SQLStore
from commproc_core.testing.channel_contract import ChannelContract
from commproc_email import EmailProcessor


@pytest.fixture
def database(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'commproc.db'}"
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    return url


def test_validate_then_process_by_hand(database) -> None:
    processor = EmailProcessor("test-queue-url")
    event_data = payload("postmark.json", "HardBounce")
    (event,) = processor.validate_event(event_data)
    assert (event.provider, event.event_type) == ("postmark", "bounced")
    communication_event = processor.process_event(event_data)
    assert communication_event.event_type == "bounced" and communication_event.status == "processed"
    assert processor.process_event(event_data).id == communication_event.id
    store = SQLStore(database)
    try:
        with store.unit_of_work() as uow:
            assert uow.consents.count(status="suppressed") == 1
    finally:
        store.close()


def test_a_list_body_gives_every_event(database) -> None:
    events = EmailProcessor("test-queue-url").validate_event(load("sendgrid_batch.json")[:3])
    assert [e.event_type for e in events] == ["queued", "deferred", "delivered"]


def test_direct_calls_keep_the_channels_rules(database) -> None:
    processor = EmailProcessor("test-queue-url", {"sns_signature": "required"})
    # Signature policy still applies: an SES event must come in a signed SNS notification.
    with pytest.raises(SignatureError):
        processor.validate_event(payload("ses_events.json", "Bounce"))
    with pytest.raises(UnknownEventShape, match="no email provider recognised"):
        EmailProcessor("test-queue-url").validate_event({"nothing": 1})


class TestEmailContract(ChannelContract):
    processor_class = EmailProcessor

    def new_store(self, directory: Path):
        return SQLStore(f"sqlite:///{directory / 'email.db'}", auto_upgrade=True)

    def valid_bodies(self):
        return [
            payload("ses_events.json", "Delivery"),
            payload("ses_events.json", "Bounce"),
            load("sendgrid_batch.json")[:4],
            payload("mailgun.json", "delivered"),
            payload("postmark.json", "SpamComplaint"),
        ]

    def invalid_bodies(self):
        return [{"nothing": 1}, {"eventType": "Bounce"}, {"event-data": {}}, {"RecordType": "Weird"}, "{oops"]
