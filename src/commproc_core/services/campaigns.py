"""CampaignMatchingService: which campaign an event belongs to.

The selection rule, when several active campaigns fit an event:

1. an explicit campaign (by id, then by name) named in the event wins;
2. otherwise candidates are the active campaigns on the event's channel (or on
   every channel) that match what the event names: messaging service, the
   address messaged, or a join keyword; with none of those given, every active
   campaign is a candidate;
3. among candidates, one the lead already participates in comes first, then
   nurturing campaigns, then higher ``priority``, then the most recently
   created.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from commproc_core.model import Campaign, CampaignParticipant, Lead
from commproc_core.services._base import Service

__all__ = ["CampaignMatchingService"]


class CampaignMatchingService(Service):
    """Finds the campaign for an event (see the module docstring for the rule)."""

    def by_id(self, campaign_id: str) -> Campaign | None:
        return self.uow.campaigns.get(campaign_id)

    def by_name(self, name: str) -> Campaign | None:
        return self.uow.campaigns.find_one(name=name)

    def for_participant(self, lead_id: str) -> list[Campaign]:
        """Campaigns the lead takes part in, most recently joined first."""
        rows = self.uow.campaign_participants.find(lead_id=lead_id, order_by="joined_at", descending=True)
        found = (self.uow.campaigns.get(row.campaign_id) for row in rows)
        return [c for c in found if c is not None]

    def participation(self, campaign_id: str, lead_id: str) -> CampaignParticipant | None:
        return self.uow.campaign_participants.find_one(campaign_id=campaign_id, lead_id=lead_id)

    def active(self, channel: str | None = None) -> list[Campaign]:
        rows = self.uow.campaigns.find(status="active")
        return [c for c in rows if channel is None or c.channel in (None, channel)]

    def match(
        self,
        *,
        lead: Lead | None = None,
        channel: str | None = None,
        campaign_id: str | None = None,
        campaign_name: str | None = None,
        address: str | None = None,
        messaging_service_sid: str | None = None,
        keyword: str | None = None,
    ) -> Campaign | None:
        """The campaign for an event, by the module's selection rule; None when nothing fits."""
        if campaign_id and (explicit := self.by_id(campaign_id)):
            return explicit
        if campaign_name and (explicit := self.by_name(campaign_name)):
            return explicit
        candidates = self.active(channel)
        wanted = keyword.strip().upper() if keyword else None
        if messaging_service_sid or address or wanted:
            candidates = [
                c
                for c in candidates
                if (messaging_service_sid and c.messaging_service_sid == messaging_service_sid)
                or (address and c.address == address)
                or (wanted and wanted in c.keywords)
            ]
        return self._best(candidates, lead)

    def find_nurturing_campaign(self, lead: Lead | None, channel: str | None = None) -> Campaign | None:
        """The active nurturing campaign for the lead (the seed's ``_find_nurturing_campaign``)."""
        nurturing = [c for c in self.active(channel) if c.is_nurturing]
        return self._best(nurturing, lead)

    def _best(self, candidates: Sequence[Campaign], lead: Lead | None) -> Campaign | None:
        if not candidates:
            return None
        joined: set[str] = set()
        if lead is not None:
            joined = {p.campaign_id for p in self.uow.campaign_participants.find(lead_id=lead.id)}

        def rank(c: Campaign) -> tuple[bool, bool, int, float]:
            return (c.id in joined, c.is_nurturing, c.priority, c.created_at.timestamp())

        return max(candidates, key=rank)

    def join(self, campaign: Campaign, lead: Lead) -> CampaignParticipant:
        """The lead's participation in the campaign, created if new."""
        row, _ = self.uow.campaign_participants.get_or_create(
            CampaignParticipant(campaign_id=campaign.id, lead_id=lead.id, joined_at=self.clock.now()),
            key="campaign_lead",
        )
        return row

    def record_response(self, campaign: Campaign, lead: Lead) -> CampaignParticipant:
        """Count an inbound message from the lead as a response to the campaign."""
        row = self.join(campaign, lead)
        status = row.status if row.status in ("opted_out", "completed") else "responded"
        return self.uow.campaign_participants.update(
            attrs.evolve(
                row, status=status, response_count=row.response_count + 1, last_response_at=self.clock.now()
            )
        )
