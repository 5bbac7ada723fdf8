"""Deterministic email provider traffic for the benchmarks (see workloads.py for SMS).

About 60% of queue messages are Amazon SES notifications (half raw, half
inside unsigned SNS notifications; event publishing and classic notification
formats; delivery, bounce, complaint, open, click), 40% SendGrid event
webhook batches of 2-8 events. Every event is about a message in
``outbound`` sent to a lead in ``leads``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta

from workloads import SENDERS, START, Outbound, Workload

__all__ = ["email_workload"]

_SUBJECTS = (
    "Your spring offer",
    "Your order has shipped",
    "Receipt for order",
    "We miss you",
    "New arrivals",
)
_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")
_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:ses-events"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ses_mail(
    message_id: str, to: list[str], sent: datetime, subject: str, classic: bool
) -> dict[str, object]:
    mail: dict[str, object] = {
        "timestamp": _iso(sent),
        "source": "news@shop.example.com",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/shop.example.com",
        "sendingAccountId": "123456789012",
        "messageId": message_id,
        "destination": to,
        "headersTruncated": False,
        "commonHeaders": {"from": ["Shop <news@shop.example.com>"], "to": to, "subject": subject},
    }
    if not classic:
        mail["tags"] = {"ses:configuration-set": ["marketing"], "campaign": ["spring-offer"]}
    return mail


def _ses_event(
    rng: random.Random, kind: str, mail: dict[str, object], to: list[str], at: datetime, classic: bool
) -> dict[str, object]:
    key = "notificationType" if classic else "eventType"
    stamp = _iso(at)
    detail: dict[str, object]
    if kind == "Delivery":
        detail = {
            "timestamp": stamp,
            "processingTimeMillis": rng.randrange(300, 5000),
            "recipients": to,
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "a8-70.smtp-out.amazonses.com",
        }
    elif kind == "Bounce":
        permanent = rng.random() < 0.5
        detail = {
            "bounceType": "Permanent" if permanent else "Transient",
            "bounceSubType": "General" if permanent else "MailboxFull",
            "bouncedRecipients": [
                {
                    "emailAddress": address,
                    "action": "failed",
                    "status": "5.1.1" if permanent else "4.2.2",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown"
                    if permanent
                    else "smtp; 452 mailbox full",
                }
                for address in to
            ],
            "timestamp": stamp,
            "feedbackId": f"0100018e{rng.getrandbits(96):024x}-000000",
            "reportingMTA": "dns; mx.example.net",
        }
    elif kind == "Complaint":
        detail = {
            "complainedRecipients": [{"emailAddress": address} for address in to],
            "timestamp": stamp,
            "feedbackId": f"0100018e{rng.getrandbits(96):024x}-000000",
            "userAgent": "ExampleISP Feedback Loop (V0.01)",
            "complaintFeedbackType": "abuse",
            "arrivalDate": stamp,
        }
    elif kind == "Open":
        detail = {"ipAddress": "192.0.2.1", "timestamp": stamp, "userAgent": _UA}
    else:
        detail = {
            "ipAddress": "192.0.2.1",
            "link": "https://shop.example.com/spring?utm_source=email",
            "linkTags": {"campaign": ["spring-offer"]},
            "timestamp": stamp,
            "userAgent": _UA,
        }
    return {key: kind, "mail": mail, kind.lower(): detail}


def _sns(rng: random.Random, message: dict[str, object], at: datetime) -> dict[str, object]:
    """An SNS notification around ``message``; unsigned (placeholder signature, not checked)."""
    return {
        "Type": "Notification",
        "MessageId": f"{rng.getrandbits(128):032x}",
        "TopicArn": TOPIC_ARN,
        "Message": json.dumps(message),
        "Timestamp": _iso(at),
        "SignatureVersion": "1",
        "Signature": "EXAMPLE" + "A" * 165,
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


_SES_KINDS = (("Delivery", 0.55), ("Open", 0.22), ("Click", 0.1), ("Bounce", 0.1), ("Complaint", 0.03))
_SG_KINDS = (
    ("processed", 0.2),
    ("delivered", 0.3),
    ("open", 0.25),
    ("click", 0.1),
    ("deferred", 0.05),
    ("bounce", 0.05),
    ("unsubscribe", 0.03),
    ("spamreport", 0.02),
)


def _choose(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    for name, share in table:
        if roll < share:
            return name
        roll -= share
    return table[0][0]


def _sendgrid_event(
    rng: random.Random, kind: str, address: str, sg_id: str, at: datetime
) -> dict[str, object]:
    event: dict[str, object] = {
        "email": address,
        "timestamp": int(at.timestamp()),
        "event": kind,
        "category": ["spring-offer"],
        "sg_event_id": f"{rng.getrandbits(128):032x}",
        "sg_message_id": f"{sg_id}.filter0001.16648.5515E0B88.0",
        "campaign": "spring-offer",
    }
    if kind in ("processed", "delivered", "deferred", "bounce"):
        event["smtp-id"] = f"<{sg_id}@shop.example.com>"
    if kind == "delivered":
        event["response"] = "250 OK"
    elif kind == "deferred":
        event.update(response="400 try again later", attempt="2")
    elif kind == "bounce":
        event.update(reason="500 unknown recipient", status="5.0.0", type="bounce")
    elif kind in ("open", "click"):
        event.update(useragent=_UA, ip="198.51.100.7", sg_machine_open=False)
        if kind == "click":
            event["url"] = "https://shop.example.com/spring?utm_source=email"
    return event


def email_workload(
    events: int,
    *,
    seed: int = 1,
    recipients: int = SENDERS,
    ses_deliveries_only: bool = False,
    max_messages: int | None = None,
) -> Workload:
    """At least ``events`` email provider events (whole queue messages; a batch is never split).

    ``ses_deliveries_only``: raw SES delivery notifications to one recipient
    each. ``max_messages`` stops at that many queue messages, however few
    events they hold.
    """
    rng = random.Random(f"email:{seed}")
    people = sorted(
        {f"user{n:05d}.{rng.getrandbits(16):04x}@{rng.choice(_DOMAINS)}" for n in range(recipients)}
    )
    kinds: Counter[str] = Counter()
    bodies: list[str] = []
    outbound: list[Outbound] = []
    used: set[str] = set()
    clock = START
    total = 0

    def sent_to(to: list[str], provider_id: str, subject: str) -> None:
        for address in to:
            outbound.append(Outbound("email", address, "news@shop.example.com", provider_id, subject))

    while total < events and (max_messages is None or len(bodies) < max_messages):
        clock += timedelta(milliseconds=rng.randrange(5, 400))
        if ses_deliveries_only or rng.random() < 0.6:
            kind = "Delivery" if ses_deliveries_only else _choose(rng, _SES_KINDS)
            # Several recipients only where SES reports each one (delivery, bounce).
            several = kind in ("Delivery", "Bounce") and rng.random() < 0.05 and not ses_deliveries_only
            to = rng.sample(people, 2 if several else 1)
            message_id = f"0100018e{rng.getrandbits(128):032x}-000000"
            subject = rng.choice(_SUBJECTS)
            outbound.append(Outbound("email", to[0], "news@shop.example.com", message_id, subject))
            classic = rng.random() < 0.5
            sent = clock - timedelta(seconds=rng.randrange(2, 3600))
            payload = _ses_event(
                rng, kind, _ses_mail(message_id, to, sent, subject, classic), to, clock, classic
            )
            via_sns = rng.random() < 0.5 and not ses_deliveries_only
            bodies.append(json.dumps(_sns(rng, payload, clock) if via_sns else payload))
            kinds[f"ses_{kind.lower()}{'_sns' if via_sns else ''}"] += len(to)
            total += len(to)
            used.update(to)
        else:
            batch = []
            for _ in range(rng.randrange(2, 9)):
                address = rng.choice(people)
                sg_id = f"{rng.getrandbits(88):022x}"
                sent_to([address], sg_id, rng.choice(_SUBJECTS))
                kind = _choose(rng, _SG_KINDS)
                clock += timedelta(seconds=1)
                batch.append(_sendgrid_event(rng, kind, address, sg_id, clock))
                kinds[f"sendgrid_{kind}"] += 1
                used.add(address)
            bodies.append(json.dumps(batch))
            total += len(batch)
    return Workload("email", bodies, total, outbound=outbound, leads=people, kinds=kinds, people=len(used))
