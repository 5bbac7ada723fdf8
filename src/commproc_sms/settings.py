"""SMSSettings: the ``config`` mapping of an SMS channel, typed and checked."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import phonenumbers
from cattrs.errors import AttributeValidationNote, IterableValidationError, IterableValidationNote

from commproc_core.pipeline.settings import ChannelSettings
from commproc_core.services.keywords import KeywordConfig

__all__ = ["SMSSettings"]

_BLANK = "must not be blank: anyone can sign with a secret of only whitespace"


def _region(value: str) -> str | None:
    return (
        None if value.upper() in phonenumbers.SUPPORTED_REGIONS else "is not a region code such as US or GB"
    )


def _secret(value: str) -> str | None:
    return None if value.strip() else _BLANK


def _noted(error: Exception, note: object) -> Exception:
    # cattrs reads a failure's place from its notes; transform_error then
    # reports it as a path (config.auth_tokens[1]) like any type problem.
    error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
    return error


def _no_blank_secrets(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    """Refuse blank secrets (and blank key ids) in a list or mapping field, naming each place."""
    entries: Iterable[tuple[Any, Any]] = value.items() if isinstance(value, Mapping) else enumerate(value)
    problems: list[Exception] = []
    for place, secret in entries:
        note = IterableValidationNote(f"Structuring {attribute.name} @ index {place!r}", place, str)
        if isinstance(place, str) and not place.strip():
            problems.append(_noted(ValueError("a SharedKey id must not be blank"), note))
        elif not secret.strip():
            problems.append(_noted(ValueError(_BLANK), note))
    if problems:
        group = IterableValidationError(f"blank secrets in {attribute.name}", problems, type(value))
        where = AttributeValidationNote(
            f"Structuring attribute {attribute.name}", attribute.name, type(value)
        )
        raise _noted(group, where)


@attrs.frozen(kw_only=True)
class SMSSettings(ChannelSettings):
    """SMS channel settings; every key is optional (see docs/sms.md)."""

    #: Twilio auth token used to verify X-Twilio-Signature (the default scheme, HMAC-SHA1).
    auth_token: str | None = attrs.field(default=None, repr=False, metadata={"check": _secret})
    #: More tokens accepted while rotating (the secondary auth token).
    auth_tokens: tuple[str, ...] = attrs.field(default=(), repr=False, validator=_no_blank_secrets)
    #: SharedKey secrets by SharedKey id, for webhooks a Twilio Webhook Rule
    #: signs with a SharedKey (X-Twilio-Webhooks-Signature-Settings names the
    #: id). Several during a rotation.
    shared_keys: dict[str, str] = attrs.field(factory=dict, repr=False, validator=_no_blank_secrets)
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
            raise ValueError(
                "require_signature is true but none of auth_token, auth_tokens and shared_keys is set"
            )

    @property
    def account_tokens(self) -> tuple[str, ...]:
        """The auth tokens: secrets of the default signature scheme."""
        # parse_settings refuses blank secrets with their paths; leaving them out
        # here keeps a hand-built SMSSettings from verifying with one.
        return tuple(t for t in (self.auth_token, *self.auth_tokens) if t and t.strip())

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every secret a signature may be made with: auth tokens, then SharedKey secrets.

        Signatures are checked when this is not empty.
        """
        return (*self.account_tokens, *(s for s in self.shared_keys.values() if s.strip()))
