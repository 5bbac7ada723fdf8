"""Keeping personal data out of logs.

commproc's own log calls never pass message bodies, phone numbers or email
addresses at INFO and above. :class:`RedactingFilter` is a second line of
defence for a host's handlers: it masks anything that looks like a phone
number or an email address in records at INFO and above.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "mask_email", "mask_phone", "redact"]

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
# Digits with common separators, optionally after + or "(": phone-like when
# long enough (see _mask_phone_like), which spares dates and small counts.
_PHONE = re.compile(r"(?<![\w+(])(?:\+|\()?\d[\d\s().-]{5,}\d(?![\w])")


def _mask_phone_like(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if len(digits) >= (7 if text.startswith("+") else 9):
        return mask_phone(("+" if text.startswith("+") else "") + digits)
    return text


def mask_phone(value: str | None) -> str:
    """``+14155550100`` -> ``+1415*****00``: enough to tell numbers apart, not to dial one."""
    if not value:
        return "<none>"
    if len(value) <= 4:
        return "*" * len(value)
    keep = max(2, len(value) // 4)
    return value[:keep] + "*" * (len(value) - keep - 2) + value[-2:]


def mask_email(value: str | None) -> str:
    """``ann.lee@example.com`` -> ``a***@example.com``."""
    if not value:
        return "<none>"
    local, _, domain = value.rpartition("@")
    if not local:
        return mask_phone(value)
    return f"{local[:1]}***@{domain}"


def redact(text: str) -> str:
    """``text`` with email addresses and phone-like numbers masked."""
    text = _EMAIL.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE.sub(_mask_phone_like, text)


class RedactingFilter(logging.Filter):
    """A handler filter masking emails and phone numbers in INFO+ records."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True
