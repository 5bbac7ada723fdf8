"""commproc: communication events from Amazon SQS, validated, normalized and recorded once.

The names below are the public API; everything else may change between
releases. They are loaded on first use, so ``import commproc_core`` costs
next to nothing (no SQLAlchemy, cattrs, boto3 or HTTP client until needed).
"""

from __future__ import annotations

import importlib

# Not typing.TYPE_CHECKING: importing typing alone costs more than the rest of this module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from commproc_core.agents import AgentResponderError, OpenAIChatResponder, TemplateResponder
    from commproc_core.errors import (
        ChannelLoadError,
        ChannelNotFound,
        CommprocError,
        ConfigError,
        DuplicateChannelError,
        InvalidPayload,
        PermanentError,
        SignatureError,
        StoreUnavailable,
        TransientError,
        UniqueViolation,
        UnknownEventShape,
    )
    from commproc_core.factory import ProcessorFactory
    from commproc_core.parsing import parse_settings
    from commproc_core.pipeline.envelope import Envelope
    from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload, ProviderEvent
    from commproc_core.pipeline.settings import ChannelSettings
    from commproc_core.pipeline.stats import BatchReport, MessageOutcome, ProcessingStats
    from commproc_core.services.agent import AgentConfig
    from commproc_core.services.outbox import OutboxDispatcher, SendError

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AgentConfig": "commproc_core.services.agent",
    "AgentResponderError": "commproc_core.agents",
    "BaseChannelProcessor": "commproc_core.pipeline.processor",
    "BatchReport": "commproc_core.pipeline.stats",
    "ChannelLoadError": "commproc_core.errors",
    "ChannelNotFound": "commproc_core.errors",
    "ChannelSettings": "commproc_core.pipeline.settings",
    "CommprocError": "commproc_core.errors",
    "ConfigError": "commproc_core.errors",
    "DuplicateChannelError": "commproc_core.errors",
    "Envelope": "commproc_core.pipeline.envelope",
    "EventPayload": "commproc_core.pipeline.processor",
    "InvalidPayload": "commproc_core.errors",
    "MessageOutcome": "commproc_core.pipeline.stats",
    "OpenAIChatResponder": "commproc_core.agents",
    "OutboxDispatcher": "commproc_core.services.outbox",
    "PermanentError": "commproc_core.errors",
    "ProcessingStats": "commproc_core.pipeline.stats",
    "ProcessorFactory": "commproc_core.factory",
    "ProviderEvent": "commproc_core.pipeline.processor",
    "SendError": "commproc_core.services.outbox",
    "SignatureError": "commproc_core.errors",
    "StoreUnavailable": "commproc_core.errors",
    "TemplateResponder": "commproc_core.agents",
    "TransientError": "commproc_core.errors",
    "UniqueViolation": "commproc_core.errors",
    "UnknownEventShape": "commproc_core.errors",
    "parse_settings": "commproc_core.parsing",
}

__all__ = [
    "AgentConfig",
    "AgentResponderError",
    "BaseChannelProcessor",
    "BatchReport",
    "ChannelLoadError",
    "ChannelNotFound",
    "ChannelSettings",
    "CommprocError",
    "ConfigError",
    "DuplicateChannelError",
    "Envelope",
    "EventPayload",
    "InvalidPayload",
    "MessageOutcome",
    "OpenAIChatResponder",
    "OutboxDispatcher",
    "PermanentError",
    "ProcessingStats",
    "ProcessorFactory",
    "ProviderEvent",
    "SendError",
    "SignatureError",
    "StoreUnavailable",
    "TemplateResponder",
    "TransientError",
    "UniqueViolation",
    "UnknownEventShape",
    "__version__",
    "parse_settings",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'commproc_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
