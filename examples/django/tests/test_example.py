"""The Django example end to end: migrate, commproc's schema, the management command on moto's SQS, the admin."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from commproc_records import models
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

SECRET = "auth-token-that-must-never-be-shown"


def twilio(sid: str, sender: str, body: str) -> str:
    return json.dumps(
        {
            "MessageSid": sid,
            "AccountSid": "AC30000000000000000000000000000001",
            "From": sender,
            "To": "+14155550199",
            "Body": body,
        }
    )


@pytest.fixture
def processed(commproc_schema: str, sqs: Any) -> str:
    """An sms channel stored through `manage.py commproc`, three messages processed by the command."""
    url = sqs.create_queue(QueueName="sms-events")["QueueUrl"]
    config = json.dumps({"auth_token": SECRET})
    call_command("commproc", "channels", "add", "sms", url, "--config", config)
    for body in (
        twilio("SM30000000000000000000000000000001", "+14155550123", "Is the offer still on?"),
        twilio("SM30000000000000000000000000000002", "+14155550123", "STOP"),
        '{"MessageSid": "SM30000000000000000000000000000003", "Body": "no sender"}',
    ):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    out = io.StringIO()
    call_command("process_communications", "--once", stdout=out)
    return out.getvalue()


def test_commproc_tables_live_in_their_own_schema(commproc_schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [commproc_schema]
        )
        tables = {row[0] for row in cursor.fetchall()}
    assert {"leads", "conversations", "messages", "events", "processing_records", "consents"} <= tables
    # Django's own tables stay where Django put them.
    assert "auth_user" not in tables
    assert models.Lead.objects.count() == 0


def test_the_management_command_processes_the_queue(processed: str) -> None:
    assert "received=3 processed=2 failed=1 duplicates=0 deleted=3 retried=0" in processed

    lead = models.Lead.objects.get(phone="+14155550123")
    inbound = models.Message.objects.filter(direction="inbound", conversation__lead=lead)
    assert sorted(inbound.values_list("body", flat=True)) == ["Is the offer still on?", "STOP"]
    assert models.Consent.objects.get(address="+14155550123").status == "opted_out"
    failed = models.CommunicationEvent.objects.get(status="failed")
    assert failed.error_code == "invalid_payload"
    assert models.ProcessingRecord.objects.filter(status="processed").count() == 2


def test_running_again_finds_nothing_new(processed: str) -> None:
    before = models.CommunicationEvent.objects.count()
    out = io.StringIO()
    call_command("process_communications", "--once", "--channel", "sms", stdout=out)
    assert "received=0 processed=0" in out.getvalue()
    assert models.CommunicationEvent.objects.count() == before


def test_without_a_channel_the_command_says_how_to_add_one(commproc_schema: str) -> None:
    with pytest.raises(CommandError, match="commproc channels add"):
        call_command("process_communications", "--once")
    with pytest.raises(CommandError, match="exited with status"):
        call_command("commproc", "channels", "add", "smss", "https://sqs.us-east-1.amazonaws.com/1/x")


@pytest.fixture
def admin_client_for(processed: str) -> Client:
    user = User.objects.create_superuser("admin", "admin@example.com", "not-used")
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_shows_the_records_read_only(admin_client_for: Client) -> None:
    client = admin_client_for
    pages = {
        "lead": "+14155550123",
        "conversation": "sms",
        "thread": "open",
        "message": "Is the offer still on?",
        "communicationevent": "invalid_payload",
        "processingrecord": "processed",
        "consent": "opted_out",
        "outboundmessage": "keyword_reply",
        "channelconfig": "sms-events",
    }
    for model, expected in pages.items():
        answer = client.get(f"/admin/commproc_records/{model}/")
        assert answer.status_code == 200, model
        assert expected in answer.content.decode(), model

    lead = models.Lead.objects.get(phone="+14155550123")
    view = client.get(f"/admin/commproc_records/lead/{lead.id}/change/")
    assert view.status_code == 200 and "+14155550123" in view.content.decode()
    assert 'type="submit"' not in view.content.decode().split('id="content-main"')[1]  # nothing to save
    assert client.get("/admin/commproc_records/lead/add/").status_code == 403
    assert client.post(f"/admin/commproc_records/lead/{lead.id}/delete/").status_code == 403


def test_the_admin_never_shows_channel_secrets(admin_client_for: Client) -> None:
    config = models.ChannelConfig.objects.get(channel_type="sms")
    for url in (
        "/admin/commproc_records/channelconfig/",
        f"/admin/commproc_records/channelconfig/{config.id}/change/",
    ):
        answer = admin_client_for.get(url)
        assert answer.status_code == 200
        assert SECRET not in answer.content.decode()


def test_the_models_and_their_migration_agree(db: None) -> None:
    # The models are unmanaged, but Django still tracks them: a change without its migration
    # would make `migrate` complain in the host project.
    call_command("makemigrations", "commproc_records", "--check", "--dry-run", stdout=io.StringIO())
