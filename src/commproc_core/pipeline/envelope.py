"""Unwrapping queue message bodies into provider events.

A body on a commproc queue may be the provider's payload itself (JSON or a
form-encoded string), an SNS notification whose ``Message`` holds it, an API
Gateway proxy event (REST v1 or HTTP API v2, base64 or not) whose ``body``
holds it, or a JSON list of provider events. :func:`unwrap` peels those
layers and returns the items with an :class:`Envelope` describing where they
came from (headers and URL for signature checks, the SNS notification for
SNS signature checks).

Anything it cannot make sense of raises :class:`InvalidPayload`; nothing
else escapes, whatever the bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import attrs

from commproc_core.errors import InvalidPayload
from commproc_core.model import QueueMessage

__all__ = ["CONTROL_TYPES", "Envelope", "Unwrapped", "clean", "clean_text", "unwrap", "unwrap_body"]

#: SNS message types that are about the subscription, not events.
CONTROL_TYPES = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})

_SNS_TYPES = CONTROL_TYPES | {"Notification"}
# A \u0000 or a \uD800-\uDFFF escape: the only ways JSON text carries NUL or a lone surrogate.
_ESCAPED_TROUBLE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_SURROGATE = re.compile("[\ud800-\udfff]")
# Twilio's richest webhooks have about 60 parameters.
_MAX_FIELDS = 1000
_SES_TOPIC_CHECK = "Successfully validated SNS topic"
_MAX_DEPTH = 4


@attrs.frozen(kw_only=True)
class Envelope:
    """Where a provider body came from, for channels that check signatures."""

    #: The outer transport: ``sns``, ``apigw_v1`` or ``apigw_v2``; for a body
    #: delivered as is, its format: ``json`` or ``form``.
    kind: str
    #: The provider body's format: ``json`` or ``form``.
    body_format: str
    #: The provider's body text, exactly as received after SNS / API Gateway
    #: unwrapping and base64 decoding (signatures cover these exact bytes).
    raw_body: str
    #: HTTP headers with lower-cased names; empty when the transport had none.
    headers: Mapping[str, str] = attrs.field(factory=dict)
    method: str | None = None
    #: The public URL the provider called (API Gateway events only).
    url: str | None = None
    query: Mapping[str, str] = attrs.field(factory=dict)
    #: Decoded form pairs, in order, when the body was form-encoded.
    form: tuple[tuple[str, str], ...] | None = None
    #: The SNS notification (Type, MessageId, TopicArn, Signature...) when SNS carried the body.
    sns: Mapping[str, Any] | None = None
    queue_message: QueueMessage | None = None


@attrs.frozen(kw_only=True)
class Unwrapped:
    """The provider events of one queue message, or the control message it is."""

    envelope: Envelope
    items: tuple[Any, ...] = ()
    #: Set for messages that are not events: an SNS control message type, or ``empty_list``.
    control: str | None = None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("a number too large for a float")
    return number


def _parse_json(text: str, field: str) -> Any:
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError as exc:
        raise InvalidPayload("JSON nested too deeply", field=field) from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise InvalidPayload(f"not valid JSON ({exc.msg.removesuffix(' at')}, {where})", field=field) from exc
    except ValueError as exc:
        raise InvalidPayload(f"not valid JSON ({exc})", field=field) from exc
    # NUL and lone surrogates can only come from \u escapes; most bodies have none.
    return clean(value) if _ESCAPED_TROUBLE.search(text) else value


def _parse_form(text: str, field: str) -> tuple[tuple[str, str], ...]:
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, errors="strict", max_num_fields=_MAX_FIELDS
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPayload("neither JSON nor form-encoded (or too many fields)", field=field) from exc
    if not pairs:
        raise InvalidPayload("neither JSON nor form-encoded", field=field)
    return tuple(pairs)


def clean_text(text: str) -> str:
    """``text`` without NUL characters and with lone surrogates replaced by U+FFFD.

    Neither means anything in a provider event, and neither can be stored
    everywhere (PostgreSQL refuses both): cleaning them here gives the same
    outcome on every store.
    """
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text


def clean(value: Any) -> Any:
    """Parsed JSON (or form fields) with every key and string cleaned (:func:`clean_text`), at any depth.

    Containers are cleaned in place, without recursion: a deeply nested
    body costs its size, never the stack.
    """
    if isinstance(value, str):
        return clean_text(value)
    stack = [value] if isinstance(value, (dict, list)) else []
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            items = list(node.items())
            node.clear()
            for key, item in items:
                if isinstance(item, (dict, list)):
                    stack.append(item)
                cleaned = clean_text(item) if isinstance(item, str) else item
                node[clean_text(key) if isinstance(key, str) else key] = cleaned
        else:
            for position, item in enumerate(node):
                if isinstance(item, str):
                    node[position] = clean_text(item)
                elif isinstance(item, (dict, list)):
                    stack.append(item)
    return value


def _looks_like_json(text: str) -> bool:
    return text[:1] in ("{", "[", '"') or text in ("null", "true", "false") or text[:1].isdigit()


def _lower_headers(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k).lower(): v if isinstance(v, str) else str(v) for k, v in raw.items() if v is not None}


def _is_sns(value: Any) -> bool:
    """An SNS message: its ``Type`` and ``MessageId``, and a ``Message`` or a ``TopicArn``.

    ``TopicArn`` is not required: forwarders and SNS emulators drop it, and
    the signature check (when configured) still covers what is there. A
    ``Type`` that is not text is no SNS message (and must not reach the set
    lookup, where a list would raise).
    """
    if not isinstance(value, Mapping):
        return False
    kind = value.get("Type")
    return (
        isinstance(kind, str)
        and kind in _SNS_TYPES
        and isinstance(value.get("MessageId"), str)
        and ("Message" in value or "TopicArn" in value)
    )


def _is_apigw(value: Any) -> bool:
    return isinstance(value, Mapping) and isinstance(value.get("requestContext"), Mapping) and "body" in value


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidPayload(f"expected a string, got {type(value).__name__}", field=field)
    return value


def _apigw_request(event: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The body text and request facts (headers, method, url, query) of an API Gateway event."""
    context = event["requestContext"]
    version = "apigw_v2" if event.get("version") == "2.0" else "apigw_v1"
    headers = _lower_headers(event.get("headers"))
    if version == "apigw_v1" and isinstance(event.get("multiValueHeaders"), Mapping):
        for name, values in event["multiValueHeaders"].items():
            if isinstance(values, list) and values and str(name).lower() not in headers:
                headers[str(name).lower()] = ",".join(str(v) for v in values)
    if version == "apigw_v2":
        http = context.get("http") if isinstance(context.get("http"), Mapping) else {}
        method = http.get("method")
        path = event.get("rawPath") or http.get("path") or "/"
        raw_query = event.get("rawQueryString") or ""
        query = dict(parse_qsl(raw_query, keep_blank_values=True)) if isinstance(raw_query, str) else {}
    else:
        method = event.get("httpMethod")
        # requestContext.path carries the stage ("/prod/sms"), which is part of
        # the URL the provider called; the top-level path does not.
        path = context.get("path") or event.get("path") or "/"
        params = event.get("queryStringParameters")
        query = {str(k): str(v) for k, v in params.items()} if isinstance(params, Mapping) else {}
        raw_query = urlencode(query)
    host = headers.get("host") or context.get("domainName")
    scheme = headers.get("x-forwarded-proto", "https").split(",")[0].strip() or "https"
    url = None
    if isinstance(host, str) and isinstance(path, str):
        url = f"{scheme}://{host}{path}" + (f"?{raw_query}" if raw_query else "")
    body = event.get("body")
    if body is None:
        raise InvalidPayload("API Gateway event has no body", field="body")
    text = _str(body, "body")
    if event.get("isBase64Encoded") is True:
        try:
            text = base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as exc:
            raise InvalidPayload(
                "isBase64Encoded is set but the body is not base64 UTF-8", field="body"
            ) from exc
    facts = {
        "kind": version,
        "headers": headers,
        "method": method if isinstance(method, str) else None,
        "url": url,
        "query": query,
    }
    return text, facts


