"""AIAgentService and the responders: the template one and the OpenAI-compatible one over HTTP."""

from __future__ import annotations

import json
import socket
import time

import pytest
from sms_support import Harness, RecordingResponder, http_server, inbound, json_answer

from commproc_core.agents import (
    DEFAULT_AGENT_PROMPT,
    AgentResponderError,
    OpenAIChatResponder,
    TemplateResponder,
)
from commproc_core.errors import ConfigError
from commproc_core.model import ChatTurn, Conversation, Message
from commproc_core.ports import AgentRequest
from commproc_core.services.agent import AgentConfig, AIAgentService
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock

REQUEST = AgentRequest(
    prompt="Be brief.",
    history=(
        ChatTurn(role="user", content="Hi"),
        ChatTurn(role="assistant", content="Hello!"),
        ChatTurn(role="user", content="Open Sunday?"),
    ),
    context={"business": "Acme", "hours": "9-5"},
    channel="sms",
    conversation_id="c1",
)


# -- AIAgentService ---------------------------------------------------------------------------------


def test_validate_config():
    assert AIAgentService.validate_config(None).prompt == DEFAULT_AGENT_PROMPT
    config = AIAgentService.validate_config({"prompt": "Hi", "context": {"a": 1}, "history_limit": 3})
    assert (config.prompt, config.context, config.history_limit) == ("Hi", {"a": 1}, 3)
    for bad in ({}, {"prompt": ""}, {"prompt": "x", "context": "not a mapping"}, {"prompt": "x", "extra": 1}):
        with pytest.raises(ConfigError):
            AIAgentService.validate_config(bad)


def _conversation(uow, clock, bodies):
    conversation = uow.conversations.add(Conversation(external_id="c", channel="sms"))
    messages = []
    for i, (direction, body) in enumerate(bodies):
        clock.advance(1)
        messages.append(
            uow.messages.add(
                Message(
                    conversation_id=conversation.id,
                    direction=direction,
                    channel="sms",
                    provider="twilio",
                    provider_message_id=f"SM{i}",
                    body=body,
                    created_at=clock.now(),
                )
            )
        )
    return conversation, messages


def test_history_is_limited_and_ordered():
    store, clock = MemoryStore(), FixedClock()
    responder = RecordingResponder("ok")
    with store.unit_of_work() as uow:
        _, messages = _conversation(
            uow,
            clock,
            [("inbound", "1"), ("outbound", "2"), ("inbound", "3"), ("outbound", ""), ("inbound", "5")],
        )
        service = AIAgentService(
            uow, clock, responder=responder, config=AgentConfig(prompt="p", history_limit=4)
        )
        event = service.reply_to(messages[-1], reply_to="+14155550123", channel="sms", sender="+14155550199")
        assert event.outcome == "replied"
        (request,) = responder.requests
        # The last four messages, the empty one left out.
        assert [(t.role, t.content) for t in request.history] == [
            ("assistant", "2"),
            ("user", "3"),
            ("user", "5"),
        ]
        reply = uow.outbox.find_one(reason="agent_reply")
        assert reply is not None and reply.created_at > messages[-1].created_at


def test_long_replies_are_cut_and_empty_replies_skipped():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        _, messages = _conversation(uow, clock, [("inbound", "hi")])
        long_ = AIAgentService(
            uow,
            clock,
            responder=RecordingResponder("x" * 50),
            config=AgentConfig(prompt="p", max_reply_chars=10),
        )
        long_.reply_to(messages[0], reply_to="+1", channel="sms")
        assert uow.outbox.find_one().body == "x" * 10
        quiet = AIAgentService(uow, clock, responder=RecordingResponder("   "), config=None)
        assert quiet.reply_to(messages[0], reply_to="+1", channel="sms").outcome == "skipped"
        assert uow.outbox.count() == 1


def test_failure_is_recorded_not_raised():
    store, clock = MemoryStore(), FixedClock()
    with store.unit_of_work() as uow:
        _, messages = _conversation(uow, clock, [("inbound", "hi")])
        service = AIAgentService(
            uow, clock, responder=RecordingResponder(error=AgentResponderError("HTTP 500"))
        )
        event = service.reply_to(messages[0], reply_to="+1", channel="sms")
        assert (event.outcome, event.error) == ("failed", "AgentResponderError: HTTP 500")
        assert uow.outbox.count() == 0


