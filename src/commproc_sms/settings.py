"""SMSSettings: the ``config`` mapping of an SMS channel, typed and checked."""

from __future__ import annotations

import attrs
import phonenumbers

from commproc_core.pipeline.settings import ChannelSettings
from commproc_core.services.keywords import KeywordConfig

__all__ = ["SMSSettings"]


def _region(value: str) -> str | None:
    return (
        None if value.upper() in phonenumbers.SUPPORTED_REGIONS else "is not a region code such as US or GB"
    )


@attrs.frozen(kw_only=True)
class SMSSettings(ChannelSettings):
    """SMS channel settings; every key is optional (see docs/sms.md)."""

    #: Twilio auth token used to verify X-Twilio-Signature.
    auth_token: str | None = attrs.field(default=None, repr=False)
    #: More tokens accepted while rotating (the secondary auth token).
    auth_tokens: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: The public URL Twilio calls, when API Gateway's own view of it differs
    #: (custom domain, proxy). Without a query string, the request's is appended.
    public_url: str | None = None
    #: Reject messages without a valid signature (for queues anyone may write to).
    require_signature: bool = False
    #: Region for numbers written without a country code when Twilio sends no
    #: FromCountry/ToCountry hint.
    default_region: str | None = attrs.field(default=None, metadata={"check": _region})
    #: Keyword lists, filler words, phrases and replies (added to the built-in ones).
    keywords: KeywordConfig = attrs.field(factory=KeywordConfig)
    #: The HELP reply of this channel, by language code (``{"en": "Acme: ..."}``).
    help_text: dict[str, str] = attrs.field(factory=dict)
    #: Queue our own keyword confirmations. Turn off where the provider
    #: already answers every keyword (Twilio's default opt-out handling).
    send_keyword_replies: bool = True

    def __attrs_post_init__(self) -> None:
        if self.require_signature and not self.tokens:
            raise ValueError("require_signature is true but neither auth_token nor auth_tokens is set")

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every auth token a signature may be made with."""
        return tuple(t for t in (self.auth_token, *self.auth_tokens) if t)
