"""TwilioSender: the Sender port over Twilio's Messages REST API, with urllib.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP
basic auth (the account SID and auth token, or an API key SID and secret).
A reply goes out through the messaging service when the outbox row names
one (Twilio then picks the sender, keeping a sticky sender), else from the
row's sender number.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from commproc_core.model import OutboundMessage
from commproc_core.ports import SendResult
from commproc_core.services.outbox import SendError

__all__ = ["OPTED_OUT_ERROR", "TwilioSender"]

#: "Attempt to send to unsubscribed recipient".
OPTED_OUT_ERROR = "21610"
_RETRYABLE_HTTP = frozenset({429, 500, 502, 503, 504})


def _address(value: str, channel: str) -> str:
    if channel == "whatsapp" and not value.startswith("whatsapp:"):
        return f"whatsapp:{value}"
    return value


class TwilioSender:
    """Sends outbox rows with Twilio's Messages API."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_key_sid: str | None = None,
        base_url: str = "https://api.twilio.com",
        timeout: float = 10.0,
        status_callback: str | None = None,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("account_sid and auth_token are required")
        self.account_sid = account_sid
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.status_callback = status_callback
        user = api_key_sid or account_sid
        self._authorization = "Basic " + base64.b64encode(f"{user}:{auth_token}".encode()).decode("ascii")

    def __repr__(self) -> str:
        return f"TwilioSender(account_sid={self.account_sid!r}, base_url={self.base_url!r})"

    @property
    def url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{urllib.parse.quote(self.account_sid)}/Messages.json"

    def form(self, message: OutboundMessage) -> dict[str, str]:
        """The form parameters sent for ``message``."""
        params = {"To": _address(message.to, message.channel), "Body": message.body}
        if message.messaging_service_sid:
            params["MessagingServiceSid"] = message.messaging_service_sid
        elif message.sender:
            params["From"] = _address(message.sender, message.channel)
        else:
            raise SendError("outbox row has neither a sender nor a messaging service", code="no_sender")
        if self.status_callback:
            params["StatusCallback"] = self.status_callback
        return params

    def send(self, message: OutboundMessage) -> SendResult:
        data = urllib.parse.urlencode(self.form(message)).encode("utf-8")
        request = urllib.request.Request(  # noqa: S310 (the scheme is the operator's base_url)
            self.url,
            data=data,
            method="POST",
            headers={
                "Authorization": self._authorization,
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = _json(response.read())
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from exc
        except TimeoutError as exc:
            # Twilio may have created the message before the answer was lost:
            # not retried, to avoid a duplicate text.
            raise SendError(f"Twilio did not answer within {self.timeout:g}s", code="timeout") from exc
        except urllib.error.URLError as exc:
            raise SendError(f"Twilio unreachable: {exc.reason}", code="unreachable", retryable=True) from exc
        sid = body.get("sid")
        if not isinstance(sid, str) or not sid:
            raise SendError("Twilio's answer has no message sid", code="bad_response")
        status = body.get("status")
        return SendResult(provider_message_id=sid, status=status if isinstance(status, str) else "queued")


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _http_error(exc: urllib.error.HTTPError) -> SendError:
    try:
        body = _json(exc.read()[:8192])
    except OSError:
        body = {}
    code = body.get("code")
    code_text = str(code) if isinstance(code, (int, str)) and code != "" else f"http_{exc.code}"
    message = body.get("message") if isinstance(body.get("message"), str) else exc.reason
    return SendError(
        f"Twilio refused the message: HTTP {exc.code}, error {code_text}: {message}",
        code=code_text,
        status=exc.code,
        retryable=exc.code in _RETRYABLE_HTTP,
        recipient_opted_out=code_text == OPTED_OUT_ERROR,
    )
