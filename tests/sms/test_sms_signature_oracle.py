"""commproc's signature check against Twilio's own Python SDK, on generated requests.

``twilio.request_validator.RequestValidator`` (twilio 9.13 and later, a test
dependency only) is the oracle: for generated secrets, URLs (ports, queries,
unicode paths) and form parameters (repeated keys, unicode values), signed
the way Twilio signs them and then received as is, with or without the port,
or tampered with, commproc and the SDK must give the same answer, for both
algorithms and for JSON bodies signed through ``bodySHA256``.

commproc also accepts the URL forms twilio-node tries (its WHATWG and legacy
querystring re-encodings, test_sms_signature_node.py); the tampering here
changes lengths or ports, so no tampered URL can be one of those forms and
the two answers must be equal, not merely ordered.

The URLs are the ones urllib re-serializes unchanged (lower-case scheme, no
empty query, no ``;`` parameters, no fragment, no user info): the SDK checks
``urlparse(url).geturl()`` rather than the URL it is given, and splits a port
off the first colon of the network location, so for other URLs it answers
about a different string.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlparse

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator, get_signature_algorithm

from commproc_core.errors import SignatureError
from commproc_core.pipeline.envelope import Envelope
from commproc_sms.signature import body_sha256, compute_signature, verify_envelope, verify_signature

# Surrogates are left out: the SDK cannot encode them (commproc encodes them as U+FFFD, as Node does).
TEXT = st.characters(blacklist_categories=("Cs",))
URL_TEXT = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="?#;/")
QUERY_TEXT = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="#&=")
ALGORITHMS = st.sampled_from(["HMAC_SHA1", "HMAC_SHA256", "hmac_sha256", "Hmac_Sha1"])


class MultiDict(dict):  # type: ignore[type-arg]
    """Repeated form keys as the SDK reads them from Flask's MultiDict (``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def multidict(pairs: list[tuple[str, str]]) -> MultiDict:
    grouped = MultiDict()
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return grouped


def _url(
    scheme: str,
    labels: list[str],
    tld: str,
    port: int | None,
    segments: list[str],
    pairs: list[tuple[str, str]],
) -> str:
    host = ".".join([*(label.strip("-") or "h" for label in labels), tld])
    base = f"{scheme}://{host}{'' if port is None else f':{port}'}" + "".join("/" + s for s in segments)
    query = "&".join(f"{name}={value}" for name, value in pairs)
    url = base + (f"?{query}" if query else "")
    # Only URLs urllib gives back unchanged (see the module docstring).
    return url if urlparse(url).geturl() == url else base


# Strategies are built once: building them inside each draw costs more than the checks.
URLS = st.builds(
    _url,
    st.sampled_from(["https", "http"]),
    st.lists(st.text("abcXYZ019-", min_size=1, max_size=8), min_size=1, max_size=3),
    st.sampled_from(["com", "example", "io"]),
    st.one_of(st.none(), st.integers(1, 65535), st.sampled_from([80, 443])),
    st.lists(st.text(URL_TEXT, max_size=6), max_size=3),
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(["foo", "bar", "campaign", "q"]), st.text(QUERY_TEXT, max_size=6)),
            st.text(QUERY_TEXT, max_size=8),
        ),
        max_size=4,
    ),
)
PARAMS = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from(["Body", "From", "To", "MessageSid", "MediaUrl0"]), st.text(TEXT, max_size=6)
        ),
        st.text(TEXT, max_size=8),
    ),
    max_size=6,
)
SECRETS = st.text(TEXT, min_size=1, max_size=16)


def host_of(url: str) -> str:
    """The host as written (``urlparse(...).hostname`` would lower-case it)."""
    parsed = urlparse(url)
    return parsed.netloc.rsplit(":", 1)[0] if parsed.port else parsed.netloc


def with_port(url: str, port: int | None) -> str:
    parsed = urlparse(url)
    return parsed._replace(netloc=host_of(url) + ("" if port is None else f":{port}")).geturl()


