"""The seed's custom processor shape on commproc's pipeline: SeedChannelProcessor."""

from __future__ import annotations

import json
import logging

import pytest

from commproc_core import ProcessorFactory
from commproc_core.errors import ConfigError, PermanentError
from commproc_core.model import CommunicationEvent
from commproc_core.pipeline.compat import SeedChannelProcessor as BaseChannelProcessor
from commproc_core.queues import MemoryQueue
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock, table_counts
from commproc_core.testing.channel_contract import ChannelContract


# The guide's custom processor; its elided ``CommunicationEvent.objects.create(...)`` is create_event.
class CustomProcessor(BaseChannelProcessor):
    def __init__(self, queue_url, config=None):
        super().__init__("custom", queue_url, config)

    def validate_event(self, event_data):
        required_fields = ["custom_field1", "custom_field2"]
        return all(field in event_data for field in required_fields)

    def process_event(self, event_data):
        return self.create_event(
            event_type="custom_event", provider_message_id=str(event_data["custom_field1"])
        )


class LeadProcessor(BaseChannelProcessor):
    """Uses the shared services, as the guide's SMS processor did, and returns its event unsaved."""

    def __init__(self, queue_url, config=None):
        super().__init__("custom", queue_url, config)

    def validate_event(self, event_data):
        return isinstance(event_data.get("phone"), str)

    def event_key(self, event_data):
        return f"custom:{event_data['id']}"

    def process_event(self, event_data):
        lead, _ = self.leads.get_or_create_by_phone(event_data["phone"], source="custom")
        conversation = self.get_or_create_conversation(f"custom:{lead.id}", lead_id=lead.id)
        return CommunicationEvent(
            channel="custom",
            provider="acme",
            event_type="note",
            lead_id=lead.id,
            conversation_id=conversation.id,
            recorded_at=self.now(),
        )


class Misbehaving(BaseChannelProcessor):
    """Misbehaves on purpose, per payload, to show each failure stays with its own message."""

    def __init__(self, queue_url, config=None):
        super().__init__("custom", queue_url, config)

    def validate_event(self, event_data):
        kind = event_data["kind"]
        if kind == "validate_raises":
            raise ValueError("cannot read this")
        if kind == "validate_says_yes":
            return "yes"
        return kind != "invalid"

    def process_event(self, event_data):
        kind = event_data["kind"]
        if kind == "process_raises":
            raise RuntimeError("boom")
        if kind == "process_returns_none":
            return None
        if kind == "saves_and_updates":
            event = self.uow.events.add(
                CommunicationEvent(
                    channel="custom", provider="custom", event_type="first", recorded_at=self.now()
                )
            )
            self.uow.events.update(CommunicationEvent(**{**_fields(event), "event_type": "second"}))
            return event
        return CommunicationEvent(
            channel="custom", provider="custom", event_type=kind, recorded_at=self.now()
        )


def _fields(event):
    import attrs

    return attrs.asdict(event, recurse=False)


@pytest.fixture
def setup():
    store, queue = MemoryStore(), MemoryQueue("memory://custom")
    factory = ProcessorFactory(store, queue_factory=lambda url: queue, clock=FixedClock())
    return store, queue, factory


def run(factory, cls, queue, bodies):
    factory.register_processor("custom", cls)
    processor = factory.get_processor("custom", queue.url, {"api_key": "k", "wait_time": 0})
    queue.send_batch([json.dumps(b) for b in bodies])
    return processor, processor.process_batch(processor.receive_messages(10, 0))


def test_the_guides_custom_processor_through_the_factory(setup) -> None:
    store, queue, factory = setup
    processor, report = run(
        factory,
        CustomProcessor,
        queue,
        [{"custom_field1": "a", "custom_field2": 1}, {"custom_field1": "b"}],
    )
    assert processor.channel_type == "custom" and processor.config == {"api_key": "k", "wait_time": 0}
    assert [o.outcome for o in report.outcomes] == ["processed", "rejected"]
    assert report.outcomes[1].reason == "validation_failed"
    assert report.stats.deleted == 2
    with store.unit_of_work() as uow:
        (event,) = uow.events.find(status="processed")
        # Saved by the processor itself (objects.create), recorded once, with its dedupe key.
        assert event.event_type == "custom_event" and event.provider_message_id == "a"
        assert event.dedupe_key.startswith("custom:sha256:")
        assert event.queue_message_id == report.outcomes[0].message_id
        assert uow.events.count(status="failed", error_code="validation_failed") == 1


