"""ConsentService: who may be messaged, per address, channel and scope."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from commproc_core.model import Consent
from commproc_core.services._base import Service

__all__ = ["BLOCKING_STATUSES", "ConsentService"]

#: Consent statuses that forbid messaging the address.
BLOCKING_STATUSES = frozenset({"opted_out", "suppressed"})


class ConsentService(Service):
    """Reads and records consent. Each write is an upsert on (address, channel, scope)."""

    def get(self, address: str, channel: str, scope: str = "all") -> Consent | None:
        return self.uow.consents.find_one(address=address, channel=channel, scope=scope)

    def for_address(self, address: str, channel: str | None = None) -> list[Consent]:
        rows = self.uow.consents.find(address=address)
        return [c for c in rows if channel is None or c.channel == channel]

    def is_opted_out(self, address: str, channel: str, scopes: Sequence[str] = ("all",)) -> bool:
        """True when any of ``scopes`` (or the address-wide ``all``) blocks the address."""
        wanted = {*scopes, "all"}
        return any(
            c.status in BLOCKING_STATUSES and c.scope in wanted for c in self.for_address(address, channel)
        )

    def set(
        self,
        address: str,
        channel: str,
        scope: str,
        status: str,
        source: str,
        *,
        reason: str | None = None,
        lead_id: str | None = None,
        at: datetime | None = None,
    ) -> Consent:
        """Record ``status``; with ``at``, a change older than the stored one is ignored.

        Passing the event's own time as ``at`` makes replays in any order end
        in the state of the latest event.
        """
        when = at or self.clock.now()
        current = self.get(address, channel, scope)
        if current is None:
            candidate = Consent(
                address=address,
                channel=channel,
                scope=scope,
                status=status,
                source=source,
                reason=reason,
                lead_id=lead_id,
                created_at=when,
                updated_at=when,
            )
            stored, created = self.uow.consents.get_or_create(candidate, key="address_channel_scope")
            if created:
                return stored
            current = stored
        if at is not None and current.updated_at > when:
            return current
        return self.uow.consents.update(
            attrs.evolve(
                current,
                status=status,
                source=source,
                reason=reason,
                lead_id=lead_id or current.lead_id,
                updated_at=when,
            )
        )
