"""Addresses: email-validator syntax checks, normalization and the lead match key."""

from __future__ import annotations

import pytest

from commproc_core.errors import InvalidPayload
from commproc_email import EmailProcessor, is_valid_email, match_key, parse_address
from commproc_email.addresses import parse_header_address


@pytest.mark.parametrize(
    ("raw", "normalized", "key"),
    [
        ("ann@example.com", "ann@example.com", "ann@example.com"),
        # The domain is lower-cased; the local part keeps its case, the key does not.
        ("Ann.Smith@EXAMPLE.COM", "Ann.Smith@example.com", "ann.smith@example.com"),
        # Plus-addressing stays part of the address.
        ("ann+news@example.com", "ann+news@example.com", "ann+news@example.com"),
        # Punycode (as SES sends IDN domains) becomes Unicode.
        ("user@XN--BCHER-KVA.example", "user@bücher.example", "user@bücher.example"),
        # Full-width domain characters are mapped to ASCII.
        ("user@ＥＸＡＭＰＬＥ.com", "user@example.com", "user@example.com"),
        # Unicode local parts (RFC 6531).
        ("Zoë@bücher.example", "Zoë@bücher.example", "zoë@bücher.example"),
        # Role names are lower-cased by email-validator itself.
        ("POSTMASTER@example.com", "postmaster@example.com", "postmaster@example.com"),
        ("o'brien@example.com", "o'brien@example.com", "o'brien@example.com"),
    ],
)
def test_normalization_and_match_key(raw: str, normalized: str, key: str) -> None:
    address = parse_address(raw, "$.email")
    assert (address.raw, address.normalized, address.key) == (raw, normalized, key)
    assert match_key(raw) == key
    assert is_valid_email(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "no-at-sign.example.com",
        "x@localhost",
        "x@example.invalid",
        "Ann <ann@example.com>",
        "ann@example.com, bob@example.com",
        "ann@exa_mple.com",
        "ann@example.com\n",
        " padded@example.com",
        "",
    ],
)
def test_invalid_addresses_are_rejected_without_echoing_them(raw: str) -> None:
    assert not is_valid_email(raw)
    assert match_key(raw) is None
    with pytest.raises(InvalidPayload) as info:
        parse_address(raw, "$.bounce.bouncedRecipients[0].emailAddress")
    assert info.value.field == "$.bounce.bouncedRecipients[0].emailAddress"
    assert info.value.code == "invalid_payload"
    if raw.strip():
        assert raw.strip() not in str(info.value)


def test_non_string_is_invalid() -> None:
    assert not is_valid_email(None)
    assert not is_valid_email(42)
    with pytest.raises(InvalidPayload, match="got int"):
        parse_address(42, "$.email")


def test_header_addresses_may_carry_a_display_name() -> None:
    address = parse_header_address('"Ann Example" <Ann@Example.com>', "$.from")
    assert (address.normalized, address.key) == ("Ann@example.com", "ann@example.com")
    with pytest.raises(InvalidPayload, match="found 2"):
        parse_header_address("a@example.com, b@example.com", "$.from")


def test_seed_helper_is_valid_email() -> None:
    assert EmailProcessor._is_valid_email("ann@example.com")
    assert not EmailProcessor._is_valid_email("ann@@example.com")