def longer(url: str) -> str:
    """``url`` with one more character (never in the port, which it would break)."""
    parsed = urlparse(url)
    return url + ("Z" if parsed.path or parsed.query else "/Z")


def other_port(url: str) -> str:
    """``url`` with another port than it has (a port is added when it has none)."""
    port = urlparse(url).port
    new = 8443 if port is None else (port % 65535) + 1
    return with_port(url, new + 1 if new in (80, 443) else new)


PAIRING = st.integers(0, 8)
TAMPERING = st.tuples(
    st.sampled_from(["none", "none", "append", "add", "drop"]),
    st.integers(0, 7),
    st.one_of(st.none(), st.none(), st.text(TEXT, max_size=30)),
)


@dataclass
class Case:
    secret: str
    signed_url: str
    received_url: str
    signed: list[tuple[str, str]]
    received: list[tuple[str, str]]
    algorithm: str
    signature: str


@st.composite
def cases(draw: st.DrawFn) -> Case:
    secret = draw(SECRETS)
    algorithm = draw(ALGORITHMS)
    url = draw(URLS)
    pairs = draw(PARAMS)
    parsed = urlparse(url)
    without_port = with_port(url, None)
    with_default_port = url if parsed.port else with_port(url, 443 if parsed.scheme == "https" else 80)
    # What Twilio signed, and what reached us.
    pairings = [
        (url, url),
        (without_port, url),
        (with_default_port, url),
        (url, without_port),
        (url, with_default_port),
        (url, longer(url)),
        (longer(url), url),
        (url, other_port(url)),
        (
            url.replace("https://", "http://", 1) if url.startswith("https") else "https" + url[4:],
            url,
        ),
    ]
    signed_url, received_url = pairings[draw(PAIRING)]
    received = list(pairs)
    tamper, index, forged = draw(TAMPERING)
    if tamper == "append" and received:
        index %= len(received)
        received[index] = (received[index][0], received[index][1] + "!")
    elif tamper == "add":
        received.append(("Injected", "1"))
    elif tamper == "drop" and received:
        received.pop(index % len(received))
    signature = RequestValidator(secret).compute_signature(signed_url, multidict(pairs), algorithm)
    if forged is not None:
        signature = forged
    return Case(secret, signed_url, received_url, pairs, received, algorithm, signature)


@pytest.mark.slow
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.lists(SECRETS, max_size=2))
def test_agrees_with_the_sdk_on_form_requests(case, other_secrets):
    expected = RequestValidator(case.secret).validate(
        case.received_url, multidict(case.received), case.signature, case.algorithm
    )
    secrets = [*other_secrets, case.secret]
    got = verify_signature(
        secrets, case.received_url, case.signature, params=case.received, algorithm=case.algorithm
    )
    event(f"sdk accepts: {expected}")
    assert got == expected
    # And the same signed text: commproc's signature for Twilio's URL and parameters is the SDK's.
    assert compute_signature(case.secret, case.signed_url, case.signed, algorithm=case.algorithm) == (
        RequestValidator(case.secret).compute_signature(
            case.signed_url, multidict(case.signed), case.algorithm
        )
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    SECRETS,
    URLS,
    st.dictionaries(
        st.text(TEXT, max_size=8), st.one_of(st.text(TEXT, max_size=12), st.integers(), st.booleans())
    ),
    ALGORITHMS,
    st.sampled_from(["none", "body", "hash", "url"]),
)
def test_agrees_with_the_sdk_on_json_bodies(secret, url, document, algorithm, tamper):
    body = json.dumps(document, ensure_ascii=False)
    signed_url = f"{url}{'&' if '?' in url else '?'}bodySHA256={body_sha256(body)}"
    signature = RequestValidator(secret).compute_signature(signed_url, {}, algorithm)
    received_url, received_body = signed_url, body
    if tamper == "body":
        received_body = body + " "
    elif tamper == "hash":
        received_url = signed_url[:-1] + ("0" if signed_url[-1] != "0" else "1")
    elif tamper == "url":
        received_url = signed_url.replace("://", "://x", 1)
    expected = RequestValidator(secret).validate(received_url, received_body, signature, algorithm)
    assert (
        verify_signature([secret], received_url, signature, body=received_body, algorithm=algorithm)
        == expected
    )
    assert expected == (tamper == "none")


