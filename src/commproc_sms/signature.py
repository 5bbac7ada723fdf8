"""X-Twilio-Signature: an HMAC over the URL Twilio called and its parameters.

Twilio signs a webhook one of two ways. By default, HMAC-SHA1 keyed with the
account auth token. When a Webhook Rule applies a Setting with a SharedKey,
it keys the HMAC with that SharedKey's secret and the algorithm the Setting
names, and says so in ``X-Twilio-Webhooks-Signature-Settings``
(``key=<sharedKeyId>,algorithm=HMAC_SHA256``). A missing or empty settings
header, or one without ``algorithm=``, means the auth-token scheme.

Either way the signed text follows twilio-python's ``RequestValidator``: the
full URL (query string included), then each parameter name followed by its
value, names sorted and each name's values sorted, duplicates once; the
signature is the base64 HMAC of that text. JSON bodies are signed
differently: the URL carries ``bodySHA256`` (hex SHA-256 of the raw body)
and is signed with no parameters. The URL is tried in every form Twilio's
SDKs try (:func:`~commproc_sms.signature_urls.url_variants`), and the
parameters sorted both by code point (twilio-python) and by UTF-16 code unit
(twilio-node), since the two orders differ for characters beyond U+FFFF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

from commproc_core.errors import SignatureError
from commproc_core.pipeline.envelope import Envelope
from commproc_sms.signature_urls import url_variants

__all__ = [
    "HMAC_SHA1",
    "HMAC_SHA256",
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "SignatureSettings",
    "body_sha256",
    "compute_signature",
    "signature_settings",
    "url_variants",
    "verify_envelope",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1 = "HMAC_SHA1"
HMAC_SHA256 = "HMAC_SHA256"

_HASHES: dict[str, Callable[..., Any]] = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}
_SURROGATE = re.compile("[\ud800-\udfff]")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_PRINTABLE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,80}")
_log = logging.getLogger(__name__)


@attrs.frozen
class SignatureSettings:
    """What ``X-Twilio-Webhooks-Signature-Settings`` names: a SharedKey id and an algorithm."""

    #: The SharedKey id (``key=``), None when the header names none.
    key_id: str | None = None
    #: The algorithm (``algorithm=``), None for the auth-token scheme (HMAC-SHA1).
    algorithm: str | None = None

    @property
    def shared_key(self) -> bool:
        """True when the webhook was signed with a SharedKey rather than the auth token."""
        return self.algorithm is not None


def signature_settings(header: str | None) -> SignatureSettings:
    """Parse ``X-Twilio-Webhooks-Signature-Settings`` as Twilio's SDKs do.

    Parts are separated by commas, names and values trimmed; the first
    non-empty ``key=`` and ``algorithm=`` win. A header without ``algorithm=``
    means the auth-token scheme, whatever else it says.
    """
    found: dict[str, str] = {}
    for part in (header or "").split(","):
        name, separator, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if separator and value and name in ("key", "algorithm"):
            found.setdefault(name, value)
    return SignatureSettings(key_id=found.get("key"), algorithm=found.get("algorithm"))


def _hash(algorithm: str | None) -> Callable[..., Any] | None:
    return _HASHES.get((algorithm or HMAC_SHA1).upper())


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: encode it as JavaScript's Buffer.from does, as U+FFFD.
        return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def _grouped(params: Iterable[tuple[str, str]] | Mapping[str, str]) -> dict[str, set[str]]:
    pairs = params.items() if isinstance(params, Mapping) else params
    values: dict[str, set[str]] = {}
    for name, value in pairs:
        values.setdefault(name, set()).add(value)
    return values


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", errors="surrogatepass")


def _signed_suffixes(values: Mapping[str, set[str]]) -> list[str]:
    """The parameter text in code-point order and, where it differs, in UTF-16 order."""
    by_code_point = "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    if by_code_point.isascii() or not _ASTRAL.search(by_code_point):
        # Without characters beyond U+FFFF the two orders are one.
        return [by_code_point]
    by_code_unit = "".join(
        name + value for name in sorted(values, key=_utf16) for value in sorted(values[name], key=_utf16)
    )
    return [by_code_point] if by_code_unit == by_code_point else [by_code_point, by_code_unit]


def _sign(secret: str, text: str, digest: Callable[..., Any]) -> str:
    mac = hmac.new(_utf8(secret), _utf8(text), digest).digest()
    return base64.b64encode(mac).decode("ascii")


def compute_signature(
    secret: str,
    url: str,
    params: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    *,
    algorithm: str = HMAC_SHA1,
) -> str:
    """The X-Twilio-Signature value for ``url`` and form ``params``.

    ``secret`` is the auth token, or a SharedKey's secret; ``algorithm`` is
    ``HMAC_SHA1`` (the auth-token scheme) or ``HMAC_SHA256``, in any case.
    An unknown algorithm raises ValueError.
    """
    digest = _hash(algorithm)
    if digest is None:
        raise ValueError("unsupported webhook signature algorithm; HMAC_SHA1 and HMAC_SHA256 are known")
    return _sign(secret, url + _signed_suffixes(_grouped(params))[0], digest)


def body_sha256(body: str) -> str:
    """The hex SHA-256 Twilio puts in ``bodySHA256`` for a JSON body."""
    return hashlib.sha256(_utf8(body)).hexdigest()


def _query_value(url: str, name: str) -> str | None:
    for key, value in parse_qsl(urlsplit(url).query):
        if key == name:
            return value
    return None


def verify_signature(
    secrets: Sequence[str],
    url: str,
    signature: str,
    *,
    params: Iterable[tuple[str, str]] | Mapping[str, str] = (),
    body: str | None = None,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """True when ``signature`` verifies with one of ``secrets`` (several during a rotation).

    ``algorithm`` is the one the settings header named (HMAC_SHA1 when there
    is none); an unknown one never verifies. With ``body`` given and a
    ``bodySHA256`` in the URL's query, the body must hash to it and the URL
    is checked without parameters.
    """
    digest = _hash(algorithm)
    if digest is None:
        return False
    values = _grouped(params)
    body_ok = True
    if body is not None:
        expected_hash = _query_value(url, "bodySHA256")
        if expected_hash is not None:
            body_ok = hmac.compare_digest(_utf8(body_sha256(body)), _utf8(expected_hash))
            values = {}
    expected = _utf8(signature)
    suffixes = _signed_suffixes(values)
    texts = [form + suffix for form in url_variants(url) for suffix in suffixes]
    # Each comparison is constant-time, so a forger learns nothing about the
    # expected signature; stopping at a match tells only that one matched.
    for secret in secrets:
        keyed = hmac.new(_utf8(secret), digestmod=digest)
        for text in texts:
            mac = keyed.copy()
            mac.update(_utf8(text))
            if hmac.compare_digest(base64.b64encode(mac.digest()), expected):
                return body_ok
    return False


# -- envelopes --------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    if lowered in headers:
        return headers[lowered]
    # Envelopes lower-case header names; an Envelope built by hand may not have.
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


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
    except (ValueError, RecursionError):
        return []
    if not isinstance(value, dict):
        return []
    return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items()]


def _secrets_for(
    settings: SignatureSettings, auth_tokens: Sequence[str], shared_keys: Mapping[str, str]
) -> tuple[str, ...]:
    """The secrets the webhook may be signed with; SignatureError when commproc has none of them."""
    if not settings.shared_key:
        if not auth_tokens:
            raise SignatureError(
                "signed with the account auth token (no X-Twilio-Webhooks-Signature-Settings "
                "algorithm) but no auth_token is configured",
                field="headers.x-twilio-signature",
                code="unknown_signing_key",
            )
        return tuple(auth_tokens)
    if settings.key_id is None:
        # No key named: any secret of ours may have signed it, and trying
        # them all accepts nothing an attacker could sign.
        secrets = (*auth_tokens, *shared_keys.values())
    else:
        secret = shared_keys.get(settings.key_id)
        secrets = () if secret is None else (secret,)
    if not secrets:
        shown = settings.key_id if _PRINTABLE_ID.fullmatch(settings.key_id or "") else "(not shown)"
        _log.debug("X-Twilio-Webhooks-Signature-Settings names SharedKey %s, which is not configured", shown)
        raise SignatureError(
            "X-Twilio-Webhooks-Signature-Settings names a SharedKey that is not in shared_keys "
            "(add its id and secret to shared_keys)",
            field="headers.x-twilio-webhooks-signature-settings",
            code="unknown_signing_key",
        )
    return secrets


def verify_envelope(
    envelope: Envelope,
    auth_tokens: Sequence[str],
    *,
    shared_keys: Mapping[str, str] | None = None,
    public_url: str | None,
    required: bool,
) -> bool:
    """Check an envelope's X-Twilio-Signature; SignatureError when it fails.

    Checking is on when any secret is configured (an auth token or a
    SharedKey): a signature that is present must then verify, whichever
    scheme made it. Returns True when a signature was present and verified,
    False when there was none (or nothing to check it with) and none is
    ``required``. SignatureError codes: ``bad_signature`` (missing or not
    matching), ``unsupported_signature_algorithm``, ``unknown_signing_key``.
    """
    keys = shared_keys or {}
    signature = _header(envelope.headers, SIGNATURE_HEADER)
    if not signature:
        if required:
            raise SignatureError("X-Twilio-Signature header missing", field="headers.x-twilio-signature")
        return False
    if not auth_tokens and not keys:
        return False
    settings = signature_settings(_header(envelope.headers, SIGNATURE_SETTINGS_HEADER))
    if _hash(settings.algorithm) is None:
        raise SignatureError(
            "X-Twilio-Webhooks-Signature-Settings names an algorithm commproc does not know "
            "(HMAC_SHA1 and HMAC_SHA256 are supported)",
            field="headers.x-twilio-webhooks-signature-settings",
            code="unsupported_signature_algorithm",
        )
    secrets = _secrets_for(settings, auth_tokens, keys)
    url = _signed_url(envelope, public_url)
    if not url:
        raise SignatureError(
            "cannot verify X-Twilio-Signature without a URL: set public_url", field="public_url"
        )
    json_body = envelope.body_format == "json" and _query_value(url, "bodySHA256") is not None
    if not verify_signature(
        secrets,
        url,
        signature,
        params=[] if json_body else _signed_params(envelope),
        body=envelope.raw_body if json_body else None,
        algorithm=settings.algorithm or HMAC_SHA1,
    ):
        secret_names = "a shared_keys secret" if settings.shared_key else "auth_token"
        raise SignatureError(
            f"X-Twilio-Signature does not match the URL and parameters (check {secret_names} and public_url)",
            field="headers.x-twilio-signature",
        )
    return True
