"""Keeping secrets out of what the commands print: URL passwords, secret query parameters, config secrets.

Every URL a command, log line or error prints goes through :func:`mask_urls`
(the CLI's log formatter and error printer apply it to whole lines), so a
database password in ``postgresql://user:password@host/db`` or a token in
``?api_key=...`` never reaches a terminal or a log collector.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MASK", "MaskingFormatter", "mask_config", "mask_urls", "secret_key"]

MASK = "***"

#: Words that make a config key, or a URL query parameter, secret (``auth_token``,
#: ``mailgun_signing_key``, ``apiKey``, ``X-Amz-Signature``; not ``keywords``).
_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "key",
        "apikey",
        "signature",
        "sig",
        "credential",
        "credentials",
        "authorization",
    }
)
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")

# scheme://user:password@ : the password is whatever sits between the colon and the @.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@?#]*:)(?P<password>[^\s@/?#]+)(?=@)")
# ?name=value or &name=value where the name looks secret (X-Amz-Signature, api_key, token...).
_QUERY = re.compile(r"(?P<head>[?&;](?P<name>[^=&;\s#]+)=)(?P<value>[^&;\s#]+)")


def secret_key(name: str) -> bool:
    """Whether a config key or query parameter named ``name`` holds a secret."""
    return any(
        word.lower().rstrip("s") in _SECRET_WORDS or word.lower() in _SECRET_WORDS
        for word in _WORD.findall(name)
    )


def _query(match: re.Match[str]) -> str:
    return match.group("head") + MASK if secret_key(match.group("name")) else match.group(0)


def mask_urls(text: str) -> str:
    """``text`` with the password of every URL and every secret-looking query value masked."""
    if "://" not in text and "=" not in text:
        return text
    text = _USERINFO.sub(lambda m: m.group("head") + MASK, text)
    return _QUERY.sub(_query, text) if "=" in text else text


def _mask_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return mask_config(value)
    if isinstance(value, (list, tuple)):
        return [_mask_value(item) for item in value]
    if isinstance(value, str):
        return mask_urls(value)
    return value


def mask_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with secrets masked: values of secret-looking keys, and passwords inside URLs.

    Nested mappings and lists are masked too (a list of tokens under
    ``auth_tokens`` is masked whole; a list of URLs has each URL's password
    masked). Empty secret values stay visible, so "no token set" shows.
    """
    masked: dict[str, Any] = {}
    for key, value in config.items():
        if secret_key(str(key)) and value not in (None, "", [], {}) and not isinstance(value, bool):
            masked[key] = MASK
        else:
            masked[key] = _mask_value(value)
    return masked


class MaskingFormatter(logging.Formatter):
    """Wraps another formatter; every formatted line (tracebacks included) has its URL secrets masked."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_urls(self.inner.format(record))
