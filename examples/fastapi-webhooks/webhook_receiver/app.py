"""The webhook receiver: verify each provider's signature with commproc's own checks, then queue it.

Run it with ``uvicorn --factory webhook_receiver.app:create_app`` (settings
from the environment, see README.md). Every route answers 2xx only once the
request is verified and on the queue; a forged request gets 401/403 and never
reaches the queue; a queue that does not answer gets 503, so the provider
tries again.

The checks are the same code commproc runs when it processes the message, so
the receiver and the processor cannot disagree about what is authentic; the
processor checks again (configure the same secrets on the channel), which
protects against anything else that can write to the queue.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
import urllib.request
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from commproc_core.errors import InvalidPayload, SignatureError, TransientError
from commproc_core.pipeline.envelope import unwrap_body
from commproc_email import SnsVerifier, verify_mailgun, verify_sendgrid
from commproc_email.signatures import load_sendgrid_public_key
from commproc_sms import verify_envelope
from webhook_receiver.forwarding import ForwardError, SqsForwarder, api_gateway_event
from webhook_receiver.settings import ReceiverSettings

__all__ = ["confirm_subscription", "create_app"]

_log = logging.getLogger("webhook_receiver")
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class _Refused(Exception):
    """A request answered with an error status; ``reason`` is a code, never a payload value."""

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


def confirm_subscription(subscribe_url: str) -> None:
    """Visit an SNS ``SubscribeURL`` (only ever an https URL of SNS itself)."""
    parts = urlsplit(subscribe_url)
    if parts.scheme != "https" or not _SNS_HOST.fullmatch(parts.hostname or ""):
        raise _Refused(400, "bad_subscribe_url", "SubscribeURL is not an Amazon SNS https URL")
    with urllib.request.urlopen(subscribe_url, timeout=10):  # noqa: S310 (https to SNS, checked above)
        pass


def create_app(
    settings: ReceiverSettings | None = None,
    *,
    forwarder: SqsForwarder | None = None,
    sns_verifier: SnsVerifier | None = None,
    confirm: Callable[[str], None] = confirm_subscription,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The ASGI app; collaborators default to the environment's settings, boto3, SNS's certificates."""
    settings = settings or ReceiverSettings.from_env()
    forwarder = forwarder or SqsForwarder()
    now = clock or (lambda: datetime.now(timezone.utc))
    sendgrid_key = (
        load_sendgrid_public_key(settings.sendgrid_public_key) if settings.sendgrid_public_key else None
    )
    verifier = sns_verifier or SnsVerifier(topic_arns=settings.sns_topic_arns)
    app = FastAPI(title="commproc webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)

    async def body_text(request: Request) -> str:
        raw = await request.body()
        if len(raw) > settings.max_message_bytes:
            raise _Refused(413, "too_large")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, "not_utf8", "the body is not UTF-8 text") from None

    def public_url(request: Request) -> str:
        base = settings.public_base_url or f"{request.url.scheme}://{request.url.netloc}"
        query = request.url.query
        return f"{base}{request.url.path}" + (f"?{query}" if query else "")

    async def queue(queue_url: str | None, body: str | Mapping[str, Any], provider: str) -> None:
        if queue_url is None:
            raise _Refused(503, "queue_not_configured", f"no queue configured for {provider} webhooks")
        size = len(body.encode()) if isinstance(body, str) else len(json.dumps(body).encode())
        if size > settings.max_message_bytes:
            raise _Refused(413, "too_large")
        try:
            message_id = await run_in_threadpool(forwarder.send, queue_url, body)
        except ForwardError as exc:
            raise _Refused(503, "queue_unavailable", f"the queue refused the message ({exc})") from exc
        _log.info("queued a %s webhook as SQS message %s", provider, message_id)

    def wrapped(request: Request, text: str) -> dict[str, Any]:
        return api_gateway_event(
            method=request.method, url=public_url(request), headers=request.headers, body=text
        )

    @app.exception_handler(_Refused)
    async def refused(request: Request, exc: _Refused) -> Response:
        del request
        content = {"error": exc.reason, **({"detail": exc.detail} if exc.detail else {})}
        headers = {"WWW-Authenticate": 'Basic realm="webhooks"'} if exc.status == 401 else None
        return JSONResponse(content, status_code=exc.status, headers=headers)

    @app.post("/twilio/sms")
    @app.post("/twilio/status")
    async def twilio(request: Request) -> Response:
        if not settings.twilio_auth_tokens and not settings.twilio_shared_keys:
            raise _Refused(503, "not_configured", "no Twilio auth token or SharedKey is configured")
        event = wrapped(request, await body_text(request))
        # The envelope commproc will see when it processes the message: checking it
        # here means the receiver and the processor verify exactly the same thing.
        try:
            envelope = unwrap_body(json.dumps(event)).envelope
            verify_envelope(
                envelope,
                settings.twilio_auth_tokens,
                shared_keys=settings.twilio_shared_keys,
                public_url=None,
                required=True,
            )
        except SignatureError as exc:
            raise _Refused(403, exc.code, str(exc)) from exc
        except InvalidPayload as exc:
            raise _Refused(400, exc.code, str(exc)) from exc
        await queue(settings.sms_queue_url, event, "twilio")
        # An empty TwiML answer: no reply from here (commproc's agent and keywords answer).
        return Response(_EMPTY_TWIML, media_type="application/xml")

    @app.post("/email/sendgrid")
    async def sendgrid(request: Request) -> Response:
        if sendgrid_key is None:
            raise _Refused(503, "not_configured", "no SendGrid verification key is configured")
        text = await body_text(request)
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            verify_sendgrid(
                sendgrid_key, headers, text, now=now(), max_age_seconds=settings.signature_max_age_seconds
            )
        except SignatureError as exc:
            raise _Refused(403, exc.code, str(exc)) from exc
        await queue(settings.email_queue_url, wrapped(request, text), "sendgrid")
        return Response(status_code=204)

    @app.post("/email/mailgun")
    async def mailgun(request: Request) -> Response:
        if not settings.mailgun_signing_key:
            raise _Refused(503, "not_configured", "no Mailgun signing key is configured")
        text = await body_text(request)
        try:
            data = json.loads(text)
        except ValueError:
            raise _Refused(400, "invalid_payload", "not JSON (use Mailgun's JSON webhooks)") from None
        block = data.get("signature") if isinstance(data, dict) else None
        try:
            verify_mailgun(
                block or {},
                settings.mailgun_signing_key,
                now=now(),
                max_age_seconds=settings.signature_max_age_seconds,
            )
        except SignatureError as exc:
            raise _Refused(403, exc.code, str(exc)) from exc
        await queue(settings.email_queue_url, wrapped(request, text), "mailgun")
        return Response(status_code=204)

    @app.post("/email/postmark")
    async def postmark(request: Request) -> Response:
        # Postmark signs nothing; its webhook URL carries basic-auth credentials instead.
        if not settings.postmark_basic_auth:
            raise _Refused(503, "not_configured", "no Postmark basic-auth credentials are configured")
        if not _basic_auth_matches(request.headers.get("authorization"), settings.postmark_basic_auth):
            raise _Refused(401, "unauthorized")
        text = await body_text(request)
        await queue(settings.email_queue_url, wrapped(request, text), "postmark")
        return Response(status_code=204)

    @app.post("/email/sns")
    async def sns(request: Request) -> Response:
        text = await body_text(request)
        try:
            message = json.loads(text)
        except ValueError:
            raise _Refused(400, "invalid_payload", "not an SNS message") from None
        if not isinstance(message, dict) or not isinstance(message.get("Type"), str):
            raise _Refused(400, "invalid_payload", "not an SNS message")
        try:
            await run_in_threadpool(verifier.verify, message, required=True)
        except SignatureError as exc:
            raise _Refused(403, exc.code, str(exc)) from exc
        except TransientError as exc:
            raise _Refused(503, exc.code, "the SNS signing certificate could not be fetched") from exc
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            subscribe_url = message.get("SubscribeURL")
            if not isinstance(subscribe_url, str):
                raise _Refused(400, "invalid_payload", "SubscriptionConfirmation without SubscribeURL")
            await run_in_threadpool(confirm, subscribe_url)
            _log.info("confirmed the SNS subscription of an allowed topic")
            return Response(status_code=204)
        if kind != "Notification":
            return Response(status_code=204)
        # The notification as SNS sent it: commproc checks its signature again.
        await queue(settings.email_queue_url, text, "sns")
        return Response(status_code=204)

    return app


def _basic_auth_matches(header: str | None, expected: str) -> bool:
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected.encode())
