"""Address classification and E.164 normalisation (phones.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commproc_sms.phones import parse_address


@pytest.mark.parametrize(
    ("raw", "region", "kind", "canonical", "valid"),
    [
        ("+14155550123", None, "e164", "+14155550123", True),
        ("(415) 555-0132", "US", "e164", "+14155550132", True),
        ("415.555.0132", "US", "e164", "+14155550132", True),
        ("1 415 555 0132", "US", "e164", "+14155550132", True),
        ("(415) 555-0132 ext. 5", "US", "e164", "+14155550132", True),
        ("011 44 7700 900123", "US", "e164", "+447700900123", False),
        # Ofcom's drama range: possible, not valid, and still accepted.
        ("07700 900123", "GB", "e164", "+447700900123", False),
        ("+44 (0)7700 900123", None, "e164", "+447700900123", False),
        ("0044 7700 900123", "GB", "e164", "+447700900123", False),
        ("+33 6 12 34 56 78", None, "e164", "+33612345678", True),
        # A JSON number lost its "+": no region explains it, so it is international.
        ("447700900123", "US", "e164", "+447700900123", False),
        ("14155550123", None, "e164", "+14155550123", True),
        ("  +1 415 555 0123\t", None, "e164", "+14155550123", True),
        ("tel:+1-415-555-0123", None, "e164", "+14155550123", True),
        # Short codes stay short codes (phonenumbers alone would say +189345).
        ("89345", "US", "short_code", "89345", False),
        ("247", None, "short_code", "247", False),
        ("ACME", None, "alphanumeric", "ACME", False),
        ("My Brand", None, "alphanumeric", "My Brand", False),
        ("1800FLOWERS", "US", "alphanumeric", "1800FLOWERS", False),
        # The whatsapp: prefix is the transport (Address.whatsapp, the event's channel), not the address.
        ("whatsapp:+14155550123", None, "e164", "+14155550123", True),
        ("WhatsApp: +44 7700 900123", None, "e164", "+447700900123", False),
        # WhatsApp business-scoped user ids: kept exactly as received, prefix or not.
        ("whatsapp:US.13491208655302741918", None, "whatsapp_id", "US.13491208655302741918", False),
        ("US.13491208655302741918", None, "whatsapp_id", "US.13491208655302741918", False),
        ("whatsapp:HK.ENT.a1B2c3", None, "whatsapp_id", "HK.ENT.a1B2c3", False),
        # Not a business-scoped id: lower-case country, underscore, too long.
        ("whatsapp:us.1234", None, "invalid", "us.1234", False),
        ("whatsapp:foo_bar", None, "invalid", "foo_bar", False),
        ("whatsapp:US." + "1" * 129, None, "invalid", "US." + "1" * 129, False),
        # Too short to be a number anywhere.
        ("+1415555013", None, "invalid", "+1415555013", False),
        ("(415) 555-0132", None, "invalid", "(415) 555-0132", False),
        ("", None, "invalid", "", False),
        ("not a number at all", None, "invalid", "not a number at all", False),
        ("+", None, "invalid", "+", False),
    ],
)
def test_classification(raw, region, kind, canonical, valid):
    address = parse_address(raw, region)
    assert address.kind == kind
    assert address.canonical == canonical
    assert address.valid is valid


def test_default_region_is_the_fallback_and_the_hint_wins():
    assert parse_address("07700 900123", None, "GB").canonical == "+447700900123"
    assert parse_address("(415) 555-0132", "US", "GB").canonical == "+14155550132"
    assert parse_address("(415) 555-0132", "ZZZ", "US").canonical == "+14155550132"


def test_region_reported():
    assert parse_address("+447700900123").region == "GB"
    assert parse_address("+14155550123").region == "US"
    assert parse_address("89345").region is None


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, "US", "GB", "FR", "IN", "zz", ""]))
def test_never_raises_and_is_idempotent(raw, region):
    first = parse_address(raw, region)
    second = parse_address(first.canonical, region)
    assert (second.kind, second.canonical, second.valid) == (first.kind, first.canonical, first.valid)


_digits = st.text(alphabet="0123456789 ()-.+", min_size=1, max_size=20)


@settings(max_examples=400, deadline=None)
@given(_digits, st.sampled_from([None, "US", "GB", "DE"]))
def test_phone_like_text_is_idempotent_and_e164_shaped(raw, region):
    first = parse_address(raw, region)
    if first.kind == "e164":
        assert first.value is not None and first.value.startswith("+") and first.value[1:].isdigit()
        assert parse_address(first.canonical) == parse_address(first.canonical, "FR")
    assert parse_address(first.canonical, region).canonical == first.canonical


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=600))
@settings(max_examples=200, deadline=None)
def test_huge_or_odd_text_never_raises(raw):
    parse_address("whatsapp:" + raw)
    parse_address(raw, "US", "GB")
