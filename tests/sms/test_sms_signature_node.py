"""The URL and parameter forms twilio-node accepts and twilio-python does not, as explicit vectors.

twilio-node's ``validateRequest`` (twilio 6.3) tries the URL as received
with and without its port, then the URL as ``new URL(url).toString()``
serializes it, with and without the port, and each of those two with its
query re-encoded by Node's legacy ``querystring`` module; it sorts parameter
names and values by UTF-16 code unit. The signatures below were computed with
twilio-node's ``getExpectedTwilioSignature`` over the URL Twilio signed, and
its ``validateRequest`` accepted each for the URL received. The Python SDK
rejects every "node only" one, which is why the differential test against
it (test_sms_signature_oracle.py) cannot cover them.
"""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from commproc_sms.signature import verify_signature
from commproc_sms.signature_urls import legacy_querystring, normalized_url, url_variants

NODE_TOKEN = "s3cr3t"

# (received URL, URL Twilio signed, parameters, algorithm, twilio-node's signature)
NODE_ONLY = [
    pytest.param(
        "https://example.com/path?test=param'WithQuote",
        "https://example.com/path?test=param%27WithQuote",
        {},
        "HMAC_SHA1",
        "HkuXLxVQ7zHv9LmGpzlLuGaxhJY=",
        id="quote-received-escape-signed",
    ),
    pytest.param(
        "https://example.com/path?test=param'WithQuote",
        "https://example.com/path?test=param%27WithQuote",
        {},
        "HMAC_SHA256",
        "hGWbB7of6+JzzdTY9hAQMaHIaffda9/2Tmtm7L0dgX4=",
        id="quote-received-escape-signed-sha256",
    ),
    pytest.param(
        "https://example.com/path?test=param%27WithQuote",
        "https://example.com/path?test=param'WithQuote",
        {},
        "HMAC_SHA1",
        "GfI7onHX/KQ2k1oVS3cUTVk4IEw=",
        id="escape-received-quote-signed",
    ),
    pytest.param(
        "https://example.com/path?test=param%27WithQuote",
        "https://example.com/path?test=param'WithQuote",
        {},
        "HMAC_SHA256",
        "W2tjeedVPnOunOMVuGMwCMhJfntGeiXif//rrmrmfIA=",
        id="escape-received-quote-signed-sha256",
    ),
    pytest.param(
        "https://example.com/sms hook/é",
        "https://example.com/sms%20hook/%C3%A9",
        {},
        "HMAC_SHA1",
        "8MU2la0AjQUNoal16w7CCk7VdZ8=",
        id="path-percent-encoded",
    ),
    pytest.param(
        "https://Example.COM/sms",
        "https://example.com/sms",
        {},
        "HMAC_SHA256",
        "K9dtX4NIKX+4ueCVFDHD5fHhs1LMHJprXfCZlIhUZjI=",
        id="host-lower-cased",
    ),
    pytest.param(
        "https://example.com/a/../sms",
        "https://example.com/sms",
        {},
        "HMAC_SHA1",
        "+qAygKDrdFD3/zx7656OaB15Z1E=",
        id="dot-segments-resolved",
    ),
    pytest.param(
        "https://example.com/sms?a=1&b=2&a=3",
        "https://example.com/sms?a=1&a=3&b=2",
        {},
        "HMAC_SHA1",
        "OcRPTp18YJ4LT+yOwMiCzELufL0=",
        id="legacy-repeated-keys-grouped",
    ),
    pytest.param(
        "https://example.com/sms?b=1&2=x&1=y",
        "https://example.com/sms?1=y&2=x&b=1",
        {},
        "HMAC_SHA256",
        "9WxAkMdQeiZFP61ZyWmPQyMQAF1R3YECQDyiuYm2YV0=",
        id="legacy-integer-keys-first",
    ),
    pytest.param(
        "https://example.com:8443/sms?q=a+b",
        "https://example.com:8443/sms?q=a%20b",
        {},
        "HMAC_SHA1",
        "YsCW+00R10VIIiRSFN4DtAu1dWk=",
        id="legacy-plus-as-%20-port-kept",
    ),
    pytest.param(
        "https://example.com/sms?q='",
        "https://example.com:443/sms?q=%27",
        {},
        "HMAC_SHA256",
        "9gALalSyqL4gOD+ceYIEOW4hHL9F510/L5Fq+RY9FCA=",
        id="normalized-with-default-port",
    ),
    pytest.param(
        "https://bücher.example/sms",
        "https://xn--bcher-kva.example/sms",
        {},
        "HMAC_SHA1",
        "zlketaPhknbHivE7I4UMdefG40Y=",
        id="host-punycode",
    ),
    pytest.param(
        "https://example.com/sms?flag",
        "https://example.com/sms?flag=",
        {},
        "HMAC_SHA256",
        "IGi89NVYeCffcqy6SjvinIhnxmkCrLVClAtOQUfm/qg=",
        id="legacy-bare-key",
    ),
    pytest.param(
        "https://example.com/sms",
        "https://example.com/sms",
        {"\ue000": "1", "\U0001f600": "2"},
        "HMAC_SHA1",
        "ArmDJWZYDO1etH1vqX0y5oFi3Io=",
        id="names-in-utf16-order",
    ),
    pytest.param(
        "https://example.com/sms",
        "https://example.com/sms",
        {"Body": ["\ue000", "\U0001f600"]},
        "HMAC_SHA256",
        "ySNnfoIV50l48AkvXwJkE2MItyADipi2EIAX33HpiAM=",
        id="values-in-utf16-order",
    ),
]


