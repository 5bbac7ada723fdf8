"""AgentResponder implementations: a deterministic template, and any OpenAI-compatible chat API.

:class:`TemplateResponder` answers from a template and needs nothing else:
demos, tests, and a safe default. :class:`OpenAIChatResponder` calls
``POST {base_url}/chat/completions`` (OpenAI, Azure OpenAI's compatible
endpoint, vLLM, Ollama, LiteLLM...) with urllib, so it adds no dependency.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from commproc_core.errors import CommprocError
from commproc_core.ports import AgentReply, AgentRequest

if TYPE_CHECKING:
    import urllib.error

__all__ = ["DEFAULT_AGENT_PROMPT", "AgentResponderError", "OpenAIChatResponder", "TemplateResponder"]

#: The instructions used when a channel turns agent_mode on without an agent_config.
DEFAULT_AGENT_PROMPT = (
    "You are a helpful assistant answering text messages for a business. Reply briefly and politely, "
    "in the language of the last message. Do not make commitments or share personal data."
)

_ERROR_BODY_LIMIT = 300


class AgentResponderError(CommprocError):
    """The agent could not produce a reply (HTTP error, timeout, malformed answer)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TemplateResponder:
    """Replies with a fixed template; ``$message``, ``$channel`` and context keys are substituted.

    Substitution uses :class:`string.Template` (``safe_substitute``): unknown
    placeholders stay as written, and nothing in a message can reach
    attributes or format specs.
    """

    def __init__(
        self,
        template: str = "Thanks for your message! We will get back to you shortly.",
        *,
        name: str = "template",
    ) -> None:
        self.template = string.Template(template)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def respond(self, request: AgentRequest) -> AgentReply:
        last = next((t.content for t in reversed(request.history) if t.role == "user"), "")
        values: dict[str, Any] = {str(k): v for k, v in request.context.items()}
        values.update(message=last, channel=request.channel)
        return AgentReply(text=self.template.safe_substitute(values), model=self._name)


class OpenAIChatResponder:
    """Calls an OpenAI-compatible ``/chat/completions`` endpoint.

    The request is the agent prompt as the system message (with the context
    appended as JSON), then the conversation history as user and assistant
    turns. Failures raise :class:`AgentResponderError` with the HTTP status
    and the provider's error message, never the API key.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None = None,
        base_url: str = "https://api.openai.com/v1",
        timeout: float = 30.0,
        temperature: float | None = None,
        max_tokens: int | None = None,
        extra_headers: Mapping[str, str] | None = None,
        name: str | None = None,
    ) -> None:
        if not model:
            raise ValueError("model is required")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        self._api_key = api_key
        self._headers = dict(extra_headers or {})
        self._name = name or f"openai:{model}"

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"OpenAIChatResponder(model={self.model!r}, base_url={self.base_url!r})"

    def build_payload(self, request: AgentRequest) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        system = request.prompt
        if request.context:
            system += "\n\nContext:\n" + json.dumps(dict(request.context), sort_keys=True, default=str)
        messages = [{"role": "system", "content": system}]
        messages.extend({"role": t.role, "content": t.content} for t in request.history)
        payload: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        return payload

    def respond(self, request: AgentRequest) -> AgentReply:
        # urllib.request brings http.client, email and ssl: tens of milliseconds of
        # imports that processors without an HTTP agent should not pay.
        import urllib.error
        import urllib.request

        data = json.dumps(self.build_payload(request)).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._headers}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        http_request = urllib.request.Request(  # noqa: S310 (the scheme is the operator's base_url)
            f"{self.base_url}/chat/completions", data=data, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise AgentResponderError(
                f"chat completions returned HTTP {exc.code}: {_error_message(exc)}", status=exc.code
            ) from exc
        except TimeoutError as exc:
            raise AgentResponderError(f"chat completions timed out after {self.timeout:g}s") from exc
        except urllib.error.URLError as exc:
            raise AgentResponderError(f"chat completions unreachable: {exc.reason}") from exc
        return self._reply(raw)

    def _reply(self, raw: bytes) -> AgentReply:
        try:
            body = json.loads(raw)
            choice = body["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise AgentResponderError("chat completions answer is not a chat.completion object") from exc
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise AgentResponderError("chat completions answer has non-text content")
        model = body.get("model") if isinstance(body.get("model"), str) else self.model
        return AgentReply(text=content.strip(), model=model)


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        raw = exc.read()[:4096]
    except OSError:
        return exc.reason if isinstance(exc.reason, str) else "no detail"
    try:
        message = json.loads(raw)["error"]["message"]
        text = message if isinstance(message, str) else json.dumps(message)
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace")
    return text[:_ERROR_BODY_LIMIT] or "no detail"
