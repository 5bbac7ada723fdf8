"""EmailSettings: the email channel's ``config`` keys.

Signature policies take one of three values:

``off``
    never check;
``if_present``
    check whatever signature arrives and can be checked (an SNS envelope's
    signature; a Mailgun signature when a signing key is set; SendGrid's
    headers when a public key is set) and reject it if it fails;
``required``
    as ``if_present``, and also reject events that arrive without one
    (code ``missing_signature``).

Secrets and keys must not be blank: an empty or whitespace key would turn a
check off, or make one anybody can forge.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from commproc_core.pipeline.settings import ChannelSettings
from commproc_email.signatures import sendgrid_key_problem

__all__ = ["POLICIES", "EmailSettings"]

#: The values a signature policy takes.
POLICIES: Final = ("off", "if_present", "required")


def _policy() -> Any:
    return attrs.field(
        default="if_present",
        metadata={"check": lambda v: None if v in POLICIES else f"must be one of {', '.join(POLICIES)}"},
    )


# Checks see the raw config value, which may be of any type; a wrong type
# is the converter's to report, so each check looks only at its own type.


def _not_blank(value: object) -> str | None:
    if isinstance(value, str) and not value.strip():
        return "must not be empty or whitespace"
    return None


def _sendgrid_key(value: object) -> str | None:
    return sendgrid_key_problem(value) if isinstance(value, str) else None


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _at_least(low: int) -> dict[str, Any]:
    return {"check": lambda v: f"must be at least {low}, got {v}" if _number(v) and v < low else None}


def _seconds(high: float) -> dict[str, Any]:
    def check(value: object) -> str | None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not 0 < value <= high:
            return f"must be above 0 and at most {high:g}, got {value}"
        return None

    return {"check": check}


# Field metadata for secrets, keys and paths: refuse "" and " ".
_NOT_BLANK: Final = {"check": _not_blank}


@attrs.frozen(kw_only=True)
class EmailSettings(ChannelSettings):
    """Settings of the email channel (on top of every channel's)."""

    #: SNS signatures on SES events (SES reaches SQS through SNS, or raw).
    sns_signature: str = _policy()
    #: Topic ARNs SNS messages may come from; empty allows any.
    sns_topic_arns: tuple[str, ...] = ()
    #: Read SNS signing certificates from this directory instead of downloading them.
    sns_certificate_dir: str | None = attrs.field(default=None, metadata=_NOT_BLANK)
    #: Seconds to connect (name lookup, TCP, proxy tunnel, TLS) when downloading a signing certificate.
    sns_certificate_connect_timeout: float = attrs.field(default=3.0, metadata=_seconds(60))
    #: Seconds for the whole answer once the certificate request is sent.
    sns_certificate_read_timeout: float = attrs.field(default=10.0, metadata=_seconds(300))
    mailgun_signature: str = _policy()
    #: Mailgun's "HTTP webhook signing key".
    mailgun_signing_key: str | None = attrs.field(default=None, repr=False, metadata=_NOT_BLANK)
    sendgrid_signature: str = _policy()
    #: The signed event webhook's verification key, as SendGrid shows it (base64) or PEM.
    sendgrid_public_key: str | None = attrs.field(default=None, metadata={"check": _sendgrid_key})
    #: How far a Mailgun or SendGrid signature's timestamp may be from the time
    #: the message entered the queue; None turns the freshness check off.
    signature_max_age_seconds: int | None = attrs.field(default=900, metadata=_at_least(1))
    #: Soft bounces (of distinct messages) within the window that suppress an address.
    soft_bounce_limit: int = attrs.field(default=3, metadata=_at_least(1))
    soft_bounce_window_days: int = attrs.field(default=7, metadata=_at_least(1))

    def __attrs_post_init__(self) -> None:
        # Here rather than in the processor, so validate_processor_config reports it too.
        problems = [
            f"{policy} is required but no {key} is set"
            for policy, key in (
                ("mailgun_signature", "mailgun_signing_key"),
                ("sendgrid_signature", "sendgrid_public_key"),
            )
            if getattr(self, policy) == "required" and not getattr(self, key)
        ]
        if problems:
            raise ValueError("; ".join(problems))
