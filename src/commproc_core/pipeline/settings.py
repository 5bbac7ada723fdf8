"""Channel settings: the ``config`` mapping of a channel configuration, typed.

Each processor declares an attrs class (``settings_class``) for its config,
a subclass of :class:`ChannelSettings`; :func:`commproc_core.parsing.parse_settings`
structures a plain mapping into it, reporting every problem with its path.
"""

from __future__ import annotations

import attrs

from commproc_core.parsing import POSITIVE, between
from commproc_core.services.agent import AgentConfig

__all__ = ["ChannelSettings"]


@attrs.frozen(kw_only=True)
class ChannelSettings:
    """Settings every channel understands; plugins subclass to add their own."""

    #: Hand inbound messages to the AI agent (the seed's ``agent_mode``).
    agent_mode: bool = False
    agent_config: AgentConfig | None = None
    #: Create a lead for an unknown sender instead of recording the event without one.
    create_leads: bool = True
    #: Seconds a received message stays invisible to other consumers.
    visibility_timeout: int = attrs.field(default=60, metadata=between(1, 43200))
    #: Long-poll wait for receives, 0 to 20 seconds.
    wait_time: int = attrs.field(default=20, metadata=between(0, 20))
    #: Messages per receive, 1 to 10.
    batch_size: int = attrs.field(default=10, metadata=between(1, 10))
    #: First retry delay after a transient failure; doubles with each receive.
    retry_base_seconds: int = attrs.field(default=10, metadata=POSITIVE)
    #: Longest retry delay.
    max_backoff_seconds: int = attrs.field(default=900, metadata=between(1, 43200))
    #: Seconds a processor keeps its copy of the campaigns; 0 reads them for every batch.
    campaign_cache_seconds: float = attrs.field(default=30.0, metadata=between(0, 3600))
    #: Extend visibility once processing has used this fraction of the timeout.
    heartbeat_fraction: float = attrs.field(default=0.5, metadata=between(0.0, 0.95, open_low=True))
