"""commproc: communication events from Amazon SQS, validated, normalized and recorded once.

The names below are the public API, with the documented modules
docs/plugins.md lists (``commproc_core.model``, ``.ports``, ``.errors``,
``.services``, ``.stores``, ``.queues``, ``.testing``...); everything else
may change between releases. They are loaded on first use, so ``import
commproc_core`` costs next to nothing (no SQLAlchemy, cattrs, boto3 or HTTP
client until needed).
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
    from commproc_core.model import (
        Campaign,
        ChannelConfig,
        CommunicationEvent,
        Consent,
        Conversation,
        Lead,
        Media,
        Message,
        OutboundMessage,
        Participant,
        QueueMessage,
        Thread,
        new_id,
    )
    from commproc_core.parsing import parse_settings
    from commproc_core.pipeline.compat import SeedChannelProcessor
    from commproc_core.pipeline.envelope import Envelope
    from commproc_core.pipeline.processor import BaseChannelProcessor, EventPayload, ProviderEvent
    from commproc_core.pipeline.settings import ChannelSettings
    from commproc_core.pipeline.stats import BatchReport, MessageOutcome, ProcessingStats
    from commproc_core.ports import (
        AgentReply,
        AgentRequest,
        AgentResponder,
        ChannelProcessor,
        Clock,
        MessageQueue,
        Sender,
        SendResult,
        Store,
        UnitOfWork,
    )
    from commproc_core.queues.memory import MemoryQueue
    from commproc_core.services.agent import AgentConfig, AIAgentService
    from commproc_core.services.campaigns import CampaignMatchingService
    from commproc_core.services.consent import ConsentService
    from commproc_core.services.conversations import ConversationService
    from commproc_core.services.keywords import KeywordProcessingService
    from commproc_core.services.leads import LeadMatchingService
    from commproc_core.services.outbox import OutboxDispatcher, SendError
    from commproc_core.stores.memory import MemoryStore
    from commproc_core.stores.session import BatchSession
    from commproc_core.stores.sql.factory import open_store

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AIAgentService": "commproc_core.services.agent",
    "AgentConfig": "commproc_core.services.agent",
    "AgentReply": "commproc_core.ports",
    "AgentRequest": "commproc_core.ports",
    "AgentResponder": "commproc_core.ports",
    "AgentResponderError": "commproc_core.agents",
    "BaseChannelProcessor": "commproc_core.pipeline.processor",
    "BatchReport": "commproc_core.pipeline.stats",
    "BatchSession": "commproc_core.stores.session",
    "Campaign": "commproc_core.model",
    "CampaignMatchingService": "commproc_core.services.campaigns",
    "ChannelConfig": "commproc_core.model",
    "ChannelLoadError": "commproc_core.errors",
    "ChannelNotFound": "commproc_core.errors",
    "ChannelProcessor": "commproc_core.ports",
    "ChannelSettings": "commproc_core.pipeline.settings",
    "Clock": "commproc_core.ports",
    "CommprocError": "commproc_core.errors",
    "CommunicationEvent": "commproc_core.model",
    "ConfigError": "commproc_core.errors",
    "Consent": "commproc_core.model",
    "ConsentService": "commproc_core.services.consent",
    "Conversation": "commproc_core.model",
    "ConversationService": "commproc_core.services.conversations",
    "DuplicateChannelError": "commproc_core.errors",
    "Envelope": "commproc_core.pipeline.envelope",
    "EventPayload": "commproc_core.pipeline.processor",
    "InvalidPayload": "commproc_core.errors",
    "KeywordProcessingService": "commproc_core.services.keywords",
    "Lead": "commproc_core.model",
    "LeadMatchingService": "commproc_core.services.leads",
    "Media": "commproc_core.model",
    "MemoryQueue": "commproc_core.queues.memory",
    "MemoryStore": "commproc_core.stores.memory",
    "Message": "commproc_core.model",
    "MessageOutcome": "commproc_core.pipeline.stats",
    "MessageQueue": "commproc_core.ports",
    "OpenAIChatResponder": "commproc_core.agents",
    "OutboundMessage": "commproc_core.model",
    "OutboxDispatcher": "commproc_core.services.outbox",
    "Participant": "commproc_core.model",
    "PermanentError": "commproc_core.errors",
    "ProcessingStats": "commproc_core.pipeline.stats",
    "ProcessorFactory": "commproc_core.factory",
    "ProviderEvent": "commproc_core.pipeline.processor",
    "QueueMessage": "commproc_core.model",
    "SeedChannelProcessor": "commproc_core.pipeline.compat",
    "SendError": "commproc_core.services.outbox",
    "SendResult": "commproc_core.ports",
    "Sender": "commproc_core.ports",
    "SignatureError": "commproc_core.errors",
    "Store": "commproc_core.ports",
    "StoreUnavailable": "commproc_core.errors",
    "TemplateResponder": "commproc_core.agents",
    "Thread": "commproc_core.model",
    "TransientError": "commproc_core.errors",
    "UniqueViolation": "commproc_core.errors",
    "UnitOfWork": "commproc_core.ports",
    "UnknownEventShape": "commproc_core.errors",
    "new_id": "commproc_core.model",
    "open_store": "commproc_core.stores.sql.factory",
    "parse_settings": "commproc_core.parsing",
}

__all__ = [
    "AIAgentService",
    "AgentConfig",
    "AgentReply",
    "AgentRequest",
    "AgentResponder",
    "AgentResponderError",
    "BaseChannelProcessor",
    "BatchReport",
    "BatchSession",
    "Campaign",
    "CampaignMatchingService",
    "ChannelConfig",
    "ChannelLoadError",
    "ChannelNotFound",
    "ChannelProcessor",
    "ChannelSettings",
    "Clock",
    "CommprocError",
    "CommunicationEvent",
    "ConfigError",
    "Consent",
    "ConsentService",
    "Conversation",
    "ConversationService",
    "DuplicateChannelError",
    "Envelope",
    "EventPayload",
    "InvalidPayload",
    "KeywordProcessingService",
    "Lead",
    "LeadMatchingService",
    "Media",
    "MemoryQueue",
    "MemoryStore",
    "Message",
    "MessageOutcome",
    "MessageQueue",
    "OpenAIChatResponder",
    "OutboundMessage",
    "OutboxDispatcher",
    "Participant",
    "PermanentError",
    "ProcessingStats",
    "ProcessorFactory",
    "ProviderEvent",
    "QueueMessage",
    "SeedChannelProcessor",
    "SendError",
    "SendResult",
    "Sender",
    "SignatureError",
    "Store",
    "StoreUnavailable",
    "TemplateResponder",
    "Thread",
    "TransientError",
    "UniqueViolation",
    "UnitOfWork",
    "UnknownEventShape",
    "__version__",
    "new_id",
    "open_store",
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
