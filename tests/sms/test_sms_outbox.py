"""TwilioSender against a local HTTP server, and OutboxDispatcher sending committed replies."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qsl

import pytest
from sms_support import (
    ACCOUNT,
    LEAD_NUMBER,
    OUR_NUMBER,
    SERVICE,
    Harness,
    RecordingResponder,
    http_server,
    inbound,
    json_answer,
    sid,
    status,
)

from commproc_core.model import CommunicationEvent, Consent, OutboundMessage
from commproc_core.ports import SendResult
from commproc_core.services.outbox import DispatchCounts, OutboxDispatcher, SendError
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock
from commproc_sms.sender import TwilioSender

TOKEN = "auth-token-secret"


def twilio_created(message_sid: str):
    def answer(method, path, headers, body):
        return json_answer(
            201,
            {
                "sid": message_sid,
                "status": "queued",
                "account_sid": ACCOUNT,
                "api_version": "2010-04-01",
                "direction": "outbound-api",
                "num_segments": "1",
                "error_code": None,
            },
        )

    return answer


def twilio_error(code: int, http: int = 400, message: str = "Attempt to send to unsubscribed recipient"):
    return lambda *_: json_answer(
        http,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": http,
        },
    )


def outbound(**fields) -> OutboundMessage:
    values = {
        "channel": "sms",
        "to": LEAD_NUMBER,
        "sender": OUR_NUMBER,
        "body": "Hello",
        "reason": "agent_reply",
    }
    values.update(fields)
    return OutboundMessage(**values)


# -- TwilioSender ---------------------------------------------------------------------------------


def test_sender_posts_to_the_messages_api():
    new_sid = sid()
    with http_server(twilio_created(new_sid)) as (url, seen):
        sender = TwilioSender(ACCOUNT, TOKEN, base_url=url, status_callback="https://hooks.example/status")
        result = sender.send(outbound())
    assert result == SendResult(provider_message_id=new_sid, status="queued")
    (call,) = seen
    assert call["path"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    user, _, password = base64.b64decode(call["headers"]["authorization"].split()[1]).decode().partition(":")
    assert (user, password) == (ACCOUNT, TOKEN)
    assert call["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(call["body"].decode())) == {
        "To": LEAD_NUMBER,
        "From": OUR_NUMBER,
        "Body": "Hello",
        "StatusCallback": "https://hooks.example/status",
    }
    assert TOKEN not in repr(sender)


def test_sender_prefers_the_messaging_service_and_prefixes_whatsapp():
    with http_server(twilio_created(sid())) as (url, seen):
        sender = TwilioSender(ACCOUNT, TOKEN, base_url=url, api_key_sid="SK123")
        sender.send(outbound(messaging_service_sid=SERVICE))
        sender.send(outbound(channel="whatsapp"))
    first, second = (dict(parse_qsl(c["body"].decode())) for c in seen)
    assert first["MessagingServiceSid"] == SERVICE and "From" not in first
    assert (second["To"], second["From"]) == (f"whatsapp:{LEAD_NUMBER}", f"whatsapp:{OUR_NUMBER}")
    assert base64.b64decode(seen[0]["headers"]["authorization"].split()[1]).decode().startswith("SK123:")


def test_sender_error_21610():
    with http_server(twilio_error(21610)) as (url, _):
        with pytest.raises(SendError) as caught:
            TwilioSender(ACCOUNT, TOKEN, base_url=url).send(outbound())
    error = caught.value
    assert (error.code, error.status, error.retryable, error.recipient_opted_out) == (
        "21610",
        400,
        False,
        True,
    )
    assert "unsubscribed recipient" in str(error)


@pytest.mark.parametrize(
    ("http", "retryable"), [(429, True), (503, True), (500, True), (401, False), (404, False)]
)
def test_sender_http_errors(http, retryable):
    with http_server(twilio_error(20003 if http == 401 else 20500, http, "nope")) as (url, _):
        with pytest.raises(SendError) as caught:
            TwilioSender(ACCOUNT, TOKEN, base_url=url).send(outbound())
    assert caught.value.retryable is retryable and caught.value.status == http


def test_sender_timeout_is_not_retried():
    def slow(*_):
        time.sleep(0.5)
        return json_answer(201, {"sid": "SMlate", "status": "queued"})

    with http_server(slow) as (url, _):
        with pytest.raises(SendError) as caught:
            TwilioSender(ACCOUNT, TOKEN, base_url=url, timeout=0.1).send(outbound())
    assert caught.value.code == "timeout" and not caught.value.retryable


def test_sender_needs_an_address():
    with pytest.raises(SendError, match="neither a sender"):
        TwilioSender(ACCOUNT, TOKEN).form(outbound(sender=None))


# -- OutboxDispatcher ----------------------------------------------------------------------------------


class FakeSender:
    def __init__(self, *results):
        self.results = list(results)
        self.sent: list[OutboundMessage] = []

    def send(self, message):
        self.sent.append(message)
        result = (
            self.results.pop(0) if self.results else SendResult(provider_message_id=sid(), status="queued")
        )
        if isinstance(result, Exception):
            raise result
        return result


def test_stop_then_dispatch_then_status_callbacks(store):
    """The whole loop: keyword reply queued, sent through Twilio's API, then delivered."""
    new_sid = sid()
    h = Harness(store)
    h.run(inbound("STOP"))
    with http_server(twilio_created(new_sid)) as (url, seen):
        counts = OutboxDispatcher(
            h.store, TwilioSender(ACCOUNT, TOKEN, base_url=url), clock=h.clock
        ).dispatch()
    assert counts == DispatchCounts(sent=1)
    assert len(seen) == 1
    row = h.one("outbox")
    assert (row.status, row.provider_message_id, row.attempts) == ("queued", new_sid, 1)
    # The keyword confirmation goes out although the recipient just opted out.
    assert h.one("messages", id=row.id).provider_message_id == new_sid
    h.run(status(new_sid, "sent"), status(new_sid, "delivered"))
    assert h.one("outbox").status == "delivered"
    assert h.one("messages", id=row.id).status == "delivered"
    # Nothing is sent twice.
    assert OutboxDispatcher(h.store, FakeSender(), clock=h.clock).dispatch() == DispatchCounts()


