"""EmailSettings: the email channel's ``config`` keys.

Signature policies take one of three values:

``off``
    never check;
``if_present``
    check whatever signature arrives and can be checked (an SNS envelope's
    signature; a Mailgun signature when a signing key is set; SendGrid's
    headers when a public key is set) and reject it if it fails;
``required``
    as ``if_present``, and also reject events that arrive without one.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from commproc_core.pipeline.settings import ChannelSettings

__all__ = ["POLICIES", "EmailSettings"]

#: The values a signature policy takes.
POLICIES: Final = ("off", "if_present", "required")


def _policy() -> Any:
    return attrs.field(
        default="if_present",
        metadata={"check": lambda v: None if v in POLICIES else f"must be one of {', '.join(POLICIES)}"},
    )


def _at_least(low: int) -> dict[str, Any]:
    return {"check": lambda v: None if v >= low else f"must be at least {low}, got {v}"}


@attrs.frozen(kw_only=True)
class EmailSettings(ChannelSettings):
    """Settings of the email channel (on top of every channel's)."""

    #: SNS signatures on SES events (SES reaches SQS through SNS, or raw).
    sns_signature: str = _policy()
    #: Topic ARNs SNS messages may come from; empty allows any.
    sns_topic_arns: tuple[str, ...] = ()
    mailgun_signature: str = _policy()
    #: Mailgun's "HTTP webhook signing key".
    mailgun_signing_key: str | None = None
    sendgrid_signature: str = _policy()
    #: The signed event webhook's verification key, as SendGrid shows it (base64) or PEM.
    sendgrid_public_key: str | None = None
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
