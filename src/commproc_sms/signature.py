"""X-Twilio-Signature: HMAC-SHA1 over the URL Twilio called and its parameters.

The algorithm follows twilio-python's ``RequestValidator``: the full URL
(query string included), then each parameter name followed by its value,
names sorted by code point and each name's values sorted; base64 of the
HMAC-SHA1 keyed with the auth token. JSON bodies are signed differently: the
URL carries ``bodySHA256`` (hex SHA-256 of the raw body) and is signed with
no parameters. Twilio is inconsistent about ports, so the URL is tried with
the port removed and with the scheme's default port added.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from commproc_core.errors import SignatureError
from commproc_core.pipeline.envelope import Envelope

__all__ = ["body_sha256", "compute_signature", "url_variants", "verify_envelope", "verify_signature"]

_DEFAULT_PORTS = {"https": 443, "http": 80}


def compute_signature(
    auth_token: str, url: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = ()
) -> str:
    """The X-Twilio-Signature value for ``url`` and form ``params``."""
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode("utf-8"), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def body_sha256(body: str) -> str:
    """The hex SHA-256 Twilio puts in ``bodySHA256`` for a JSON body."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def url_variants(url: str) -> list[str]:
    """``url`` as given, without its port, and with the scheme's default port."""
    parts = urlsplit(url)
    variants = [url]
    userinfo, at, host = parts.netloc.rpartition("@")
    try:
        port = parts.port
    except ValueError:
        return variants
    if port is not None:
        # Cut the port off the netloc text itself, so host case and IPv6 brackets stay as sent.
        variants.append(urlunsplit(parts._replace(netloc=userinfo + at + host[: host.rfind(":")])))
    elif parts.scheme in _DEFAULT_PORTS and host:
        variants.append(
            urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}:{_DEFAULT_PORTS[parts.scheme]}"))
        )
    return variants


def verify_signature(
    auth_tokens: Sequence[str],
    url: str,
    signature: str,
    *,
    params: Iterable[tuple[str, str]] = (),
    body: str | None = None,
) -> bool:
    """True when ``signature`` verifies with one of ``auth_tokens`` (several during a token rotation).

    With ``body`` given and a ``bodySHA256`` in the URL's query, the body
    must hash to it and the URL is checked without parameters.
    """
    pairs = list(params)
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    if body is not None and "bodySHA256" in query:
        if not hmac.compare_digest(body_sha256(body), query["bodySHA256"].lower()):
            return False
        pairs = []
    expected = signature.strip().encode("utf-8")
    matched = False
    # Every candidate is computed and compared, so the time taken does not
    # tell which token or URL form came close.
    for token in auth_tokens:
        for candidate in url_variants(url):
            computed = compute_signature(token, candidate, pairs).encode("ascii")
            matched |= hmac.compare_digest(computed, expected)
    return matched


def _signed_url(envelope: Envelope, public_url: str | None) -> str | None:
    if not public_url:
        return envelope.url
    if "?" in public_url or not envelope.url or "?" not in envelope.url:
        return public_url
    return f"{public_url}?{envelope.url.split('?', 1)[1]}"


def _signed_params(envelope: Envelope) -> list[tuple[str, str]]:
    if envelope.form is not None:
        return list(envelope.form)
    # A JSON body without bodySHA256: Twilio's form parameters turned into
    # JSON on the way (an API Gateway mapping template, say) sign as the form did.
    try:
        value = json.loads(envelope.raw_body)
    except ValueError:
        return []
    if not isinstance(value, dict):
        return []
    return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()]


def verify_envelope(
    envelope: Envelope, auth_tokens: Sequence[str], *, public_url: str | None, required: bool
) -> bool:
    """Check an envelope's X-Twilio-Signature; SignatureError when it fails.

    Returns True when a signature was present and verified, False when there
    was none (or no token to check it with) and none is ``required``.
    """
    signature = envelope.headers.get("x-twilio-signature")
    if not signature:
        if required:
            raise SignatureError("X-Twilio-Signature header missing", field="headers.x-twilio-signature")
        return False
    if not auth_tokens:
        return False
    url = _signed_url(envelope, public_url)
    if not url:
        raise SignatureError(
            "cannot verify X-Twilio-Signature without a URL: set public_url", field="public_url"
        )
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    json_body = envelope.body_format == "json" and "bodySHA256" in query
    params = [] if json_body else _signed_params(envelope)
    if not verify_signature(
        auth_tokens, url, signature, params=params, body=envelope.raw_body if json_body else None
    ):
        raise SignatureError(
            "X-Twilio-Signature does not match the URL and parameters (check auth_token and public_url)",
            field="headers.x-twilio-signature",
        )
    return True