def test_21610_marks_consent_opted_out(store):
    h = Harness(store, config={"agent_mode": True}, agent_responder=RecordingResponder())
    h.run(inbound("hello", MessagingServiceSid=SERVICE))
    with http_server(twilio_error(21610)) as (url, _):
        counts = OutboxDispatcher(
            h.store, TwilioSender(ACCOUNT, TOKEN, base_url=url), clock=h.clock
        ).dispatch()
    assert counts == DispatchCounts(failed=1)
    row = h.one("outbox")
    assert (row.status, row.error_code) == ("failed", "21610")
    consent = h.one("consents")
    assert (consent.address, consent.channel, consent.scope, consent.status, consent.source) == (
        LEAD_NUMBER,
        "sms",
        SERVICE,
        "opted_out",
        "provider",
    )
    # The next message is not answered by the agent.
    h.run(inbound("hello again", MessagingServiceSid=SERVICE))
    assert len(h.rows("outbox")) == 1


def test_retryable_failure_stays_pending_until_max_attempts():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        uow.outbox.add(outbound())
        uow.commit()
    failing = SendError("busy", code="http_503", status=503, retryable=True)
    sender = FakeSender(failing, failing, failing)
    dispatcher = OutboxDispatcher(store, sender, clock=clock, max_attempts=3)
    assert dispatcher.dispatch() == DispatchCounts(retried=1)
    assert dispatcher.dispatch() == DispatchCounts(retried=1)
    assert dispatcher.dispatch() == DispatchCounts(failed=1)
    with store.unit_of_work() as uow:
        row = uow.outbox.find_one()
    assert row is not None and (row.status, row.attempts, row.error_code) == ("failed", 3, "http_503")


def test_opted_out_after_queueing_is_suppressed_but_keyword_replies_go():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        uow.outbox.add(outbound(reason="agent_reply"))
        uow.outbox.add(outbound(reason="keyword_reply", body="You have been unsubscribed"))
        uow.consents.add(
            Consent(
                address=LEAD_NUMBER, channel="sms", scope=OUR_NUMBER, status="opted_out", source="keyword"
            )
        )
        uow.commit()
    sender = FakeSender()
    assert OutboxDispatcher(store, sender, clock=clock).dispatch() == DispatchCounts(sent=1, suppressed=1)
    assert [m.reason for m in sender.sent] == ["keyword_reply"]


def test_unexpected_sender_error_is_failed_not_retried():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        uow.outbox.add(outbound())
        uow.commit()
    assert OutboxDispatcher(store, FakeSender(KeyError("bug")), clock=clock).dispatch() == DispatchCounts(
        failed=1
    )


def test_stuck_rows_are_listed_not_resent():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        uow.outbox.add(outbound(status="sending", updated_at=clock.now()))
        uow.commit()
    dispatcher = OutboxDispatcher(store, FakeSender(), clock=clock)
    assert dispatcher.dispatch() == DispatchCounts()
    assert dispatcher.stuck(300) == []
    clock.advance(600)
    assert len(dispatcher.stuck(300)) == 1


def test_limit_and_order():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        for i in range(5):
            clock.advance(1)
            uow.outbox.add(outbound(body=f"m{i}", created_at=clock.now()))
        uow.commit()
    sender = FakeSender()
    assert OutboxDispatcher(store, sender, clock=clock).dispatch(limit=3) == DispatchCounts(sent=3)
    assert [m.body for m in sender.sent] == ["m0", "m1", "m2"]


def test_a_row_claimed_by_another_dispatcher_is_skipped():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        row = uow.outbox.add(outbound())
        # What another dispatcher that read the row as pending at the same time committed first.
        uow.events.add(
            CommunicationEvent(
                channel="sms",
                provider="outbox",
                event_type="outbound_send",
                dedupe_key=f"outbox:send:{row.id}:1",
            )
        )
        uow.commit()
    sender = FakeSender()
    assert OutboxDispatcher(store, sender, clock=clock).dispatch() == DispatchCounts(skipped=1)
    assert sender.sent == []


def test_each_send_attempt_is_recorded():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        row = uow.outbox.add(outbound())
        uow.commit()
    busy = SendError("busy", code="http_503", status=503, retryable=True)
    dispatcher = OutboxDispatcher(store, FakeSender(busy), clock=clock)
    dispatcher.dispatch()
    dispatcher.dispatch()
    with store.unit_of_work() as uow:
        keys = sorted(e.dedupe_key for e in uow.events.find(event_type="outbound_send"))
    assert keys == [f"outbox:send:{row.id}:1", f"outbox:send:{row.id}:2"]
