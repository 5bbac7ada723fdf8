"""What goes on the queue: the provider's body, wrapped with the request facts commproc checks.

commproc reads headers and the URL from an API Gateway proxy event, so the
receiver wraps each request in one (HTTP API, payload format 2.0): the body
exactly as received (signatures cover those bytes), the headers a signature
check needs, and the public URL the provider called. Nothing else travels:
no cookies, no ``Authorization`` header, no client address.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["FORWARDED_HEADERS", "ForwardError", "SqsForwarder", "api_gateway_event"]

#: Headers that commproc's signature checks read (lower case).
FORWARDED_HEADERS = frozenset(
    {
        "content-type",
        "x-twilio-signature",
        "x-twilio-webhooks-signature-settings",
        "i-twilio-idempotency-token",
        "x-twilio-email-event-webhook-signature",
        "x-twilio-email-event-webhook-timestamp",
    }
)

_log = logging.getLogger("webhook_receiver")


class ForwardError(Exception):
    """The queue did not take the message; the provider should try again later."""


def api_gateway_event(*, method: str, url: str, headers: Mapping[str, str], body: str) -> dict[str, Any]:
    """An API Gateway HTTP API (2.0) proxy event for a request to ``url``, as commproc unwraps it."""
    parts = urlsplit(url)
    kept = {name.lower(): value for name, value in headers.items() if name.lower() in FORWARDED_HEADERS}
    # commproc rebuilds the signed URL from these two and the path.
    kept["host"] = parts.netloc
    kept["x-forwarded-proto"] = parts.scheme
    path = parts.path or "/"
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": kept,
        "requestContext": {"domainName": parts.netloc, "http": {"method": method, "path": path}},
        "body": body,
        "isBase64Encoded": False,
    }


class SqsForwarder:
    """Sends message bodies to SQS with a boto3 client (made on first use unless given)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs")
        return self._client

    def send(self, queue_url: str, body: str | Mapping[str, Any]) -> str:
        """Put ``body`` (text, or an object sent as JSON) on ``queue_url``; the SQS message id."""
        from botocore.exceptions import BotoCoreError, ClientError

        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        try:
            answer = self.client.send_message(QueueUrl=queue_url, MessageBody=text)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            _log.warning("SendMessage refused: %s", code)
            raise ForwardError(code) from exc
        except BotoCoreError as exc:
            _log.warning("SendMessage failed: %s", type(exc).__name__)
            raise ForwardError(type(exc).__name__) from exc
        return str(answer["MessageId"])