def _content_type(headers: Mapping[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def unwrap_body(
    body: str,
    queue_message: QueueMessage | None = None,
    *,
    _depth: int = 0,
    _outer: dict[str, Any] | None = None,
) -> Unwrapped:
    """Unwrap one body (see the module docstring)."""
    if _depth > _MAX_DEPTH:
        raise InvalidPayload("envelopes nested too deeply", field="body")
    outer: dict[str, Any] = dict(_outer or {})
    field = outer.get("field", "body")
    text = body.strip()
    if not text:
        raise InvalidPayload("empty", field=field)
    form_hint = _content_type(outer.get("headers", {})) == "application/x-www-form-urlencoded"
    if not form_hint and _looks_like_json(text):
        value = _parse_json(text, field)
        if _is_sns(value) and "sns" not in outer:
            message_text = _str(value.get("Message"), f"{field}.Message")
            outer.update(kind=outer.get("kind", "sns"), sns=dict(value), field=f"{field}.Message")
            if value["Type"] in CONTROL_TYPES:
                envelope = _envelope(outer, "json", message_text, queue_message)
                return Unwrapped(envelope=envelope, control=str(value["Type"]))
            if message_text.startswith(_SES_TOPIC_CHECK):
                # SES confirms a new event destination with this plain-text notification.
                envelope = _envelope(outer, "json", message_text, queue_message)
                return Unwrapped(envelope=envelope, control="SesTopicValidation")
            return unwrap_body(message_text, queue_message, _depth=_depth + 1, _outer=outer)
        if _is_apigw(value) and "apigw" not in outer:
            inner_text, facts = _apigw_request(value)
            outer.update(facts, apigw=True, kind=outer.get("kind", facts["kind"]), field=f"{field}.body")
            return unwrap_body(inner_text, queue_message, _depth=_depth + 1, _outer=outer)
        envelope = _envelope(outer, "json", body, queue_message)
        if isinstance(value, list):
            if not value:
                return Unwrapped(envelope=envelope, control="empty_list")
            return Unwrapped(envelope=envelope, items=tuple(value))
        if isinstance(value, dict):
            return Unwrapped(envelope=envelope, items=(value,))
        raise InvalidPayload(f"expected a JSON object or list, got {type(value).__name__}", field=field)
    pairs = _parse_form(text, field)
    # The envelope keeps the pairs exact (signatures cover them); the event gets them clean.
    envelope = _envelope(outer, "form", body, queue_message, form=pairs)
    return Unwrapped(envelope=envelope, items=({clean_text(k): clean_text(v) for k, v in pairs},))


def _envelope(
    outer: Mapping[str, Any],
    body_format: str,
    raw_body: str,
    queue_message: QueueMessage | None,
    form: tuple[tuple[str, str], ...] | None = None,
) -> Envelope:
    return Envelope(
        kind=outer.get("kind", body_format),
        body_format=body_format,
        raw_body=raw_body,
        headers=outer.get("headers", {}),
        method=outer.get("method"),
        url=outer.get("url"),
        query=outer.get("query", {}),
        form=form,
        sns=outer.get("sns"),
        queue_message=queue_message,
    )


def unwrap(message: QueueMessage) -> Unwrapped:
    """Unwrap a queue message's body; raises InvalidPayload when it makes no sense."""
    return unwrap_body(message.body, message)