def _pairs(params):
    return [(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])]


class _MultiDict(dict):
    def getall(self, name):
        value = self[name]
        return value if isinstance(value, list) else [value]


@pytest.mark.parametrize(("received", "signed", "params", "algorithm", "signature"), NODE_ONLY)
def test_node_only_forms_are_accepted(received, signed, params, algorithm, signature):
    assert verify_signature([NODE_TOKEN], received, signature, params=_pairs(params), algorithm=algorithm)
    # Not a form twilio-python tries: this vector is covered here and nowhere else.
    assert not RequestValidator(NODE_TOKEN).validate(received, _MultiDict(params), signature, algorithm)


@pytest.mark.parametrize(("received", "signed", "params", "algorithm", "signature"), NODE_ONLY)
def test_node_only_forms_still_need_the_secret_and_the_parameters(
    received, signed, params, algorithm, signature
):
    assert not verify_signature(["s3cr3T"], received, signature, params=_pairs(params), algorithm=algorithm)
    tampered = [*_pairs(params), ("Body", "forged")]
    assert not verify_signature([NODE_TOKEN], received, signature, params=tampered, algorithm=algorithm)
    assert not verify_signature(
        [NODE_TOKEN], received + "x", signature, params=_pairs(params), algorithm=algorithm
    )


def test_a_different_escape_is_not_an_equivalent_form():
    # twilio-node's validateRequest rejects both too: neither of its forms turns them into %28.
    signature = "etVPuy1bO3gFvIbR+OQf2OB32gM="
    assert verify_signature([NODE_TOKEN], "https://example.com/path?test=param%28WithQuote", signature)
    for received in (
        "https://example.com/path?test=param'WithQuote",
        "https://example.com/path?test=param(WithQuote",
    ):
        assert not verify_signature([NODE_TOKEN], received, signature)


def test_lone_surrogates_are_signed_as_node_encodes_them():
    # Buffer.from(text, "utf-8") turns a lone surrogate into U+FFFD; the Python SDK raises instead.
    signature = "Af8OZ0N+qnsin7FqDLVoQQERREg="
    assert verify_signature([NODE_TOKEN], "https://example.com/sms", signature, params=[("Body", "a\ud800b")])


def test_python_only_form_is_accepted_too():
    # urllib drops an empty query; twilio-python checks that form, twilio-node does not.
    validator = RequestValidator(NODE_TOKEN)
    signature = validator.compute_signature("https://example.com/sms", {})
    assert validator.validate("https://example.com/sms?", {}, signature)
    assert verify_signature([NODE_TOKEN], "https://example.com/sms?", signature)


# -- twilio-node's own test vectors (spec/validation.spec.js) --------------------------------------

SPEC_TOKEN = "12345"
SPEC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
SPEC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


