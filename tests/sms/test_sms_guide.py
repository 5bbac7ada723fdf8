"""The guide's own SMS unit test, its validate-then-process flow, and the channel contract for SMSProcessor."""

from __future__ import annotations

import unittest
from pathlib import Path

import pytest
from sms_support import LEAD_NUMBER, OUR_NUMBER, form, inbound, sid, status

from commproc_core.errors import PermanentError, UnknownEventShape
from commproc_core.stores.sql import SQLStore
from commproc_core.testing import table_counts
from commproc_core.testing.channel_contract import ChannelContract
from commproc_sms import SMSProcessor


@pytest.fixture
def database(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'commproc.db'}"
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    return url


# The guide's unit test, with django.test.TestCase replaced by unittest's and the import path changed.
class SMSProcessorTestCase(unittest.TestCase):
    __test__ = False  # run by the tests below, which check what its outcome means

    def setUp(self):
        self.processor = SMSProcessor("test-queue-url")

    def test_validate_event(self):
        event_data = {"MessageSid": "SM1234567890abcdef", "AccountSid": "AC1234567890abcdef"}
        self.assertTrue(self.processor.validate_event(event_data))

    def test_process_event(self):
        # Test event processing
        pass


def run_guide_test(name: str) -> unittest.TestResult:
    result = unittest.TestResult()
    SMSProcessorTestCase(name).run(result)
    return result


def test_the_guides_unit_test_runs_and_says_why_its_event_is_refused(database) -> None:
    # The guide's validation looked at MessageSid and AccountSid only; commproc parses the
    # whole webhook, and two ids alone are neither an inbound message nor a status callback.
    result = run_guide_test("test_validate_event")
    assert result.testsRun == 1 and not result.failures
    ((_, text),) = result.errors
    assert "UnknownEventShape: MessageStatus: no MessageStatus (status callback) and no Body" in text
    assert "AttributeError" not in text
    assert run_guide_test("test_process_event").wasSuccessful()


def test_the_guides_unit_test_with_a_whole_webhook(database) -> None:
    processor = SMSProcessor("test-queue-url")
    event_data = {
        "MessageSid": "SM1234567890abcdef",
        "AccountSid": "AC1234567890abcdef",
        "From": LEAD_NUMBER,
        "To": OUR_NUMBER,
        "Body": "Hello",
    }
    assert processor.validate_event(event_data)
    (event,) = processor.validate_event(event_data)
    assert (event.event_type, event.dedupe_key) == ("inbound_message", "twilio:in:SM1234567890abcdef")


def test_the_guides_flow_validate_then_process(database) -> None:
    processor = SMSProcessor("test-queue-url")
    event_data = inbound("Hi, is this still available?")
    if processor.validate_event(event_data):
        communication_event = processor.process_event(event_data)
    assert communication_event.event_type == "inbound_message"
    assert communication_event.status == "processed"
    # Processed once, recorded in the store, whatever the number of calls.
    assert processor.process_event(event_data).id == communication_event.id
    assert processor.process_event(form(event_data)).id == communication_event.id
    store = SQLStore(database)
    try:
        counts = table_counts(store)
        assert (counts["events"], counts["messages"], counts["leads"]) == (1, 1, 1)
    finally:
        store.close()


def test_direct_calls_give_clear_errors(database) -> None:
    processor = SMSProcessor("test-queue-url")
    with pytest.raises(UnknownEventShape) as info:
        processor.validate_event({"MessageSid": "SM1"})
    assert info.value.field == "MessageStatus"
    with pytest.raises(PermanentError) as rejected:
        processor.process_event({"MessageSid": "SM1", "Body": "x"})
    assert rejected.value.code == "invalid_payload" and LEAD_NUMBER not in str(rejected.value)
    (parsed,) = processor.validate_event(inbound("hi"))
    with pytest.raises(RuntimeError, match=r"process_event\(SmsInbound\) runs inside a batch"):
        processor.process_event(parsed)
    with pytest.raises(TypeError, match="takes an EventPayload, or a provider payload"):
        processor.validate_event(42)


class TestSMSContract(ChannelContract):
    processor_class = SMSProcessor
    config = {"agent_mode": False}

    def new_store(self, directory: Path):
        return SQLStore(f"sqlite:///{directory / 'sms.db'}", auto_upgrade=True)

    def valid_bodies(self):
        outbound = sid()
        return [
            inbound("Hello there"),
            form(inbound("Is it still available?", sender="+14155550124")),
            inbound("STOP", sender="+14155550125"),
            status(outbound, "delivered"),
        ]

    def invalid_bodies(self):
        return [{"MessageSid": sid(), "Body": "no From or To"}, status(sid(), "delivrd"), "{not json"]
