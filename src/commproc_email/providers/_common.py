"""Helpers shared by the provider normalizers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from commproc_email.addresses import EmailAddress

__all__ = ["enhanced_status", "recipient_fields", "scalar_metadata", "sender_fields"]

_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


def enhanced_status(*texts: str | None) -> str | None:
    """The first RFC 3463 enhanced status code (``5.1.1``) found in ``texts``."""
    for text in texts:
        if text:
            found = _ENHANCED.search(text)
            if found:
                return found.group(1)
    return None


def recipient_fields(address: EmailAddress | None) -> dict[str, Any]:
    """EmailEvent keyword arguments for the recipient."""
    if address is None:
        return {}
    return {"recipient_raw": address.raw, "recipient": address.normalized, "recipient_key": address.key}


def sender_fields(address: EmailAddress | None) -> dict[str, Any]:
    """EmailEvent keyword arguments for the sender."""
    if address is None:
        return {}
    return {"sender": address.normalized, "sender_key": address.key}


def scalar_metadata(values: Mapping[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The plain (string, number, boolean) entries of ``values`` not named in ``skip``."""
    return {str(k): v for k, v in values.items() if k not in skip and isinstance(v, (str, int, float, bool))}