# -- envelopes: the settings header picks the secret and the algorithm ------------------------------

AUTH_TOKEN = "auth-token-1"
SHARED_KEYS = {"webhooks_sharedkey_old": "old-secret", "webhooks_sharedkey_new": "new-secret"}
SETTINGS_NAME = st.sampled_from(
    [
        "X-Twilio-Webhooks-Signature-Settings",
        "x-twilio-webhooks-signature-settings",
        "X-TWILIO-WEBHOOKS-SIGNATURE-SETTINGS",
    ]
)


HEADER_PARTS = st.tuples(
    st.sampled_from(["none", "empty", "no-algorithm", "shared", "shared", "unknown-key", "odd-algorithm"]),
    st.sampled_from(sorted(SHARED_KEYS)),
    st.sampled_from(["HMAC_SHA256", "HMAC_SHA1", "hmac_sha256"]),
    st.sampled_from(["HMAC_SHA512", "RSA", "HMAC-SHA256", "sha256"]),
    st.sampled_from(["", " "]),
    st.booleans(),
)


def settings_header(parts: tuple[str, str, str, str, str, bool]) -> tuple[str, str | None, str]:
    """What kind of settings header, the header (None for none) and the secret Twilio signed with."""
    kind, key, algorithm, odd, space, key_first = parts
    if kind in ("none", "empty", "no-algorithm"):
        return kind, {"none": None, "empty": "", "no-algorithm": f"key={key}"}[kind], AUTH_TOKEN
    if kind == "unknown-key":
        return kind, f"key=webhooks_sharedkey_gone,{space}algorithm={algorithm}", "gone-secret"
    if kind == "odd-algorithm":
        return kind, f"key={key},algorithm={odd}", SHARED_KEYS[key]
    named = [f"key={key}", f"{space}algorithm={space}{algorithm}"]
    return kind, ",".join(named if key_first else named[::-1]), SHARED_KEYS[key]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(URLS, PARAMS, HEADER_PARTS.map(settings_header), SETTINGS_NAME, st.booleans())
def test_envelopes_agree_with_the_sdk(url, pairs, header_and_secret, header_name, tampered):
    kind, header, secret = header_and_secret
    algorithm = get_signature_algorithm(header)
    try:
        signature = RequestValidator(secret).compute_signature(url, multidict(pairs), algorithm)
    except ValueError:  # the SDK knows no such algorithm; Twilio would not send it either
        signature = "bm90IGEgc2lnbmF0dXJl"
    received = [*pairs, ("Injected", "1")] if tampered else pairs
    headers = {"X-Twilio-Signature": signature}
    if header is not None:
        headers[header_name] = header
    envelope = Envelope(
        kind="apigw_v2",
        body_format="form",
        raw_body=urlencode(received),
        headers=headers,
        url=url,
        form=tuple(received),
    )
    # The SDK's answer with the secret a user of it would pick: the auth
    # token without an algorithm in the header, else the named SharedKey.
    if kind == "odd-algorithm":
        assert algorithm.upper() not in ("HMAC_SHA1", "HMAC_SHA256")
        expected_code = "unsupported_signature_algorithm"
    elif kind == "unknown-key":
        expected_code = "unknown_signing_key"
    else:
        valid = RequestValidator(secret).validate(url, multidict(received), signature, algorithm)
        expected_code = None if valid else "bad_signature"
    if expected_code is None:
        assert verify_envelope(
            envelope, [AUTH_TOKEN], shared_keys=SHARED_KEYS, public_url=None, required=True
        )
    else:
        with pytest.raises(SignatureError) as caught:
            verify_envelope(envelope, [AUTH_TOKEN], shared_keys=SHARED_KEYS, public_url=None, required=True)
        assert caught.value.code == expected_code
        # Neither the secret nor the signature is ever in the error.
        for secret_text in (AUTH_TOKEN, *SHARED_KEYS.values(), signature):
            assert secret_text not in str(caught.value)
