"""The store contract: one test suite every Store implementation must pass.

Subclass :class:`StoreContract` in a test module and provide a ``store``
fixture returning a fresh, empty store::

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self):
            return MyStore(...)

The in-memory and SQL stores of commproc run exactly these tests.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from commproc_core import model
from commproc_core.errors import RecordNotFound, UniqueViolation
from commproc_core.ports import Store
from commproc_core.stores.spec import TABLES, Range

__all__ = ["StoreContract", "sample_record"]

_T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def sample_record(table: str, **overrides: Any) -> Any:
    """A record for ``table`` with every field set to a non-default value."""
    builders: dict[str, Callable[[], Any]] = {
        "leads": lambda: model.Lead(
            phone="+14155550100",
            email="Ann@Example.com",
            email_key="ann@example.com",
            whatsapp_id="US.13491208655302741918",
            first_name="Ann",
            last_name="Lee",
            status="contacted",
            source="sms",
            created_at=_T0,
            updated_at=_T0,
            metadata={"tier": "gold", "n": 3, "nested": {"a": [1, 2]}},
        ),
        "campaigns": lambda: model.Campaign(
            name="spring",
            channel="sms",
            status="active",
            is_nurturing=True,
            priority=5,
            address="+14155550199",
            messaging_service_sid="MG123",
            keywords=("JOIN", "SPRING"),
            created_at=_T0,
            updated_at=_T0,
            metadata={"owner": "ops"},
        ),
        "campaign_participants": lambda: model.CampaignParticipant(
            campaign_id="c1",
            lead_id="l1",
            status="responded",
            response_count=2,
            joined_at=_T0,
            last_response_at=_T0,
        ),
        "conversations": lambda: model.Conversation(
            external_id="ext-1",
            channel="sms",
            lead_id="l1",
            campaign_id="c1",
            subject="Hi",
            created_at=_T0,
            updated_at=_T0,
            last_message_at=_T0,
            metadata={"k": "v"},
        ),
        "participants": lambda: model.Participant(
            conversation_id="conv1",
            address="+14155550100",
            role="lead",
            lead_id="l1",
            display_name="Ann",
            created_at=_T0,
        ),
        "threads": lambda: model.Thread(
            lead_id="l1",
            channel="sms",
            conversation_id="conv1",
            created_at=_T0,
            updated_at=_T0,
            last_message_at=_T0,
        ),
        "messages": lambda: model.Message(
            conversation_id="conv1",
            thread_id="t1",
            direction="inbound",
            channel="mms",
            provider="twilio",
            provider_message_id="SM1",
            sender="+14155550100",
            recipient="+14155550199",
            body="Héllo 👋",
            subject=None,
            media=(model.Media(url="https://example.com/a.jpg", content_type="image/jpeg"),),
            status="received",
            created_at=_T0,
            updated_at=_T0,
            metadata={"segments": 1},
        ),
        "events": lambda: model.CommunicationEvent(
            channel="sms",
            provider="twilio",
            event_type="inbound",
            dedupe_key="twilio:in:SM1",
            provider_message_id="SM1",
            sender="+14155550100",
            recipient="+14155550199",
            lead_id="l1",
            occurred_at=_T0,
            recorded_at=_T0,
            data={"keyword_action": None},
        ),
        "processing_records": lambda: model.ProcessingRecord(
            channel="sms",
            queue_message_id="q1",
            item_index=0,
            status="processed",
            attempts=2,
            dedupe_key="twilio:in:SM1",
            received_at=_T0,
            processed_at=_T0,
            duration_ms=1.5,
        ),
        "channel_configs": lambda: model.ChannelConfig(
            channel_type="sms",
            queue_url="https://sqs.us-east-1.amazonaws.com/1/sms",
            config={"agent_mode": True, "agent_config": {"prompt": "Be kind", "context": {}}},
            created_at=_T0,
            updated_at=_T0,
        ),
        "consents": lambda: model.Consent(
            address="+14155550100",
            channel="sms",
            scope="MG123",
            status="opted_out",
            source="keyword",
            reason="STOP",
            lead_id="l1",
            created_at=_T0,
            updated_at=_T0,
        ),
        "agent_events": lambda: model.AgentEvent(
            conversation_id="conv1",
            message_id="m1",
            lead_id="l1",
            responder="template",
            prompt="Be kind",
            reply="Hello!",
            latency_ms=12.5,
            outcome="replied",
            delivery={"to": "+14155550100", "channel": "sms"},
            created_at=_T0,
        ),
        "outbox": lambda: model.OutboundMessage(
            channel="sms",
            to="+14155550100",
            sender="+14155550199",
            body="Bye",
            reason="keyword_reply",
            provider_message_id="SM9",
            created_at=_T0,
            updated_at=_T0,
        ),
        "seen_tokens": lambda: model.SeenToken(
            scope="mailgun",
            token=hashlib.sha256(b"sample").hexdigest(),
            expires_at=_T0 + timedelta(minutes=10),
            created_at=_T0,
        ),
    }
    return attrs.evolve(builders[table](), **overrides)


class StoreContract:
    """Tests every Store must pass; subclasses supply a ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Store:  # pragma: no cover - subclasses override
        raise NotImplementedError("subclasses provide a store fixture")

    @pytest.mark.parametrize("table", sorted(TABLES))
    def test_round_trip_every_table(self, store: Store, table: str) -> None:
        record = sample_record(table)
        with store.unit_of_work() as uow:
            getattr(uow, table).add(record)
            uow.commit()
        with store.unit_of_work() as uow:
            assert getattr(uow, table).get(record.id) == record

    def test_exit_without_commit_rolls_back(self, store: Store) -> None:
        lead = sample_record("leads")
        with store.unit_of_work() as uow:
            uow.leads.add(lead)
        with store.unit_of_work() as uow:
            assert uow.leads.get(lead.id) is None

    def test_exception_rolls_back_every_table(self, store: Store) -> None:
        lead = sample_record("leads")
        event = sample_record("events")
        with pytest.raises(RuntimeError), store.unit_of_work() as uow:
            uow.leads.add(lead)
            uow.events.add(event)
            raise RuntimeError("boom")
        with store.unit_of_work() as uow:
            assert uow.leads.get(lead.id) is None
            assert uow.events.get(event.id) is None

    def test_rollback_undoes_update_and_delete(self, store: Store) -> None:
        lead = sample_record("leads")
        other = sample_record("leads", phone="+14155550101", email_key=None, whatsapp_id=None)
        with store.unit_of_work() as uow:
            uow.leads.add(lead)
            uow.leads.add(other)
            uow.commit()
        with store.unit_of_work() as uow:
            uow.leads.update(attrs.evolve(lead, status="won"))
            assert uow.leads.delete(other.id)
            assert uow.leads.get(other.id) is None
            uow.rollback()
            assert uow.leads.get(lead.id) == lead
            assert uow.leads.get(other.id) == other

    def test_commit_then_keep_using(self, store: Store) -> None:
        a = sample_record("leads")
        b = sample_record("leads", phone="+14155550102", email_key=None, whatsapp_id=None)
        with store.unit_of_work() as uow:
            uow.leads.add(a)
            uow.commit()
            uow.leads.add(b)
        with store.unit_of_work() as uow:
            assert uow.leads.get(a.id) == a
            assert uow.leads.get(b.id) is None

    def test_savepoint_undoes_only_its_writes(self, store: Store) -> None:
        outer = sample_record("leads")
        inner = sample_record("leads", phone="+14155550103", email_key=None, whatsapp_id=None)
        with store.unit_of_work() as uow:
            uow.leads.add(outer)
            with pytest.raises(ValueError), uow.savepoint():
                uow.leads.add(inner)
                raise ValueError("undo inner")
            assert uow.leads.get(inner.id) is None
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.leads.get(outer.id) == outer
            assert uow.leads.get(inner.id) is None

    def test_savepoint_keeps_writes_on_success(self, store: Store) -> None:
        lead = sample_record("leads")
        with store.unit_of_work() as uow:
            with uow.savepoint():
                uow.leads.add(lead)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.leads.get(lead.id) == lead

    def test_unique_violation_inside_savepoint_leaves_transaction_usable(self, store: Store) -> None:
        first = sample_record("events")
        clash = sample_record("events", id=model.new_id())
        after = sample_record("events", id=model.new_id(), dedupe_key="k-after")
        with store.unit_of_work() as uow:
            uow.events.add(first)
            with pytest.raises(UniqueViolation) as info, uow.savepoint():
                uow.events.add(clash)
            assert info.value.key == "dedupe_key"
            uow.events.add(after)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.events.count() == 2

    @pytest.mark.parametrize(
        ("table", "key", "fields"),
        [(spec.name, key.name, key.fields) for spec in TABLES.values() for key in spec.unique],
    )
    def test_unique_keys_enforced(self, store: Store, table: str, key: str, fields: tuple[str, ...]) -> None:
        first = sample_record(table)
        second = sample_record(table, id=model.new_id())
        # Other unique keys of the table get distinct values so only `key` clashes.
        for other in TABLES[table].unique:
            if other.name != key:
                second = attrs.evolve(second, **{f: None for f in other.fields if f not in fields})
        with store.unit_of_work() as uow:
            repo = getattr(uow, table)
            repo.add(first)
            uow.commit()
        with store.unit_of_work() as uow:
            repo = getattr(uow, table)
            with pytest.raises(UniqueViolation) as info, uow.savepoint():
                repo.add(second)
            assert info.value.key == key
            assert info.value.table == table

    def test_null_values_do_not_clash(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            uow.leads.add(model.Lead(email="a@example.com", email_key="a@example.com"))
            uow.leads.add(model.Lead(email="b@example.com", email_key="b@example.com"))
            uow.leads.add(model.Lead(phone="+14155550100"))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.leads.count() == 3
            assert uow.leads.count(phone=None) == 2

    def test_partial_unique_key_only_among_open_threads(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            first = uow.threads.add(model.Thread(lead_id="l1", channel="sms"))
            with pytest.raises(UniqueViolation), uow.savepoint():
                uow.threads.add(model.Thread(lead_id="l1", channel="sms"))
            uow.threads.add(model.Thread(lead_id="l1", channel="email"))
            uow.threads.update(attrs.evolve(first, status="closed"))
            uow.threads.add(model.Thread(lead_id="l1", channel="sms"))
            uow.threads.add(model.Thread(lead_id="l1", channel="sms", status="closed"))
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.threads.count(lead_id="l1", channel="sms") == 3
            assert uow.threads.count(lead_id="l1", channel="sms", status="open") == 1

    def test_update_enforces_unique_keys(self, store: Store) -> None:
        a = model.Lead(phone="+14155550100")
        b = model.Lead(phone="+14155550101")
        with store.unit_of_work() as uow:
            uow.leads.add(a)
            uow.leads.add(b)
            with pytest.raises(UniqueViolation), uow.savepoint():
                uow.leads.update(attrs.evolve(b, phone=a.phone))
            uow.leads.update(attrs.evolve(b, phone="+14155550102"))
            uow.commit()
        with store.unit_of_work() as uow:
            found = uow.leads.find_one(phone="+14155550102")
            assert found is not None
            assert found.id == b.id

    def test_update_unknown_record(self, store: Store) -> None:
        with store.unit_of_work() as uow, pytest.raises(RecordNotFound):
            uow.leads.update(model.Lead(phone="+14155550100"))

    def test_add_same_id_twice(self, store: Store) -> None:
        lead = model.Lead(phone="+14155550100")
        with store.unit_of_work() as uow:
            uow.leads.add(lead)
            with pytest.raises(UniqueViolation), uow.savepoint():
                uow.leads.add(attrs.evolve(lead, phone="+14155550101"))

    def test_get_or_create(self, store: Store) -> None:
        conv = model.Conversation(external_id="x-1", channel="sms")
        with store.unit_of_work() as uow:
            created, was_created = uow.conversations.get_or_create(conv, key="external_id")
            assert was_created
            assert created == conv
            again, was_created = uow.conversations.get_or_create(
                model.Conversation(external_id="x-1", channel="email"), key="external_id"
            )
            assert not was_created
            assert again == conv
            uow.commit()
        with store.unit_of_work() as uow:
            found, was_created = uow.conversations.get_or_create(
                model.Conversation(external_id="x-1", channel="email"), key="external_id"
            )
            assert not was_created
            assert found.id == conv.id
            assert uow.conversations.count() == 1

    def test_get_or_create_partial_key(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            t1, c1 = uow.threads.get_or_create(model.Thread(lead_id="l", channel="sms"), key="open_thread")
            t2, c2 = uow.threads.get_or_create(model.Thread(lead_id="l", channel="sms"), key="open_thread")
            assert (c1, c2) == (True, False)
            assert t1.id == t2.id
            uow.commit()

    def test_get_or_create_needs_key_values(self, store: Store) -> None:
        with store.unit_of_work() as uow, pytest.raises(ValueError):
            uow.leads.get_or_create(model.Lead(), key="phone")

    def test_get_or_create_unknown_key(self, store: Store) -> None:
        with store.unit_of_work() as uow, pytest.raises(KeyError):
            uow.leads.get_or_create(model.Lead(phone="+1"), key="nope")

    def test_find_order_limit_and_range(self, store: Store) -> None:
        with store.unit_of_work() as uow:
            for i in range(5):
                uow.events.add(
                    model.CommunicationEvent(
                        channel="sms",
                        provider="twilio",
                        event_type="inbound" if i % 2 else "status",
                        dedupe_key=f"k{i}",
                        recorded_at=_T0 + timedelta(minutes=i),
                        occurred_at=None if i == 4 else _T0,
                    )
                )
            uow.commit()
        with store.unit_of_work() as uow:
            newest = uow.events.find(order_by="recorded_at", descending=True, limit=2)
            assert [e.dedupe_key for e in newest] == ["k4", "k3"]
            oldest = uow.events.find(order_by="recorded_at")
            assert [e.dedupe_key for e in oldest] == ["k0", "k1", "k2", "k3", "k4"]
            assert uow.events.count(event_type="inbound") == 2
            window = Range(_T0 + timedelta(minutes=1), _T0 + timedelta(minutes=3))
            assert sorted(str(e.dedupe_key) for e in uow.events.find(recorded_at=window)) == ["k1", "k2"]
            assert uow.events.count(recorded_at=Range(low=_T0 + timedelta(minutes=3))) == 2
            assert uow.events.count(channel="sms", event_type="status") == 3
            assert uow.events.find_one(dedupe_key="k2") is not None
            assert uow.events.find_one(dedupe_key="nope") is None
            assert uow.events.count(occurred_at=None) == 1

    def test_find_unknown_field(self, store: Store) -> None:
        with store.unit_of_work() as uow, pytest.raises(ValueError):
            uow.leads.find(nope=1)

    def test_delete(self, store: Store) -> None:
        lead = model.Lead(phone="+14155550100")
        with store.unit_of_work() as uow:
            uow.leads.add(lead)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.leads.delete(lead.id)
            assert not uow.leads.delete(lead.id)
            uow.commit()
        with store.unit_of_work() as uow:
            assert uow.leads.get(lead.id) is None
            uow.leads.add(model.Lead(phone="+14155550100"))
            uow.commit()

    def test_timestamps_stay_aware_utc(self, store: Store) -> None:
        local = datetime(2026, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))
        event = model.CommunicationEvent(
            channel="email", provider="ses", event_type="delivered", dedupe_key="tz", occurred_at=local
        )
        with store.unit_of_work() as uow:
            uow.events.add(event)
            uow.commit()
        with store.unit_of_work() as uow:
            got = uow.events.get(event.id)
            assert got is not None
            assert got.occurred_at == local
            assert got.occurred_at is not None
            assert got.occurred_at.utcoffset() == timedelta(0)

    def test_concurrent_get_or_create_makes_one_row(self, store: Store) -> None:
        results: list[bool] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                with store.unit_of_work() as uow:
                    _, created = uow.conversations.get_or_create(
                        model.Conversation(external_id="race", channel="sms"), key="external_id"
                    )
                    uow.commit()
                    results.append(created)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert sorted(results) == [False, False, False, True]
        with store.unit_of_work() as uow:
            assert uow.conversations.count(external_id="race") == 1

    def test_ping(self, store: Store) -> None:
        store.ping()
