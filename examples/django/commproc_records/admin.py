"""Read-only admin pages over commproc's tables: commproc writes them, people look."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from commproc_records import models


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """View permission only: no add, change or delete, whatever the user's rights."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(models.Lead)
class LeadAdmin(ReadOnlyAdmin):
    list_display = ("phone", "email", "whatsapp_id", "status", "source", "created_at")
    list_filter = ("status", "source")
    search_fields = ("phone", "email", "first_name", "last_name")


@admin.register(models.Conversation)
class ConversationAdmin(ReadOnlyAdmin):
    list_display = ("id", "channel", "lead", "status", "last_message_at")
    list_filter = ("channel", "status")
    list_select_related = ("lead",)
    search_fields = ("external_id",)


@admin.register(models.Thread)
class ThreadAdmin(ReadOnlyAdmin):
    list_display = ("id", "channel", "lead", "status", "last_message_at")
    list_filter = ("channel", "status")
    list_select_related = ("lead",)


@admin.register(models.Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "direction", "channel", "sender", "recipient", "body", "status")
    list_filter = ("direction", "channel", "provider", "status")
    search_fields = ("provider_message_id", "sender", "recipient")


@admin.register(models.CommunicationEvent)
class CommunicationEventAdmin(ReadOnlyAdmin):
    list_display = ("recorded_at", "channel", "provider", "event_type", "status", "error_code")
    list_filter = ("channel", "provider", "event_type", "status")
    search_fields = ("dedupe_key", "provider_message_id", "queue_message_id")


@admin.register(models.ProcessingRecord)
class ProcessingRecordAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "channel", "queue_message_id", "item_index", "status", "error_code")
    list_filter = ("channel", "status", "error_code")
    search_fields = ("queue_message_id", "dedupe_key")


@admin.register(models.Consent)
class ConsentAdmin(ReadOnlyAdmin):
    list_display = ("address", "channel", "scope", "status", "source", "updated_at")
    list_filter = ("channel", "status", "source")
    search_fields = ("address",)


@admin.register(models.OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "channel", "to", "reason", "status", "attempts")
    list_filter = ("channel", "status", "reason")


@admin.register(models.ChannelConfig)
class ChannelConfigAdmin(ReadOnlyAdmin):
    list_display = ("channel_type", "queue_url", "is_active", "updated_at")
    list_filter = ("channel_type", "is_active")
