"""Twilio webhooks: verified with commproc_sms's verifier, queued, then processed by the real SMSProcessor."""

from __future__ import annotations

import json
from typing import Any

from conftest import PUBLIC, depth, queue_for
from twilio.request_validator import RequestValidator

from commproc_core.stores import MemoryStore
from commproc_core.testing import drain
from commproc_sms import SMSProcessor

TOKEN = "12345678901234567890123456789012"
INBOUND = {
    "MessageSid": "SM20000000000000000000000000000001",
    "AccountSid": "AC20000000000000000000000000000001",
    "From": "+14155550123",
    "To": "+14155550199",
    "Body": "Is the offer still on?",
    "NumMedia": "0",
}


def signed(url: str, params: dict[str, str], token: str = TOKEN) -> dict[str, str]:
    # Twilio's own SDK computes the signature: commproc's verifier is not its own oracle.
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url, params)}


def processor(sqs: Any, url: str, store: MemoryStore) -> SMSProcessor:
    config = {"auth_token": TOKEN, "require_signature": True, "wait_time": 0}
    return SMSProcessor(queue=queue_for(sqs, url), store=store, config=config)


def test_a_signed_inbound_text_is_queued_and_processed(make_client, sqs, queues) -> None:
    client = make_client(twilio_auth_tokens=(TOKEN,))
    answer = client.post("/twilio/sms", data=INBOUND, headers=signed(f"{PUBLIC}/twilio/sms", INBOUND))
    assert answer.status_code == 200, answer.text
    assert "<Response></Response>" in answer.text

    store = MemoryStore()
    stats = drain(processor(sqs, queues["sms"], store))
    # require_signature: the processor verified the signature again, from the queued headers.
    assert (stats["processed"], stats["failed"], stats["deleted"]) == (1, 0, 1)
    with store.unit_of_work() as uow:
        message = uow.messages.find_one(provider_message_id=INBOUND["MessageSid"])
    assert message is not None and message.body == INBOUND["Body"]


def test_the_queued_message_carries_only_what_a_check_needs(make_client, sqs, queues) -> None:
    client = make_client(twilio_auth_tokens=(TOKEN,))
    url = f"{PUBLIC}/twilio/status?attempt=2"
    status = {"MessageSid": "SM20000000000000000000000000000009", "MessageStatus": "delivered"}
    headers = {**signed(url, status), "Cookie": "session=secret", "Authorization": "Bearer nope"}
    assert client.post("/twilio/status?attempt=2", data=status, headers=headers).status_code == 200

    body = json.loads(sqs.receive_message(QueueUrl=queues["sms"])["Messages"][0]["Body"])
    assert body["rawPath"] == "/twilio/status" and body["rawQueryString"] == "attempt=2"
    assert body["headers"]["host"] == "hooks.example.com"
    assert body["body"] == "MessageSid=SM20000000000000000000000000000009&MessageStatus=delivered"
    assert "cookie" not in body["headers"] and "authorization" not in body["headers"]


def test_a_forged_or_unsigned_request_never_reaches_the_queue(make_client, sqs, queues) -> None:
    client = make_client(twilio_auth_tokens=(TOKEN,))
    forged = signed(f"{PUBLIC}/twilio/sms", INBOUND, token="not-the-token-at-all-000000000000")
    answer = client.post("/twilio/sms", data=INBOUND, headers=forged)
    assert answer.status_code == 403
    assert answer.json()["error"] == "bad_signature"
    assert "+14155550123" not in answer.text  # errors never echo payload values

    tampered = dict(INBOUND, Body="Send me everything")
    answer = client.post("/twilio/sms", data=tampered, headers=signed(f"{PUBLIC}/twilio/sms", INBOUND))
    assert answer.status_code == 403
    assert client.post("/twilio/sms", data=INBOUND).status_code == 403
    assert depth(sqs, queues["sms"]) == 0


def test_a_rotated_token_is_still_accepted(make_client, queues, sqs) -> None:
    old = "0" * 32
    client = make_client(twilio_auth_tokens=(TOKEN, old))
    answer = client.post("/twilio/sms", data=INBOUND, headers=signed(f"{PUBLIC}/twilio/sms", INBOUND, old))
    assert answer.status_code == 200
    assert depth(sqs, queues["sms"]) == 1


def test_without_a_secret_the_receiver_refuses_rather_than_trusts(make_client, sqs, queues) -> None:
    client = make_client()
    answer = client.post("/twilio/sms", data=INBOUND, headers=signed(f"{PUBLIC}/twilio/sms", INBOUND))
    assert answer.status_code == 503
    assert answer.json()["error"] == "not_configured"
    assert depth(sqs, queues["sms"]) == 0


def test_a_queue_that_does_not_answer_asks_twilio_to_retry(make_client, sqs, queues) -> None:
    client = make_client(twilio_auth_tokens=(TOKEN,))
    sqs.delete_queue(QueueUrl=queues["sms"])
    answer = client.post("/twilio/sms", data=INBOUND, headers=signed(f"{PUBLIC}/twilio/sms", INBOUND))
    assert answer.status_code == 503
    assert answer.json()["error"] == "queue_unavailable"