# -- TemplateResponder ---------------------------------------------------------------------------------


def test_template_responder():
    reply = TemplateResponder(
        "Thanks! $business will answer on $channel. You said: $message ($missing)"
    ).respond(REQUEST)
    assert reply.text == "Thanks! Acme will answer on sms. You said: Open Sunday? ($missing)"
    assert TemplateResponder().respond(REQUEST).text.startswith("Thanks for your message")


def test_template_cannot_reach_attributes():
    text = (
        TemplateResponder("${message}")
        .respond(AgentRequest(prompt="p", history=(ChatTurn(role="user", content="{0.__class__}"),)))
        .text
    )
    assert text == "{0.__class__}"


# -- OpenAIChatResponder against a local server ------------------------------------------------------


def _completion(content):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "test-model-0613",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }


def test_openai_chat_success():
    with http_server(lambda *_: json_answer(200, _completion("  We open at 10 on Sunday.  "))) as (url, seen):
        responder = OpenAIChatResponder(
            base_url=f"{url}/v1", api_key="sk-test", model="test-model", temperature=0.2, max_tokens=100
        )
        reply = responder.respond(REQUEST)
    assert (reply.text, reply.model) == ("We open at 10 on Sunday.", "test-model-0613")
    (call,) = seen
    assert call["path"] == "/v1/chat/completions"
    assert call["headers"]["authorization"] == "Bearer sk-test"
    assert call["headers"]["content-type"] == "application/json"
    body = json.loads(call["body"])
    assert body["model"] == "test-model" and body["temperature"] == 0.2 and body["max_tokens"] == 100
    system, *turns = body["messages"]
    assert system["role"] == "system" and system["content"].startswith("Be brief.")
    assert '"business": "Acme"' in system["content"]
    assert turns == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Open Sunday?"},
    ]
    assert "sk-test" not in repr(responder)


def test_openai_chat_null_content_is_an_empty_reply():
    with http_server(lambda *_: json_answer(200, _completion(None))) as (url, _):
        assert OpenAIChatResponder(base_url=url, model="m").respond(REQUEST).text == ""


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            json_answer(
                401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
            ),
            "HTTP 401: Incorrect API key provided",
        ),
        (json_answer(429, {"error": {"message": "Rate limit reached"}}), "HTTP 429: Rate limit reached"),
        ((500, {"Content-Type": "text/plain"}, b"upstream exploded"), "HTTP 500: upstream exploded"),
        (json_answer(200, {"choices": []}), "not a chat.completion object"),
        ((200, {"Content-Type": "application/json"}, b"<html>"), "not a chat.completion object"),
        (json_answer(200, _completion(["parts"])), "non-text content"),
    ],
)
def test_openai_chat_errors_are_clear(answer, expected):
    with http_server(lambda *_: answer) as (url, _):
        responder = OpenAIChatResponder(base_url=url, api_key="sk-secret", model="m")
        with pytest.raises(AgentResponderError) as caught:
            responder.respond(REQUEST)
    assert expected in str(caught.value)
    assert "sk-secret" not in str(caught.value)


def test_openai_chat_timeout():
    def slow(*_):
        time.sleep(1.0)
        return json_answer(200, _completion("late"))

    with http_server(slow) as (url, _):
        with pytest.raises(AgentResponderError, match="timed out after 0.2s"):
            OpenAIChatResponder(base_url=url, model="m", timeout=0.2).respond(REQUEST)


def test_openai_chat_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AgentResponderError, match="unreachable"):
        OpenAIChatResponder(base_url=f"http://127.0.0.1:{port}", model="m", timeout=2).respond(REQUEST)


def test_openai_chat_in_the_pipeline():
    with http_server(lambda *_: json_answer(200, _completion("Yes, 10 to 4."))) as (url, seen):
        h = Harness(
            config={"agent_mode": True, "agent_config": {"prompt": "You answer for Acme."}},
            agent_responder=OpenAIChatResponder(base_url=url, model="m"),
        )
        h.run(inbound("Open on Sunday?"))
    assert h.one("outbox").body == "Yes, 10 to 4."
    assert h.one("agent_events").responder == "openai:m"
    assert json.loads(seen[0]["body"])["messages"][-1] == {"role": "user", "content": "Open on Sunday?"}
