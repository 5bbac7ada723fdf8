"""What counts as an SNS message: Type and MessageId, with a Message or a TopicArn."""

from __future__ import annotations

import json
from typing import Any

import pytest

from commproc_core.pipeline.envelope import unwrap_body

BOUNCE = json.dumps({"notificationType": "Bounce"})


def test_a_notification_without_topic_arn_is_unwrapped() -> None:
    # Forwarders and SNS emulators drop TopicArn; the message is still SNS's.
    note = {
        "Type": "Notification",
        "MessageId": "m-1",
        "Timestamp": "2024-01-01T00:00:00Z",
        "Message": BOUNCE,
    }
    unwrapped = unwrap_body(json.dumps(note))
    assert unwrapped.envelope.kind == "sns"
    assert (
        unwrapped.envelope.sns is not None and unwrapped.envelope.sns["Timestamp"] == "2024-01-01T00:00:00Z"
    )
    assert unwrapped.items == ({"notificationType": "Bounce"},)


@pytest.mark.parametrize("kind", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_control_messages_without_topic_arn(kind: str) -> None:
    unwrapped = unwrap_body(json.dumps({"Type": kind, "MessageId": "m-2", "Message": "confirm"}))
    assert unwrapped.control == kind


@pytest.mark.parametrize(
    "body",
    [
        # A provider payload that happens to have a Type (Postmark bounces do) is no SNS message.
        {"RecordType": "Bounce", "Type": "HardBounce", "MessageID": "m", "Email": "a@example.com"},
        {"Type": "Notification", "Message": BOUNCE},  # no MessageId
        {"Type": "Notification", "MessageId": "m-3"},  # neither Message nor TopicArn
        {"Type": "Notification", "MessageId": 7, "Message": BOUNCE},  # an id that is not text
    ],
)
def test_what_is_not_an_sns_message_is_taken_as_the_payload(body: dict[str, Any]) -> None:
    unwrapped = unwrap_body(json.dumps(body))
    assert unwrapped.envelope.kind == "json" and unwrapped.envelope.sns is None
    assert unwrapped.items == (body,)


@pytest.mark.parametrize("kind", [["Notification"], {"a": 1}, 5, None])
def test_a_type_that_is_not_text_never_raises_outside_invalid_payload(kind: Any) -> None:
    body = {"Type": kind, "TopicArn": "arn:aws:sns:us-east-1:1:t", "MessageId": "m-4", "Message": BOUNCE}
    unwrapped = unwrap_body(json.dumps(body))
    assert unwrapped.envelope.sns is None and unwrapped.items == (body,)
