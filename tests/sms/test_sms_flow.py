"""SMSProcessor end to end through BaseChannelProcessor, on the memory and SQLite stores."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sms_support import (
    DOCUMENTED_STATUSES,
    LEAD_NUMBER,
    OUR_NUMBER,
    SERVICE,
    Harness,
    RecordingResponder,
    inbound,
    payload,
    sid,
    status,
)

from commproc_core.model import Campaign, CampaignParticipant, Lead, OutboundMessage
from commproc_core.services.keywords import DEFAULT_KEYWORD_LANGUAGES

EN = DEFAULT_KEYWORD_LANGUAGES["en"]


def consent(h: Harness, address: str = LEAD_NUMBER, scope: str = OUR_NUMBER):
    rows = h.rows("consents", address=address, scope=scope)
    return rows[0] if rows else None


# -- consent keywords ---------------------------------------------------------------------------


def test_stop_opts_out_with_exactly_one_confirmation(store):
    h = Harness(store, config={"agent_mode": True}, agent_responder=RecordingResponder())
    stop = inbound("STOP")
    stats = h.run(stop)
    assert stats["processed"] == 1
    assert consent(h).status == "opted_out"
    assert consent(h).source == "keyword"
    (reply,) = h.rows("outbox")
    assert (reply.reason, reply.body, reply.to, reply.sender, reply.channel) == (
        "keyword_reply",
        EN.opt_out_reply,
        LEAD_NUMBER,
        OUR_NUMBER,
        "sms",
    )
    assert h.rows("agent_events") == []
    event = h.one("events", event_type="keyword_opt_out")
    assert event.data["tier"] == "exact" and event.data["replied"] is True
    primary = h.one("events", dedupe_key=f"twilio:in:{stop['MessageSid']}")
    assert primary.data["route"] == "keyword"
    # The STOP message itself is on record, and so is the confirmation in the conversation.
    directions = sorted(m.direction for m in h.rows("messages"))
    assert directions == ["inbound", "outbound"]

    # Redelivered (SQS at least once, or Twilio retrying): nothing new.
    before = {t: len(h.rows(t)) for t in ("outbox", "events", "messages", "consents", "agent_events")}
    again = h.run(stop)
    assert (again["processed"], again["duplicates"]) == (0, 1)
    assert {t: len(h.rows(t)) for t in before} == before


def test_second_stop_from_an_opted_out_sender_gets_no_second_confirmation(store):
    h = Harness(store)
    h.run(inbound("STOP"))
    h.run(inbound("Stop texting me"))
    assert len(h.rows("outbox")) == 1
    assert consent(h).status == "opted_out"


def test_yes_from_an_opted_in_sender_is_an_ordinary_message(store):
    responder = RecordingResponder()
    h = Harness(store, config={"agent_mode": True}, agent_responder=responder)
    h.run(inbound("YES"))
    assert consent(h) is None
    assert h.rows("events", event_type="keyword_opt_in") == []
    (reply,) = h.rows("outbox")
    assert reply.reason == "agent_reply"
    assert len(responder.requests) == 1


def test_yes_after_stop_opts_back_in(store):
    h = Harness(store)
    h.run(inbound("STOP"))
    h.run(inbound("yes"))
    assert consent(h).status == "opted_in"
    assert [m.reason for m in h.rows("outbox", order_by="created_at")] == ["keyword_reply", "keyword_reply"]
    assert h.rows("outbox", body=EN.opt_in_reply)


def test_help_replies_with_the_channel_help_text(store):
    h = Harness(store, config={"help_text": {"en": "Acme Dental: call 555-0100. Reply STOP to opt out."}})
    h.run(inbound("HELP"))
    (reply,) = h.rows("outbox")
    assert reply.body == "Acme Dental: call 555-0100. Reply STOP to opt out."
    assert consent(h) is None


def test_help_text_of_the_campaign_wins(store):
    h = Harness(store, config={"help_text": {"en": "Channel help"}})
    with h.store.unit_of_work() as uow:
        uow.campaigns.add(
            Campaign(name="spring", address=OUR_NUMBER, metadata={"help_text": "Spring sale help"})
        )
        uow.commit()
    h.run(inbound("help"))
    assert h.one("outbox").body == "Spring sale help"


def test_french_keyword_french_reply(store):
    h = Harness(store)
    h.run(inbound("Arrêt"))
    assert h.one("outbox").body == DEFAULT_KEYWORD_LANGUAGES["fr"].opt_out_reply


def test_provider_handled_opt_out_records_consent_without_a_second_reply(store):
    h = Harness(store, config={"agent_mode": True}, agent_responder=RecordingResponder())
    h.run(payload("inbound_advanced_opt_out.form"))
    row = h.one("consents")
    assert (row.status, row.source, row.scope) == ("opted_out", "provider", SERVICE)
    assert h.rows("outbox") == [] and h.rows("agent_events") == []


def test_keyword_replies_can_be_turned_off(store):
    h = Harness(store, config={"send_keyword_replies": False})
    h.run(inbound("STOP"))
    assert consent(h).status == "opted_out" and h.rows("outbox") == []


def test_consent_is_scoped_per_number_or_service(store):
    responder = RecordingResponder()
    h = Harness(store, config={"agent_mode": True}, agent_responder=responder)
    h.run(inbound("STOP", to="+14155550198"))
    h.run(inbound("Hello?", to=OUR_NUMBER))
    assert [r.reason for r in h.rows("outbox", order_by="created_at")] == ["keyword_reply", "agent_reply"]
    h.run(inbound("unsubscribe", MessagingServiceSid=SERVICE))
    assert h.rows("consents", scope=SERVICE)[0].status == "opted_out"


# -- the agent --------------------------------------------------------------------------------------


def test_agent_reply_queued_for_a_normal_message(store):
    responder = RecordingResponder("We open at 9.")
    h = Harness(
        store,
        config={
            "agent_mode": True,
            "agent_config": {"prompt": "You are Acme's assistant.", "context": {"hours": "9-5"}},
        },
        agent_responder=responder,
    )
    h.run(inbound("When do you open?"))
    (reply,) = h.rows("outbox")
    assert (reply.reason, reply.body, reply.to, reply.status) == (
        "agent_reply",
        "We open at 9.",
        LEAD_NUMBER,
        "pending",
    )
    (request,) = responder.requests
    assert request.prompt == "You are Acme's assistant."
    assert request.context == {"hours": "9-5"}
    assert [t.content for t in request.history] == ["When do you open?"]
    agent_event = h.one("agent_events")
    assert (agent_event.outcome, agent_event.reply, agent_event.responder) == (
        "replied",
        "We open at 9.",
        "recording",
    )
    assert agent_event.latency_ms is not None
    # A follow-up sees the earlier exchange, its own reply included.
    h.run(inbound("And on Sunday?"))
    assert [t.role for t in responder.requests[-1].history] == ["user", "assistant", "user"]


def test_no_agent_reply_for_an_opted_out_sender(store):
    responder = RecordingResponder()
    h = Harness(store, config={"agent_mode": True}, agent_responder=responder)
    h.run(inbound("STOP"))
    h.run(inbound("why did you text me?"))
    assert responder.requests == []
    assert [r.reason for r in h.rows("outbox")] == ["keyword_reply"]
    last = h.rows("events", event_type="inbound_message", order_by="recorded_at")[-1]
    assert last.data["agent"] == "skipped:opted_out"


def test_responder_failure_keeps_the_message(store):
    h = Harness(
        store, config={"agent_mode": True}, agent_responder=RecordingResponder(error=RuntimeError("boom"))
    )
    stats = h.run(inbound("hello"))
    assert stats["processed"] == 1 and stats["failed"] == 0
    assert h.one("messages").body == "hello"
    failed = h.one("agent_events")
    assert failed.outcome == "failed" and "RuntimeError: boom" in (failed.error or "")
    assert h.rows("outbox") == []


def test_seed_config_uses_the_template_responder(store):
    h = Harness(store, config={"agent_mode": True})
    h.run(inbound("hello"))
    assert h.one("agent_events").responder == "template"
    assert h.one("outbox").reason == "agent_reply"


def test_agent_off_by_default(store):
    h = Harness(store)
    h.run(inbound("hello"))
    assert h.rows("outbox") == [] and h.rows("agent_events") == []


# -- records: leads, conversations, campaigns ------------------------------------------------------


def test_records_for_an_inbound_sms(store):
    h = Harness(store)
    h.run(payload("inbound_sms.form"))
    lead = h.one("leads")
    assert lead.phone == "+14155550123" and lead.source == "twilio:sms"
    conversation = h.one("conversations")
    assert conversation.external_id == f"twilio:sms:{SERVICE}:+14155550123"
    assert conversation.lead_id == lead.id
    assert h.one("threads").conversation_id == conversation.id
    assert sorted(p.role for p in h.rows("participants")) == ["business", "lead"]
    message = h.one("messages")
    assert (message.direction, message.channel, message.provider, message.body) == (
        "inbound",
        "sms",
        "twilio",
        "Hi there! Is the offer still on?",
    )
    event = h.one("events")
    assert (event.lead_id, event.conversation_id, event.message_id) == (lead.id, conversation.id, message.id)
    assert event.data["geo"]["from_city"] == "SAN FRANCISCO"


def test_same_sender_in_different_formats_is_one_lead(store):
    h = Harness(store)
    h.run(
        inbound("one", sender="+14155550123"),
        inbound("two", sender="(415) 555-0123", FromCountry="US"),
        inbound("three", sender=14155550123),
    )
    assert len(h.rows("leads")) == 1 and len(h.rows("conversations")) == 1
    assert len(h.rows("messages")) == 3


def test_mms_and_whatsapp(store):
    h = Harness(store)
    h.run(payload("inbound_mms.json"), payload("inbound_whatsapp.form"))
    mms = h.one("messages", channel="mms")
    assert [m.content_type for m in mms.media] == ["image/jpeg", "image/png"]
    whatsapp = h.one("messages", channel="whatsapp")
    # The transport is the message's channel, not part of the address.
    assert whatsapp.sender == "+447700900123"
    lead = h.one("leads", phone="+447700900123")
    assert lead.first_name == "Ana"
    assert h.one("threads", lead_id=lead.id).channel == "whatsapp"


# A WhatsApp user id (``whatsapp:US.1234567``) is no longer set aside: it is a lead key
# (issue 12; tests/conformance/test_conformance_processor.py).
@pytest.mark.parametrize("sender", ["ACME", "89345", "not a number"])
def test_unresolvable_sender_is_recorded_and_set_aside(store, sender):
    h = Harness(store, config={"agent_mode": True}, agent_responder=RecordingResponder())
    stats = h.run(inbound("STOP", sender=sender))
    assert stats["processed"] == 1 and stats["failed"] == 0
    event = h.one("events")
    assert event.status == "ignored" and event.data["set_aside"] == "unresolvable_sender"
    assert event.data["body"] == "STOP"
    for table in ("leads", "messages", "consents", "outbox", "agent_events"):
        assert h.rows(table) == [], table


def test_create_leads_off(store):
    h = Harness(
        store, config={"create_leads": False, "agent_mode": True}, agent_responder=RecordingResponder()
    )
    h.run(inbound("hello"))
    assert h.rows("leads") == [] and h.rows("threads") == []
    assert h.one("messages").body == "hello"
    assert h.rows("outbox") == []


def _campaign(h: Harness, **fields):
    with h.store.unit_of_work() as uow:
        campaign = uow.campaigns.add(Campaign(**fields))
        uow.commit()
    return campaign


def test_campaign_by_messaging_service(store):
    h = Harness(store)
    campaign = _campaign(h, name="svc", messaging_service_sid=SERVICE)
    h.run(inbound("hi", MessagingServiceSid=SERVICE))
    assert h.one("conversations").campaign_id == campaign.id
    assert h.one("events").campaign_id == campaign.id


def test_campaign_by_short_code(store):
    h = Harness(store)
    campaign = _campaign(h, name="short", address="89345")
    h.run(inbound("hi", to="89345"))
    assert h.one("conversations").campaign_id == campaign.id
    assert h.one("messages").recipient == "89345"


def test_join_keyword_joins_the_campaign(store):
    h = Harness(store)
    campaign = _campaign(h, name="vip", keywords=("JOIN",), address="+14155550100")
    h.run(inbound("join"))
    participant = h.one("campaign_participants")
    assert participant.campaign_id == campaign.id
    assert h.one("events").data["route"] == "campaign_response"


def test_message_from_a_participant_is_a_campaign_response(store):
    h = Harness(store)
    campaign = _campaign(h, name="promo", address=OUR_NUMBER)
    with h.store.unit_of_work() as uow:
        lead = uow.leads.add(Lead(phone=LEAD_NUMBER))
        uow.campaign_participants.add(CampaignParticipant(campaign_id=campaign.id, lead_id=lead.id))
        uow.commit()
    h.run(inbound("Interested!"), inbound("When?"))
    participant = h.one("campaign_participants")
    assert (participant.status, participant.response_count) == ("responded", 2)
    # STOP from a participant marks the participation too.
    h.run(inbound("STOP"))
    assert h.one("campaign_participants").status == "opted_out"


def test_regular_message_joins_the_nurturing_campaign(store):
    h = Harness(store)
    nurture = _campaign(h, name="nurture", is_nurturing=True)
    h.run(inbound("hello"))
    assert h.one("campaign_participants").campaign_id == nurture.id
    assert h.one("events").data["route"] == "regular"


# -- status callbacks ---------------------------------------------------------------------------------


def _sent_reply(h: Harness, provider_id: str) -> OutboundMessage:
    h.run(inbound("STOP"))
    reply = h.one("outbox")
    with h.store.unit_of_work() as uow:
        row = uow.outbox.update(attrs.evolve(reply, status="queued", provider_message_id=provider_id))
        message = uow.messages.get(reply.id)
        uow.messages.update(attrs.evolve(message, status="queued", provider_message_id=provider_id))
        uow.commit()
    return row


def test_status_moves_our_message_forward_only(store):
    h = Harness(store)
    provider_id = sid()
    _sent_reply(h, provider_id)
    stats = h.run(
        status(provider_id, "sending"), status(provider_id, "delivered"), status(provider_id, "sent")
    )
    # The late "sent" is a new event (not a duplicate) but does not regress the message.
    assert (stats["processed"], stats["duplicates"]) == (3, 0)
    assert h.one("outbox").status == "delivered"
    assert h.one("messages", provider_message_id=provider_id).status == "delivered"
    late = h.rows("events", event_type="status_update", order_by="recorded_at")[-1]
    assert late.data["applied"] is False and late.data["status"] == "sent"
    assert h.run(status(provider_id, "delivered"), status(provider_id, "sent"))["duplicates"] == 2


def test_first_error_kept_and_terminal_status_wins(store):
    h = Harness(store)
    provider_id = sid()
    _sent_reply(h, provider_id)
    h.run(
        status(provider_id, "undelivered", ErrorCode="30003"),
        status(provider_id, "failed", ErrorCode="30008"),
    )
    row = h.one("outbox")
    assert (row.status, row.error_code) == ("undelivered", "30003")


def test_every_status_is_recorded(store):
    h = Harness(store)
    provider_id = sid()
    statuses = DOCUMENTED_STATUSES
    stats = h.run(*(status(provider_id, s) for s in statuses))
    assert stats["processed"] == len(statuses)
    assert sorted(e.data["status"] for e in h.rows("events")) == sorted(statuses)


def test_status_for_unknown_message_is_recorded(store):
    h = Harness(store)
    h.run(payload("status_delivered.form"))
    event = h.one("events")
    assert event.data["matched_outbox"] is False and event.occurred_at.minute == 1


def test_error_21610_in_a_callback_opts_out(store):
    h = Harness(store)
    h.run(status(sid(), "failed", ErrorCode=21610, MessagingServiceSid=SERVICE))
    row = h.one("consents")
    assert (row.address, row.scope, row.status, row.source) == (LEAD_NUMBER, SERVICE, "opted_out", "provider")


# -- the property ---------------------------------------------------------------------------------------

_texts = st.one_of(
    st.sampled_from(
        ["hi", "STOP", "yes", "help", "can you stop by?", "START", "remove me from your list", "ok"]
    ),
    st.text(max_size=30),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_texts, min_size=1, max_size=6))
def test_no_message_reaches_the_agent_for_an_opted_out_sender(texts):
    responder = RecordingResponder()
    h = Harness(config={"agent_mode": True}, agent_responder=responder)
    h.run(inbound("STOP"))
    for text in texts:
        before = consent(h)
        calls = len(responder.requests)
        h.run(inbound(text))
        after = consent(h)
        if "opted_out" in (before and before.status, after and after.status):
            # Opted out when it arrived (an opt-in keyword never reaches the
            # agent either), or opted out by it.
            assert len(responder.requests) == calls, text


def test_a_new_processor_sweeps_agent_requests_a_crash_left_behind(store, monkeypatch):
    # A worker committed three inbound messages, then died before answering them.
    crashed = Harness(store, config={"agent_mode": True}, agent_responder=RecordingResponder("first"))
    crashed.processor.after_commit = lambda outcomes: None  # type: ignore[method-assign]
    crashed.run(*(inbound(text, message_sid=f"SM{i:032d}") for i, text in enumerate(("a", "b", "c"))))
    left = {e.message_id: e for e in crashed.rows("agent_events")}
    assert [e.outcome for e in left.values()] == ["pending"] * 3
    # One of them was being answered when the worker died.
    (running_message,) = crashed.rows("messages", provider_message_id=f"SM{1:032d}")
    with store.unit_of_work() as uow:
        uow.agent_events.update(attrs.evolve(left[running_message.id], outcome="running"))
        uow.commit()

    # A new worker, twenty minutes later, soon after its machine started (time.monotonic() is small).
    monkeypatch.setattr("commproc_sms.processor.time.monotonic", lambda: 5.0)
    responder = RecordingResponder("later")
    h = Harness(store, config={"agent_mode": True}, agent_responder=responder)
    h.clock.advance(20 * 60)
    h.run(inbound("d", message_sid=f"SM{3:032d}"))

    outcomes = {e.message_id: (e.outcome, e.error) for e in h.rows("agent_events")}
    assert outcomes.pop(running_message.id) == (
        "failed",
        "interrupted",
    )  # no second reply: it may have gone out
    assert sorted(outcomes.values()) == [("replied", None)] * 3
    assert len(responder.requests) == 3
    replies = [r for r in h.rows("outbox") if r.reason == "agent_reply"]
    assert sorted(r.body for r in replies) == ["later"] * 3
