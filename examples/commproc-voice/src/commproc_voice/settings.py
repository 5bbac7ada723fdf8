"""The voice channel's settings: the ``config`` of its channel configuration, checked by commproc."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from commproc_core import ChannelSettings


def _no_blank_secrets(value: Any) -> str | None:
    secrets = value.values() if isinstance(value, Mapping) else value
    return "must not hold an empty secret" if any(not str(s).strip() for s in secrets) else None


@attrs.frozen(kw_only=True)
class VoiceSettings(ChannelSettings):
    """Settings of the voice channel, on top of every channel's (``agent_mode``, ``batch_size``...)."""

    #: Twilio auth tokens X-Twilio-Signature is checked with (several while rotating).
    auth_tokens: tuple[str, ...] = attrs.field(default=(), repr=False)
    #: SharedKey secrets by id, for webhooks a Webhook Rule signs with a SharedKey.
    shared_keys: dict[str, str] = attrs.field(factory=dict, repr=False)
    #: The URL Twilio called, when API Gateway's view of it differs (custom domain).
    public_url: str | None = None
    #: Reject callbacks without a valid signature.
    require_signature: bool = False
    #: Region for numbers written without a country code when Twilio sends no FromCountry/ToCountry.
    default_region: str | None = None

    def __attrs_post_init__(self) -> None:
        # A blank secret would make a forged signature easy: refused, as commproc-sms refuses it.
        if any(not secret.strip() for secret in (*self.auth_tokens, *self.shared_keys.values())):
            raise ValueError("auth_tokens and shared_keys must not hold an empty secret")
        if self.require_signature and not (self.auth_tokens or self.shared_keys):
            raise ValueError("require_signature is true but neither auth_tokens nor shared_keys is set")
