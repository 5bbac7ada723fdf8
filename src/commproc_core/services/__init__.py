"""Shared services, written against the ports and usable by any channel plugin."""

from commproc_core.services._base import Service, SystemClock
from commproc_core.services.agent import AIAgentService
from commproc_core.services.campaigns import CampaignMatchingService
from commproc_core.services.consent import BLOCKING_STATUSES, ConsentService
from commproc_core.services.conversations import ConversationService
from commproc_core.services.keywords import (
    DEFAULT_KEYWORD_LANGUAGES,
    KeywordConfig,
    KeywordLanguage,
    KeywordMatch,
    KeywordOutcome,
    KeywordProcessingService,
    normalize_text,
)
from commproc_core.services.leads import LeadMatchingService

__all__ = [
    "BLOCKING_STATUSES",
    "DEFAULT_KEYWORD_LANGUAGES",
    "AIAgentService",
    "CampaignMatchingService",
    "ConsentService",
    "ConversationService",
    "KeywordConfig",
    "KeywordLanguage",
    "KeywordMatch",
    "KeywordOutcome",
    "KeywordProcessingService",
    "LeadMatchingService",
    "Service",
    "SystemClock",
    "normalize_text",
]
