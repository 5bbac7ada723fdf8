"""commproc: communication events from Amazon SQS, validated, normalized and recorded once.

The names below are the public API; everything else may change between
releases.
"""

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