@pytest.mark.parametrize(
    ("url", "params", "signature"),
    [
        (SPEC_URL, SPEC_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (SPEC_URL.replace(".com", ".com:1234"), SPEC_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        (
            SPEC_URL.replace(".com", ".com:1234").replace("https", "http"),
            SPEC_PARAMS,
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
        (SPEC_URL, SPEC_PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (SPEC_URL.replace("https", "http"), SPEC_PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        (
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            SPEC_PARAMS,
            "CukzLTc1tT5dXEDIHm/tKBanW10=",
        ),
        ("https://user@mycompany.com/myapp.php?foo=1&bar=2", SPEC_PARAMS, "2YRLlVAflCqxaNicjMpJcSTgzSs="),
        (
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
            SPEC_PARAMS,
            "ZQFR1PTIZXF2MXB8ZnKCvnnA+rI=",
        ),
        (SPEC_URL + "&Body=It's+amazing", SPEC_PARAMS, "TfZzewPq8wqrGlMfyAud8+/IvJ0="),
        (
            SPEC_URL,
            {"MessagingBinding.Address": ["+1325xxxxxxx", "+1415xxxxxxx"]},
            "83O6e2vORAoJHUNzJjDWN1jz+BA=",
        ),
        (
            SPEC_URL,
            {"MessagingBinding.Address": ["+1415xxxxxxx", "+1325xxxxxxx"]},
            "83O6e2vORAoJHUNzJjDWN1jz+BA=",
        ),
        (
            SPEC_URL,
            {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234", "1234"]},
            "IK+Dwps556ElfBT0I3Rgjkr1wJU=",
        ),
    ],
)
def test_twilio_node_spec_vectors(url, params, signature):
    assert verify_signature([SPEC_TOKEN], url, signature, params=_pairs(params))
    assert not verify_signature([SPEC_TOKEN], url, "WRONG_SIGNATURE", params=_pairs(params))


@pytest.mark.parametrize(
    ("url", "body", "signature"),
    [
        (
            SPEC_URL + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
            '{"property": "value", "boolean": true}',
            "a9nBmqA0ju/hNViExpshrM61xv4=",
        ),
        (
            SPEC_URL + "&bodySHA256=44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "{}",
            "Ldidvp12m26NI7eqEvxnEpkd9Hc=",
        ),
        (
            "https://mycompany.com/myapp.php?bodySHA256="
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
            '{"property": "value", "boolean": true}',
            "y77kIzt2vzLz71DgmJGsen2scGs=",
        ),
    ],
)
def test_twilio_node_spec_body_vectors(url, body, signature):
    assert verify_signature([SPEC_TOKEN], url, signature, body=body)
    assert not verify_signature([SPEC_TOKEN], url, signature, body=body + " ")
    assert not verify_signature([SPEC_TOKEN], url, "WRONG_SIGNATURE", body=body)


# -- the pieces, against what Node itself gives ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "href"),
    [
        (
            "https://a/^`{}|\\x/%2e/y/.%2E/z?q='\"<>^`{}|~ é#f '\"<>`^",
            "https://a/^%60%7B%7D|/x/z?q=%27%22%3C%3E^`{}|~%20%C3%A9#f%20'%22%3C%3E%60^",
        ),
        ("HTTPS://User:P@ss@Ex.COM:0443/a?b", "https://User:P%40ss@ex.com/a?b"),
        ("https://[0:0:0:0:0:ffff:1.2.3.4]:8443/", "https://[::ffff:102:304]:8443/"),
        ("https://[2001:db8:0:0:1:0:0:1]/", "https://[2001:db8::1:0:0:1]/"),
        ("https://0x7f.1/", "https://127.0.0.1/"),
        ("https://ex%41mple.com/", "https://example.com/"),
        ("https://bücher.de/", "https://xn--bcher-kva.de/"),
        ("https://a.com?x", "https://a.com/?x"),
        ("https://a.com#x", "https://a.com/#x"),
        ("https://a.com/x?", "https://a.com/x?"),
        ("https:\\\\a.com\\x", "https://a.com/x"),
        (" \thttps://a.c\nom/x\t ", "https://a.com/x"),
        ("https://a.com/x/..", "https://a.com/"),
        ("https://a.com/x/.", "https://a.com/x/"),
        ("https://a.com/%41%2e%2E/", "https://a.com/%41%2e%2E/"),
        ("https://a.com:/x", "https://a.com/x"),
        ("https://a.com:0/x", "https://a.com:0/x"),
        ("https://a.com./x", "https://a.com./x"),
        ("https://user@a.com:443/x?y#z", "https://user@a.com/x?y#z"),
    ],
)
def test_normalized_url_matches_node(url, href):
    assert normalized_url(url) == href


@pytest.mark.parametrize(
    "url",
    [
        "https://exa mple.com/",
        "https://a.com:99999/",
        "https://[::1/",
        "https://:443/x",
        "https://u@/x",
        "https://1.2.3.256/",
        "https://a.com:8x/",
        "https://[fe80::1%25eth0]/",
        "ftp://a.com/",
        "not a url",
    ],
)
def test_urls_node_cannot_parse_have_no_normalized_form(url):
    assert normalized_url(url) is None


@pytest.mark.parametrize(
    ("query", "legacy"),
    [
        ("a=1&b=2&a=3", "a=1&a=3&b=2"),
        ("b=1&2=x&1=y&0=z", "0=z&1=y&2=x&b=1"),
        ("q=a+b", "q=a%20b"),
        ("q=It%27s", "q=It's"),
        ("q=%zz%41", "q=%25zzA"),
        ("q=%E0%A4", "q=%EF%BF%BD"),
        ("flag&&=v&", "flag=&=v"),
        ("x=%7E%21%2A%28%29", "x=~!*()"),
        ("k=%C3%A9", "k=%C3%A9"),
    ],
)
def test_legacy_querystring_matches_node(query, legacy):
    assert legacy_querystring(f"https://a.com/x?{query}") == f"https://a.com/x?{legacy}"


def test_url_variants_lists_the_received_url_first_and_each_form_once():
    forms = url_variants("https://example.com/sms?q=It's+ok")
    assert forms == [
        "https://example.com/sms?q=It's+ok",
        "https://example.com:443/sms?q=It's+ok",
        "https://example.com/sms?q=It%27s+ok",
        "https://example.com:443/sms?q=It%27s+ok",
        "https://example.com/sms?q=It's%20ok",
        "https://example.com:443/sms?q=It's%20ok",
    ]
