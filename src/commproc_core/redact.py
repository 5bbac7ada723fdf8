"""Keeping personal data out of logs and error texts.

commproc's own log calls never pass message bodies, phone numbers or email
addresses at INFO and above. :class:`RedactingFilter` is a second line of
defence for a host's handlers: it masks anything that looks like a phone
number or an email address in records at INFO and above, and in every
traceback whatever the record's level.

:func:`redact` runs in time linear in its input, and with ``limit`` it looks
at no more than a fixed window of it: an error text that echoes a 10 MB
payload costs microseconds, not minutes.
"""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "mask_email", "mask_phone", "redact", "redact_error"]

#: Characters of an address's local part (RFC 5322 atext and dots).
_LOCAL_CHARS = r"\w.!#$%&'*+/=?^`{|}~-"
_LOCAL = f"[{_LOCAL_CHARS}]"
# The local part is found by matching backwards from the "@" (in the reversed
# text), never by trying every start position: a forward pattern such as
# ``[local]+@`` rescans a long run of letters or digits from each of its
# characters, which is quadratic (40k digits took seconds).
_LOCAL_REVERSED = re.compile(f"{_LOCAL}+")
_DOMAIN_AFTER_AT = re.compile(r"@[\w-]+(?:\.[\w-]+)+")
# Digits with common separators, optionally after + or "(": phone-like when
# long enough (see _mask_phone_like), which spares dates and small counts.
# Linear: a start fails only where the run's digits after its first few
# characters are glued to a word, which few starts in one run can be.
_PHONE = re.compile(r"(?<![\w+(])(?:\+|\()?\d[\d\s().-]{5,}\d(?![\w])")
# Numbers that look like phone numbers to _PHONE but are not: IPv4 addresses
# and ISO dates ("2024-01-15 10:30" has ten digits). Kept as they are.
_NOT_PHONE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)|(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
#: How far past ``limit`` redact() reads, so that an address or number cut by
#: the limit is still recognised and masked: an address's local part (64) and
#: domain (255) at their longest.
_MARGIN = 320
_ELLIPSIS = "…"
# At most an address's length, and a written phone number's (with its
# separators): a longer run cut by the window is still long enough to be
# recognised, and stripping it whole could empty the window.
_WORD_REVERSED = re.compile(f"[@{_LOCAL_CHARS}]{{0,{_MARGIN}}}")
_NUMBER_REVERSED = re.compile(r"[\d\s().+-]{0,32}")


def _mask_phone_like(match: re.Match[str]) -> str:
    text = match.group(0)
    if "-" in text or "." in text:
        pieces = _NOT_PHONE.split(text)
        if len(pieces) > 1:
            kept = _NOT_PHONE.findall(text)
            masked = [_PHONE.sub(_mask_phone_like, piece) for piece in pieces]
            return "".join(m + (kept[i] if i < len(kept) else "") for i, m in enumerate(masked))
    digits = re.sub(r"\D", "", text)
    if len(digits) >= (7 if text.startswith("+") else 9):
        return mask_phone(("+" if text.startswith("+") else "") + digits)
    return text


def mask_phone(value: str | None) -> str:
    """``+14155550100`` -> ``+14*******00``: enough to tell numbers apart, not to dial one."""
    if not value:
        return "<none>"
    if len(value) <= 4:
        return "*" * len(value)
    # A quarter, but never more than a country and area code's worth: a long
    # run of digits is no phone number and its digits are payload.
    keep = min(max(2, len(value) // 4), 4)
    return value[:keep] + "*" * (len(value) - keep - 2) + value[-2:]


def mask_email(value: str | None) -> str:
    """``ann.lee@example.com`` -> ``a***@example.com``."""
    if not value:
        return "<none>"
    local, _, domain = value.rpartition("@")
    if not local:
        return mask_phone(value)
    return f"{local[:1]}***@{domain}"


def _mask_emails(text: str) -> str:
    if "@" not in text:
        return text
    reversed_text = text[::-1]
    size = len(text)
    parts: list[str] = []
    done = 0
    for found in _DOMAIN_AFTER_AT.finditer(text):
        at = found.start()
        if at < done:
            continue
        # The local part ends at the "@"; it may not reach back into the
        # address masked before it ("a@b.com/c@d.com" is two addresses).
        local = _LOCAL_REVERSED.match(reversed_text, size - at, size - done)
        if local is None:
            continue
        start = at - len(local.group(0))
        parts += (text[done:start], mask_email(text[start : found.end()]))
        done = found.end()
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _mask(text: str) -> str:
    return _PHONE.sub(_mask_phone_like, _mask_emails(text))


def _without_partial_value(window: str) -> str:
    # The window was cut from a longer text: drop the word and the run of
    # digits it ends with, which may be the start of an address or number too
    # short now to be recognised ("ann.lee@exa", "+1 415 55"), and would
    # otherwise show unmasked once masking has shortened the text before it.
    backwards = window[::-1]
    word = _WORD_REVERSED.match(backwards)
    end = word.end() if word else 0
    number = _NUMBER_REVERSED.match(backwards, end)
    end = number.end() if number else end
    return window[: len(window) - end]


def redact(text: str, limit: int | None = None) -> str:
    """``text`` with email addresses and phone-like numbers masked.

    With ``limit``, the result holds at most ``limit`` characters (ending in
    "…" when cut), and only the start of ``text`` is read: truncation comes
    first, so a huge text costs no more than a short one.
    """
    if limit is None:
        return _mask(text)
    if limit <= 0:
        return ""
    window = text[: limit + _MARGIN]
    if len(text) > len(window):
        window = _without_partial_value(window)
    masked = _mask(window)
    if len(masked) <= limit and len(window) == len(text):
        return masked
    return masked[: limit - 1] + _ELLIPSIS


def redact_error(error: BaseException, limit: int = 1000) -> str:
    """``str(error)``, masked and cut to ``limit`` characters: safe to store or log."""
    try:
        text = str(error)
    except Exception:  # an exception whose __str__ fails still deserves a record
        text = type(error).__name__
    return redact(text, limit)


class RedactingFilter(logging.Filter):
    """A handler filter masking emails and phone numbers in INFO+ records and in every traceback.

    Messages below ``level`` (DEBUG by default) are left whole for debugging,
    but a traceback quotes exception texts, which quote payload values, so
    tracebacks and stack traces are masked at every level. The traceback is
    formatted here (as :class:`logging.Formatter` does) and stored in
    ``record.exc_text``, which formatters print instead of formatting again.
    """

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= self.level:
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: leave it for the handler to report
                message = None
            if message is not None:
                cleaned = redact(message)
                if cleaned != message:
                    record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
