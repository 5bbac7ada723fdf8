"""Helpers for the SMS tests: fixtures on disk, envelopes, processors, a local HTTP server."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from commproc_core.ports import AgentReply, AgentRequest
from commproc_core.queues.memory import MemoryQueue
from commproc_core.stores import MemoryStore
from commproc_core.testing import FixedClock, drain
from commproc_sms import SMSProcessor
from commproc_sms.signature import compute_signature

PAYLOADS = Path(__file__).parent / "payloads"
ACCOUNT = "AC00000000000000000000000000000001"
SERVICE = "MG00112233445566778899aabbccddeeff"
OUR_NUMBER = "+14155550199"
LEAD_NUMBER = "+14155550123"
TOKEN = "12345"


def payload_text(name: str) -> str:
    return (PAYLOADS / name).read_text(encoding="utf-8")


def payload(name: str) -> dict[str, Any]:
    """A fixture as a dict of parameters, whether it is stored as a form or as JSON."""
    text = payload_text(name)
    if name.endswith(".form"):
        return dict(parse_qsl(text, keep_blank_values=True))
    return json.loads(text)


_counter = iter(range(1, 10**9))


def sid(prefix: str = "SM") -> str:
    return f"{prefix}{next(_counter):032x}"


def inbound(
    body: str,
    *,
    sender: str = LEAD_NUMBER,
    to: str = OUR_NUMBER,
    message_sid: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "MessageSid": message_sid or sid(),
        "AccountSid": ACCOUNT,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "FromCountry": "US",
        "ToCountry": "US",
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def status(
    message_sid: str, message_status: str, *, to: str = LEAD_NUMBER, sender: str = OUR_NUMBER, **extra: Any
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "MessageSid": message_sid,
        "SmsSid": message_sid,
        "AccountSid": ACCOUNT,
        "MessageStatus": message_status,
        "SmsStatus": message_status,
        "To": to,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    params.update(extra)
    return params


def form(params: Mapping[str, Any]) -> str:
    return urlencode({k: str(v) for k, v in params.items()})


def apigw_v1(
    body: str,
    *,
    host: str = "abc123.execute-api.us-east-1.amazonaws.com",
    path: str = "/prod/sms",
    token: str | None = TOKEN,
    signature: str | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    base64_body: bool = False,
    query: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    url = f"https://{host}{path}" + (f"?{urlencode(query)}" if query else "")
    headers = {"Host": host, "Content-Type": content_type, "User-Agent": "TwilioProxy/1.1"}
    if signature is None and token is not None:
        pairs = parse_qsl(body, keep_blank_values=True) if "json" not in content_type else []
        signature = compute_signature(token, url, pairs)
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return {
        "resource": "/sms",
        "path": "/sms",
        "httpMethod": "POST",
        "headers": headers,
        "queryStringParameters": dict(query) if query else None,
        "requestContext": {"path": path, "stage": "prod", "domainName": host, "httpMethod": "POST"},
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        "isBase64Encoded": base64_body,
    }


def apigw_v2(
    body: str,
    *,
    host: str = "xyz.execute-api.us-east-1.amazonaws.com",
    path: str = "/sms",
    raw_query: str = "",
    token: str | None = TOKEN,
    base64_body: bool = True,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, Any]:
    url = f"https://{host}{path}" + (f"?{raw_query}" if raw_query else "")
    headers = {"host": host, "content-type": content_type}
    if token is not None:
        pairs = parse_qsl(body, keep_blank_values=True) if "json" not in content_type else []
        headers["x-twilio-signature"] = compute_signature(token, url, pairs)
    return {
        "version": "2.0",
        "routeKey": f"POST {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {"domainName": host, "http": {"method": "POST", "path": path}, "stage": "$default"},
        "body": base64.b64encode(body.encode()).decode() if base64_body else body,
        "isBase64Encoded": base64_body,
    }


def sns(message: str) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "5f8e1c7a-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:twilio",
        "Message": message,
        "Timestamp": "2026-01-01T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "placeholder",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
    }


def body_of(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class RecordingResponder:
    """A responder that records its requests and answers ``reply`` (or raises ``error``)."""

    name = "recording"

    def __init__(self, reply: str = "Happy to help!", error: Exception | None = None) -> None:
        self.reply = reply
        self.error = error
        self.requests: list[AgentRequest] = []

    def respond(self, request: AgentRequest) -> AgentReply:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return AgentReply(text=self.reply)


class Harness:
    """An SMSProcessor over a MemoryQueue and a store, with a fixed clock."""

    def __init__(self, store: Any = None, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.store = store if store is not None else MemoryStore()
        self.queue = MemoryQueue()
        self.clock = FixedClock()
        self.processor = SMSProcessor(
            config=dict(config or {}), store=self.store, queue=self.queue, clock=self.clock, **kwargs
        )

    def run(self, *items: Any) -> Any:
        """Send each item (a dict of parameters, an envelope dict or a string) as one queue message."""
        for item in items:
            self.queue.send(body_of(item))
        self.clock.advance(1)
        return drain(self.processor)

    def rows(self, table: str, **where: Any) -> list[Any]:
        with self.store.unit_of_work() as uow:
            return getattr(uow, table).find(**where)

    def one(self, table: str, **where: Any) -> Any:
        rows = self.rows(table, **where)
        assert len(rows) == 1, f"expected one {table} row for {where}, found {len(rows)}"
        return rows[0]


Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, Mapping[str, str], bytes]]


@contextmanager
def http_server(handler: Handler) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local HTTP server on 127.0.0.1 (port 0) answering with ``handler``; yields (base URL, requests)."""
    seen: list[dict[str, Any]] = []

    class _Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen.append({"method": "POST", "path": self.path, "headers": headers, "body": data})
            code, extra, payload_bytes = handler("POST", self.path, headers, data)
            try:
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload_bytes)))
                self.end_headers()
                self.wfile.write(payload_bytes)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout tests)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def json_answer(code: int, value: Any) -> tuple[int, Mapping[str, str], bytes]:
    return code, {"Content-Type": "application/json"}, json.dumps(value).encode()


#: Every MessageStatus value Twilio documents.
DOCUMENTED_STATUSES = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "undelivered",
    "failed",
    "read",
    "canceled",
    "receiving",
    "received",
    "partially_delivered",
)
