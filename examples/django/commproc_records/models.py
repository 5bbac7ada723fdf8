"""commproc's tables as unmanaged Django models: read them with the ORM and the admin, never migrate them.

commproc owns these tables (``manage.py commproc db upgrade`` creates and
upgrades them, in the schema named by ``COMMPROC_SCHEMA``); Django only reads.
Column names and types follow ``commproc_core.model``: text ids (128 random
bits in hex), aware UTC timestamps, JSON (``jsonb``) for mappings and lists.
Relations are declared without database constraints, as commproc declares
none between its tables: the admin can follow them, nothing else changes.
"""

from __future__ import annotations

from django.db import models

from commproc_records.connection import table


def _ref(model: str, column: str) -> models.ForeignKey:  # type: ignore[type-arg]
    return models.ForeignKey(
        model,
        db_column=column,
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
    )


class CommprocRecord(models.Model):
    id = models.CharField(primary_key=True, max_length=64)

    class Meta:
        abstract = True
        managed = False


class Lead(CommprocRecord):
    phone = models.TextField(null=True)
    email = models.TextField(null=True)
    whatsapp_id = models.TextField(null=True)
    first_name = models.TextField(null=True)
    last_name = models.TextField(null=True)
    status = models.TextField()
    source = models.TextField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    metadata = models.JSONField(default=dict)

    class Meta(CommprocRecord.Meta):
        db_table = table("leads")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.phone or self.email or self.whatsapp_id or self.id


class Conversation(CommprocRecord):
    external_id = models.TextField()
    channel = models.TextField()
    lead = _ref("Lead", "lead_id")
    campaign_id = models.TextField(null=True)
    subject = models.TextField(null=True)
    status = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    last_message_at = models.DateTimeField(null=True)
    metadata = models.JSONField(default=dict)

    class Meta(CommprocRecord.Meta):
        db_table = table("conversations")
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.channel} conversation {self.id[:8]}"


class Thread(CommprocRecord):
    lead = _ref("Lead", "lead_id")
    channel = models.TextField()
    conversation = _ref("Conversation", "conversation_id")
    status = models.TextField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    last_message_at = models.DateTimeField(null=True)

    class Meta(CommprocRecord.Meta):
        db_table = table("threads")
        ordering = ["-updated_at"]


class Message(CommprocRecord):
    conversation = _ref("Conversation", "conversation_id")
    thread = _ref("Thread", "thread_id")
    direction = models.TextField()
    channel = models.TextField()
    provider = models.TextField()
    provider_message_id = models.TextField(null=True)
    sender = models.TextField(null=True)
    recipient = models.TextField(null=True)
    body = models.TextField(null=True)
    subject = models.TextField(null=True)
    media = models.JSONField(default=list)
    status = models.TextField(null=True)
    error_code = models.TextField(null=True)
    error_message = models.TextField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    metadata = models.JSONField(default=dict)

    class Meta(CommprocRecord.Meta):
        db_table = table("messages")
        ordering = ["-created_at"]


class CommunicationEvent(CommprocRecord):
    channel = models.TextField()
    provider = models.TextField()
    event_type = models.TextField()
    status = models.TextField()
    dedupe_key = models.TextField(null=True)
    provider_message_id = models.TextField(null=True)
    provider_event_id = models.TextField(null=True)
    sender = models.TextField(null=True)
    recipient = models.TextField(null=True)
    lead = _ref("Lead", "lead_id")
    campaign_id = models.TextField(null=True)
    conversation = _ref("Conversation", "conversation_id")
    message = _ref("Message", "message_id")
    queue_message_id = models.TextField(null=True)
    error_code = models.TextField(null=True)
    error_detail = models.TextField(null=True)
    occurred_at = models.DateTimeField(null=True)
    recorded_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta(CommprocRecord.Meta):
        db_table = table("events")
        ordering = ["-recorded_at"]


class ProcessingRecord(CommprocRecord):
    channel = models.TextField()
    queue_message_id = models.TextField()
    item_index = models.IntegerField()
    status = models.TextField()
    attempts = models.IntegerField()
    dedupe_key = models.TextField(null=True)
    error_code = models.TextField(null=True)
    error_detail = models.TextField(null=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True)
    duration_ms = models.FloatField(null=True)

    class Meta(CommprocRecord.Meta):
        db_table = table("processing_records")
        ordering = ["-received_at"]


class Consent(CommprocRecord):
    address = models.TextField()
    channel = models.TextField()
    scope = models.TextField()
    status = models.TextField()
    source = models.TextField()
    reason = models.TextField(null=True)
    lead = _ref("Lead", "lead_id")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(CommprocRecord.Meta):
        db_table = table("consents")
        ordering = ["-updated_at"]


class OutboundMessage(CommprocRecord):
    channel = models.TextField()
    to = models.TextField()
    sender = models.TextField(null=True)
    body = models.TextField()
    status = models.TextField()
    reason = models.TextField(null=True)
    provider_message_id = models.TextField(null=True)
    lead = _ref("Lead", "lead_id")
    conversation = _ref("Conversation", "conversation_id")
    attempts = models.IntegerField()
    error_code = models.TextField(null=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(CommprocRecord.Meta):
        db_table = table("outbox")
        ordering = ["-created_at"]
        verbose_name = "outbox message"


class ChannelConfig(CommprocRecord):
    channel_type = models.TextField()
    queue_url = models.TextField()
    is_active = models.BooleanField()
    # ``config`` holds secrets (auth tokens, signing keys): it is not mapped, so no page can show it.
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta(CommprocRecord.Meta):
        db_table = table("channel_configs")
        ordering = ["channel_type"]

    def __str__(self) -> str:
        return f"{self.channel_type} on {self.queue_url}"