def test_redelivery_and_resend_are_duplicates(setup) -> None:
    store, queue, factory = setup
    processor, _ = run(factory, LeadProcessor, queue, [{"id": "n1", "phone": "+14155550100"}])
    queue.send_batch([json.dumps({"id": "n1", "phone": "+14155550100", "retried": True})])
    second = processor.process_batch(processor.receive_messages(10, 0))
    assert [o.outcome for o in second.outcomes] == ["duplicate"]  # event_key: the provider's id
    counts = table_counts(store)
    assert (counts["leads"], counts["conversations"], counts["events"]) == (1, 1, 1)


def test_each_misbehaviour_stays_with_its_own_message(setup, caplog) -> None:
    store, queue, factory = setup
    kinds = [
        "fine",
        "invalid",
        "validate_raises",
        "validate_says_yes",
        "process_raises",
        "process_returns_none",
        "saves_and_updates",
    ]
    with caplog.at_level(logging.WARNING, logger="commproc"):
        _, report = run(factory, Misbehaving, queue, [{"kind": k} for k in kinds])
    got = {kind: (o.outcome, o.reason) for kind, o in zip(kinds, report.outcomes, strict=True)}
    assert got == {
        "fine": ("processed", None),
        "invalid": ("rejected", "validation_failed"),
        "validate_raises": ("retry", "internal_error"),
        "validate_says_yes": ("rejected", "contract_violation"),
        "process_raises": ("retry", "internal_error"),
        "process_returns_none": ("rejected", "contract_violation"),
        "saves_and_updates": ("processed", None),
    }
    # A retried message's cause is logged at WARNING: the exception type and its message.
    assert "ValueError: cannot read this" in caplog.text and "RuntimeError: boom" in caplog.text
    with store.unit_of_work() as uow:
        assert sorted(e.event_type for e in uow.events.find(status="processed")) == ["fine", "second"]


def test_direct_calls_outside_a_batch(setup) -> None:
    store, _, factory = setup
    factory.register_processor("custom", CustomProcessor)
    processor = factory.get_processor("custom", "memory://custom")
    # The guide's flow: validate, then process, by hand.
    event_data = {"custom_field1": "x", "custom_field2": 2}
    assert processor.validate_event(event_data) is True
    assert processor.validate_event({"custom_field1": "x"}) is False
    communication_event = processor.process_event(event_data)
    assert communication_event.provider_message_id == "x" and communication_event.status == "processed"
    assert processor.process_event(event_data).id == communication_event.id  # applied once
    with pytest.raises(PermanentError) as info:
        processor.process_event({"custom_field1": "x"})
    assert info.value.code == "validation_failed"
    with pytest.raises(RuntimeError, match="takes the payload"):
        processor.process_event(object())
    assert table_counts(store)["events"] == 2  # the event, and the recorded rejection


def test_config_is_free_form_but_known_keys_are_checked(setup) -> None:
    _, _, factory = setup
    factory.register_processor("custom", CustomProcessor)
    assert factory.validate_processor_config("custom", {"api_key": "k", "batch_size": 3}) == []
    assert factory.validate_processor_config("custom", {"api_key": "k", "batch_size": 30}) == [
        "must be at least 1 and at most 10, got 30 @ config.batch_size"
    ]
    with pytest.raises(ConfigError, match="config.batch_size"):
        factory.get_processor("custom", "memory://q", {"batch_size": "x"})
    with pytest.raises(ConfigError, match="channel_type must be a non-empty string"):
        BaseChannelProcessor.__init__(CustomProcessor.__new__(CustomProcessor), "", None)


def test_processor_without_both_methods_cannot_be_made() -> None:
    class Half(BaseChannelProcessor):
        def validate_event(self, event_data):
            return True

    with pytest.raises(TypeError, match="abstract"):
        Half("half", "memory://q", store=MemoryStore())


class TestSeedContract(ChannelContract):
    def make_processor(self, store, queue, clock):
        factory = ProcessorFactory(store, queue_factory=lambda url: queue, clock=clock)
        factory.register_processor("custom", LeadProcessor)
        return factory.get_processor("custom", queue.url)

    def valid_bodies(self):
        return [{"id": "v1", "phone": "+14155550100"}, {"id": "v2", "phone": "+14155550101"}]

    def invalid_bodies(self):
        return [{"id": "v3"}, "{not json"]
