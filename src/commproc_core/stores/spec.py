"""What every store must enforce: the tables, their unique keys and indexes.

The in-memory store enforces these keys itself; the SQL store turns them into
constraints and indexes. Both are checked by the same contract suite, so a key
declared here holds whichever store a host picks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from commproc_core import model

if TYPE_CHECKING:
    from commproc_core.ports import Repository

__all__ = ["TABLES", "Range", "TableSpec", "UniqueKey", "table_for"]

T = TypeVar("T")


@attrs.frozen
class UniqueKey:
    """Fields whose values no two records share.

    Records where any of ``fields`` is None are exempt, as in SQL. ``where``
    makes the key partial: it holds only among records whose fields equal the
    given values (for example one *open* thread per lead and channel).
    """

    name: str
    fields: tuple[str, ...]
    where: tuple[tuple[str, Any], ...] = ()

    def applies_to(self, record: object) -> bool:
        return all(getattr(record, f) == v for f, v in self.where) and all(
            getattr(record, f) is not None for f in self.fields
        )

    def value(self, record: object) -> tuple[Any, ...]:
        return tuple(getattr(record, f) for f in self.fields)


@attrs.frozen
class TableSpec(Generic[T]):
    """One table: the repository name on a unit of work, its record type and keys."""

    name: str
    record: type[T]
    unique: tuple[UniqueKey, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    #: Fields rows are read by in sets that a database serves from the leading
    #: column of a key above (so SQL adds no index for them); the in-memory
    #: store indexes them itself.
    lookups: tuple[tuple[str, ...], ...] = ()

    def key(self, name: str) -> UniqueKey:
        for key in self.unique:
            if key.name == name:
                return key
        known = ", ".join(k.name for k in self.unique) or "none"
        raise KeyError(f"{self.name} has no unique key {name!r} (known: {known})")


@attrs.frozen
class Range:
    """A ``find``/``count`` condition: ``low <= value < high``; either end may be None."""

    low: Any = None
    high: Any = None

    def matches(self, value: Any) -> bool:
        if value is None:
            return False
        if self.low is not None and value < self.low:
            return False
        return not (self.high is not None and value >= self.high)


def _u(name: str, *fields: str, where: tuple[tuple[str, Any], ...] = ()) -> UniqueKey:
    return UniqueKey(name, tuple(fields), where)


TABLES: dict[str, TableSpec[Any]] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "leads",
            model.Lead,
            (_u("phone", "phone"), _u("email_key", "email_key"), _u("whatsapp_id", "whatsapp_id")),
            (("status",),),
        ),
        TableSpec(
            "campaigns",
            model.Campaign,
            (_u("name", "name"),),
            (("status",), ("messaging_service_sid",), ("address",)),
        ),
        TableSpec(
            "campaign_participants",
            model.CampaignParticipant,
            (_u("campaign_lead", "campaign_id", "lead_id"),),
            (("lead_id",),),
        ),
        TableSpec(
            "conversations",
            model.Conversation,
            (_u("external_id", "external_id"),),
            (("lead_id",), ("campaign_id",)),
        ),
        TableSpec(
            "participants",
            model.Participant,
            (_u("conversation_address", "conversation_id", "address"),),
            (("lead_id",),),
            lookups=(("conversation_id",),),
        ),
        TableSpec(
            "threads",
            model.Thread,
            (_u("open_thread", "lead_id", "channel", where=(("status", "open"),)),),
            (("lead_id", "channel"), ("conversation_id",)),
            lookups=(("lead_id",),),
        ),
        TableSpec(
            "messages",
            model.Message,
            (_u("provider_message", "provider", "provider_message_id"),),
            (("conversation_id",), ("thread_id",), ("provider_message_id",)),
        ),
        TableSpec(
            "events",
            model.CommunicationEvent,
            (_u("dedupe_key", "dedupe_key"),),
            (
                ("provider_message_id",),
                ("lead_id",),
                ("conversation_id",),
                ("recipient",),
                ("channel", "event_type"),
                ("recorded_at",),
            ),
        ),
        TableSpec(
            "processing_records",
            model.ProcessingRecord,
            (_u("queue_item", "channel", "queue_message_id", "item_index"),),
            (("status",), ("received_at",)),
            lookups=(("queue_message_id",),),
        ),
        TableSpec(
            "channel_configs",
            model.ChannelConfig,
            (_u("channel_queue", "channel_type", "queue_url"),),
            (("is_active",),),
        ),
        TableSpec(
            "consents",
            model.Consent,
            (_u("address_channel_scope", "address", "channel", "scope"),),
            (("address",), ("lead_id",)),
        ),
        TableSpec(
            "agent_events",
            model.AgentEvent,
            (),
            (("conversation_id",), ("message_id",), ("outcome", "created_at")),
        ),
        TableSpec(
            "outbox",
            model.OutboundMessage,
            (_u("provider_message_id", "provider_message_id"),),
            (("status",), ("conversation_id",), ("caused_by_event_id",)),
        ),
        TableSpec(
            "seen_tokens",
            model.SeenToken,
            (_u("scope_token", "scope", "token"),),
            (("expires_at",),),
        ),
    )
}


def table_for(record_type: type[Any]) -> TableSpec[Any]:
    """The table holding records of ``record_type``."""
    for spec in TABLES.values():
        if spec.record is record_type:
            return spec
    raise KeyError(f"no table holds {record_type.__name__} records")


class Repositories:
    """A repository per table, one attribute each, as :class:`~commproc_core.ports.UnitOfWork` declares them.

    The stores' units of work and the batch session subclass it for these
    declarations; each sets its repositories itself (or makes one on first use).
    """

    leads: Repository[model.Lead]
    campaigns: Repository[model.Campaign]
    campaign_participants: Repository[model.CampaignParticipant]
    conversations: Repository[model.Conversation]
    participants: Repository[model.Participant]
    threads: Repository[model.Thread]
    messages: Repository[model.Message]
    events: Repository[model.CommunicationEvent]
    processing_records: Repository[model.ProcessingRecord]
    channel_configs: Repository[model.ChannelConfig]
    consents: Repository[model.Consent]
    agent_events: Repository[model.AgentEvent]
    outbox: Repository[model.OutboundMessage]
    seen_tokens: Repository[model.SeenToken]
