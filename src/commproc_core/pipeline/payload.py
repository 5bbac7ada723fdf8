"""What a channel is handed and what it hands back: a payload before validation, a provider event after."""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from commproc_core.pipeline.envelope import Envelope

__all__ = ["EventPayload", "ProviderEvent"]


class ProviderEvent(Protocol):
    """What the base needs to know of a channel's parsed event."""

    @property
    def dedupe_key(self) -> str: ...

    @property
    def event_type(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def channel(self) -> str: ...


@attrs.frozen(kw_only=True)
class EventPayload:
    """One provider event as unwrapped from a queue message, before validation."""

    #: A dict parsed from JSON, or the form fields as a dict of strings.
    data: Any
    envelope: Envelope
    #: Position in a list body; 0 for a body holding one event.
    index: int = 0
