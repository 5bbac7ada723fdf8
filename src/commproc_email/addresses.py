"""Email addresses: validation, normalization and the match key leads are found by.

Validation is email-validator's syntax check only. Deliverability checks are
DNS lookups: slow, beside the point for events about mail already sent, and
failed by the reserved ``example`` domains.

Three forms of an address travel with every event:

* ``raw``: as the provider sent it (SES sends IDN domains as Punycode);
* ``normalized``: email-validator's form: domain lower-cased and IDNA mapped
  to Unicode, NFC applied, the local part's case kept;
* ``key``: ``normalized`` with the local part lower-cased too. RFC 5321 allows
  case-sensitive local parts, but no major mailbox provider uses that, so the
  key is what leads, consent and soft-bounce counts are matched on.

A ``+tag`` stays part of the address: ``ann+news@`` and ``ann@`` may be
different people as far as commproc can know.
"""

from __future__ import annotations

import functools
from email.utils import getaddresses

import attrs
from email_validator import EmailNotValidError, validate_email

from commproc_core.errors import InvalidPayload

__all__ = ["EmailAddress", "is_valid_email", "match_key", "parse_address", "parse_header_address"]


@attrs.frozen
class EmailAddress:
    """A validated address in its three forms (see the module docstring)."""

    raw: str
    normalized: str
    key: str
    #: The all-ASCII form (Punycode domain); None when the local part is not ASCII.
    ascii: str | None = None


#: RFC 5321's longest address (a path of 256 octets, less the angle brackets).
MAX_LENGTH = 254


def _validate(value: str) -> EmailAddress:
    if len(value) > MAX_LENGTH * 4:
        # email-validator needs about 250 ms for a 256 KiB "address"; no address is
        # this long in any encoding, and email-validator itself checks the real limit.
        raise EmailNotValidError("longer than any address")
    return _validate_cached(value)


@functools.lru_cache(maxsize=8192)
def _validate_cached(value: str) -> EmailAddress:
    # The same leads' addresses come back event after event, and a check takes
    # about 100 microseconds. Addresses are frozen, so sharing is safe; a
    # refusal raises again each time (lru_cache keeps only results).
    checked = validate_email(value, check_deliverability=False)
    key = f"{checked.local_part.lower()}@{checked.domain}"
    return EmailAddress(raw=value, normalized=checked.normalized, key=key, ascii=checked.ascii_email)


def parse_address(value: object, field: str) -> EmailAddress:
    """Validate ``value`` as a bare address; InvalidPayload naming ``field`` when it is not one.

    The error never repeats the address: it ends up in failure records and logs.
    """
    if not isinstance(value, str):
        raise InvalidPayload(f"expected an email address string, got {type(value).__name__}", field=field)
    try:
        return _validate(value)
    except EmailNotValidError as exc:
        raise InvalidPayload(f"not a valid email address ({type(exc).__name__})", field=field) from exc


def parse_header_address(value: object, field: str) -> EmailAddress:
    """Like :func:`parse_address`, for header values that may carry a display name.

    ``"Ann Example" <ann@example.com>`` gives ``ann@example.com``. A value
    naming several addresses is rejected rather than guessed at.
    """
    if not isinstance(value, str):
        raise InvalidPayload(f"expected an email address string, got {type(value).__name__}", field=field)
    found = [addr for _, addr in getaddresses([value]) if addr]
    if len(found) != 1:
        raise InvalidPayload(f"expected one address, found {len(found)}", field=field)
    address = parse_address(found[0], field)
    return attrs.evolve(address, raw=value)


def is_valid_email(value: object) -> bool:
    """True when ``value`` is a syntactically valid bare address."""
    if not isinstance(value, str):
        return False
    try:
        _validate(value)
    except EmailNotValidError:
        return False
    return True


def match_key(value: str) -> str | None:
    """The match key of ``value``, or None when it is no valid address."""
    try:
        return _validate(value).key
    except EmailNotValidError:
        return None
