"""LeadMatchingService: find the lead an event is about, or create it."""

from __future__ import annotations

from typing import Any

from commproc_core.model import Lead
from commproc_core.services._base import Service

__all__ = ["LeadMatchingService"]


class LeadMatchingService(Service):
    """Finds leads by phone (E.164), email match key or id; creates them on request.

    Creation is a get-or-create on the store's unique keys, so two workers
    seeing the same new sender at once end up with one lead.
    """

    def find_by_id(self, lead_id: str) -> Lead | None:
        return self.uow.leads.get(lead_id)

    def find_by_phone(self, phone: str) -> Lead | None:
        return self.uow.leads.find_one(phone=phone)

    def find_by_email(self, email_key: str) -> Lead | None:
        return self.uow.leads.find_one(email_key=email_key)

    def match(
        self, *, lead_id: str | None = None, phone: str | None = None, email_key: str | None = None
    ) -> Lead | None:
        """The first lead found by id, then phone, then email key."""
        if lead_id and (lead := self.find_by_id(lead_id)):
            return lead
        if phone and (lead := self.find_by_phone(phone)):
            return lead
        if email_key and (lead := self.find_by_email(email_key)):
            return lead
        return None

    def get_or_create_by_phone(self, phone: str, **fields: Any) -> tuple[Lead, bool]:
        now = self.clock.now()
        fields.setdefault("created_at", now)
        fields.setdefault("updated_at", now)
        return self.uow.leads.get_or_create(Lead(phone=phone, **fields), key="phone")

    def get_or_create_by_email(self, email: str, email_key: str, **fields: Any) -> tuple[Lead, bool]:
        now = self.clock.now()
        fields.setdefault("created_at", now)
        fields.setdefault("updated_at", now)
        return self.uow.leads.get_or_create(Lead(email=email, email_key=email_key, **fields), key="email_key")
