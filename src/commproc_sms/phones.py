"""Sender and recipient addresses: E.164 numbers, short codes, sender ids, WhatsApp user ids.

Built on ``phonenumbers``: a number is accepted when it is *possible* (right
length for its country), because fictional ranges (Ofcom's 07700 900xxx) and
newly opened ranges are not *valid* yet still deliver; validity is kept as a
flag. Short codes are recognised before any parsing, since phonenumbers
would happily turn ``89345`` into ``+189345``.

The ``whatsapp:`` prefix Twilio puts on WhatsApp addresses names the
transport, not the address: it is recorded in ``Address.whatsapp`` (and in
the event's channel) and left out of the canonical form. A WhatsApp user
who has adopted a username may be known only by a business-scoped user id
(BSUID, ``US.13491208655302741918``: a country code, a dot, up to 128
letters and digits; a parent id has ``ENT.`` after the dot). It is an
address of its own kind, kept exactly as received: Meta asks for it to be
stored and sent back unchanged.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Literal

import attrs
import phonenumbers

__all__ = ["Address", "AddressKind", "parse_address"]

#: ``e164`` a phone number; ``short_code`` 3-6 digits; ``alphanumeric`` a
#: sender id such as ``ACME``; ``whatsapp_id`` a WhatsApp business-scoped
#: user id (``whatsapp:US.1234``) with no number; ``invalid`` anything else.
AddressKind = Literal["e164", "short_code", "alphanumeric", "whatsapp_id", "invalid"]

_WHATSAPP = "whatsapp:"
_SHORT_CODE = re.compile(r"[0-9]{3,6}")
# Twilio alphanumeric sender ids: up to 11 of A-Z, a-z, 0-9 and space, at least one letter.
_ALPHANUMERIC = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
# No sender id or number contains a dot, so the form is recognised with or
# without the prefix (the canonical form has none).
_WHATSAPP_ID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}")
_DIGITS = re.compile(r"[0-9]{8,15}")
# phonenumbers refuses inputs longer than this anyway; cutting early bounds the work.
_MAX_INPUT = 250


@attrs.frozen
class Address:
    """One side of a message, classified."""

    #: What was received, stripped of surrounding whitespace, control
    #: characters and the ``whatsapp:`` prefix.
    raw: str
    kind: AddressKind
    #: The canonical form: ``+14155550100``, ``89345``, ``ACME``, ``US.1234``; None when invalid.
    value: str | None
    #: True when it came with the ``whatsapp:`` prefix (the transport, not the address).
    whatsapp: bool = False
    #: For e164: phonenumbers considers the number valid (not only possible).
    valid: bool = False
    #: For e164: the number's region (``US``, ``GB``), when phonenumbers knows it.
    region: str | None = None

    @property
    def canonical(self) -> str:
        """``value``, or ``raw`` when invalid; never with the ``whatsapp:`` prefix.

        For display and conversation participants. What an event records as
        its sender or recipient is ``value``: None when the address is invalid.
        """
        return self.value if self.value is not None else self.raw

    @property
    def is_phone(self) -> bool:
        return self.kind == "e164"

    @property
    def is_whatsapp_id(self) -> bool:
        return self.kind == "whatsapp_id"

    @property
    def lead_key(self) -> str | None:
        """What a lead is matched and created by: the E.164 number or the WhatsApp user id.

        None for short codes, sender ids and invalid addresses: nobody can
        be known by those.
        """
        return self.value if self.kind in ("e164", "whatsapp_id") else None


def _clean(raw: str) -> str:
    text = "".join(ch for ch in raw[: _MAX_INPUT * 2] if unicodedata.category(ch)[0] != "C")
    return text.strip()[:_MAX_INPUT].strip()


def _parse_number(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def _number(text: str, regions: tuple[str | None, ...]) -> phonenumbers.PhoneNumber | None:
    # Without a region phonenumbers only accepts international forms ("+44...", "tel:+44...").
    if (number := _parse_number(text, None)) is not None or text.startswith("+"):
        return number
    for region in regions:
        if region and (number := _parse_number(text, region)) is not None:
            return number
    # A JSON number cannot keep its leading "+": a long run of bare digits
    # that no region explains is most likely an international number.
    if _DIGITS.fullmatch(text):
        return _parse_number("+" + text, None)
    return None


def parse_address(raw: str, region: str | None = None, default_region: str | None = None) -> Address:
    """Classify and normalise ``raw``; never raises.

    ``region`` is the hint Twilio sends with the address (``FromCountry``),
    ``default_region`` the configured fallback. Parsing ``canonical`` again
    gives the same kind and value (the ``whatsapp:`` flag aside).
    """
    if not isinstance(raw, str) or len(raw) > _MAX_INPUT:
        return _parse_address(raw, region, default_region)
    # The same few thousand senders write again and again; phonenumbers takes
    # about 20 microseconds a parse. Addresses are frozen, so sharing is safe.
    return _parse_cached(raw, region, default_region)


@functools.lru_cache(maxsize=8192)
def _parse_cached(raw: str, region: str | None, default_region: str | None) -> Address:
    return _parse_address(raw, region, default_region)


def _parse_address(raw: str, region: str | None = None, default_region: str | None = None) -> Address:
    text = _clean(raw) if isinstance(raw, str) else ""
    whatsapp = text[: len(_WHATSAPP)].lower() == _WHATSAPP
    if whatsapp:
        text = text[len(_WHATSAPP) :].strip()
    if _SHORT_CODE.fullmatch(text):
        return Address(text, "short_code", text, whatsapp)
    if _WHATSAPP_ID.fullmatch(text):
        return Address(text, "whatsapp_id", text, whatsapp)
    if _ALPHANUMERIC.fullmatch(text) and not text.startswith("+"):
        return Address(text, "alphanumeric", text, whatsapp)
    regions = tuple(r.upper() if isinstance(r, str) else None for r in (region, default_region))
    number = _number(text, regions) if text else None
    if number is None:
        return Address(text, "invalid", None, whatsapp)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # What is_valid_number does, without finding the number's region a second time.
    matched = phonenumbers.region_code_for_number(number)
    valid = matched is not None and phonenumbers.is_valid_number_for_region(number, matched)
    region_code = matched or phonenumbers.region_code_for_country_code(number.country_code or 0)
    return Address(
        text,
        "e164",
        e164,
        whatsapp,
        valid=valid,
        region=None if region_code == phonenumbers.UNKNOWN_REGION else region_code,
    )
