"""Shared services, written against the ports and usable by any channel plugin."""

from commproc_core.services._base import Service, SystemClock
from commproc_core.services.campaigns import CampaignMatchingService
from commproc_core.services.consent import BLOCKING_STATUSES, ConsentService
from commproc_core.services.conversations import ConversationService
from commproc_core.services.leads import LeadMatchingService

__all__ = [
    "BLOCKING_STATUSES",
    "CampaignMatchingService",
    "ConsentService",
    "ConversationService",
    "LeadMatchingService",
    "Service",
    "SystemClock",
]
