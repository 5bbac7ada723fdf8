"""Deterministic, realistic queue traffic for the benchmarks.

Everything here is plain data (no commproc import), so one workload can be
handed to any revision of commproc under comparison. A seed gives the same
bodies every time.

SMS (:func:`sms_workload`): Twilio messaging webhooks as they reach a queue.
About 83% inbound messages (SMS with geo fields, some long multi-segment
texts, ~5% MMS with ``MediaUrl0``, ~15% WhatsApp ``whatsapp:+...`` with
``ProfileName``/``WaId``), 15% status callbacks and 2% consent keywords
(STOP, HELP, START, in the spellings people use), from 2,000 distinct
senders. Status callbacks name outbound messages the workload lists in
``outbound``; the benchmark stores those in the outbox first, so every
callback moves a real row (sent, delivered, undelivered with 30003/30005,
failed with 30007, now and then 21610 for a recipient who opted out;
WhatsApp ones reach ``read``). Bodies are mostly the raw form string,
some JSON objects (a Lambda forwarder) and some API Gateway REST proxy events.

Email traffic is built by ``email_workloads.py``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

__all__ = ["Outbound", "Workload", "sms_workload"]

SENDERS = 2_000
ACCOUNT_SID = "AC" + "5e" * 16
MESSAGING_SERVICE_SID = "MG" + "7a" * 16
#: The business numbers customers text (fictional 555-01xx range).
BUSINESS_NUMBERS = ("+14155550100", "+14155550101", "+12125550102")
WHATSAPP_NUMBER = "+14155550199"
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)

# (area code, city, state, zip) of the senders' home numbers.
_PLACES = (
    ("415", "SAN FRANCISCO", "CA", "94107"),
    ("212", "NEW YORK", "NY", "10001"),
    ("312", "CHICAGO", "IL", "60601"),
    ("617", "BOSTON", "MA", "02108"),
    ("206", "SEATTLE", "WA", "98101"),
    ("512", "AUSTIN", "TX", "78701"),
    ("303", "DENVER", "CO", "80202"),
    ("404", "ATLANTA", "GA", "30303"),
)
_TEXTS = (
    "Hi! Is the spring offer still on?",
    "What time do you open on Saturday?",
    "Can I move my appointment to Thursday afternoon?",
    "Thanks, got it",
    "Yes",
    "No thanks",
    "How much is delivery to 94107?",
    "Is the blue one back in stock? I tried last week and the site said it would be restocked by now.",
    "ok",
    "Where is my order? It was supposed to arrive yesterday and the tracking link shows nothing.",
    "Can you call me back please",
    "Perfect, see you then 👍",
    "Do you have anything for two people tonight at 8?",
    "I'd like to cancel my subscription renewal but keep my account",
)
_LONG_TAIL = (
    " Also, could you tell me whether the warranty covers accidental damage, and whether I need"
    " the original receipt or whether the order confirmation email is enough for a claim?"
)
_KEYWORDS_OUT = ("STOP", "Stop", "stop", "UNSUBSCRIBE", "STOPALL", "Cancel")
_KEYWORDS_HELP = ("HELP", "help", "Help", "INFO")
_KEYWORDS_IN = ("START", "Start", "UNSTOP", "YES")
_WA_NAMES = ("Ana", "Tom", "Priya", "Lukas", "Mei", "Omar", "Sofia", "Jon")


@dataclass(frozen=True)
class Outbound:
    """A message "we" sent before the benchmark starts, to store in the outbox."""

    channel: str
    to: str
    sender: str
    provider_message_id: str
    body: str
    status: str = "sent"
    messaging_service_sid: str | None = None


@dataclass
class Workload:
    """Queue bodies plus what must be in the store before they are processed."""

    channel: str
    bodies: list[str]
    #: Provider events the bodies hold (a SendGrid batch holds several).
    events: int
    outbound: list[Outbound] = field(default_factory=list)
    #: Email addresses of leads to create first (email); lower-case ASCII.
    leads: list[str] = field(default_factory=list)
    #: Events by kind, for the report and for checks.
    kinds: Counter[str] = field(default_factory=Counter)
    #: Distinct senders (SMS) or recipients (email) the events are about.
    people: int = 0
    #: Distinct senders of inbound messages (each gets one lead and one conversation).
    senders: int = 0


def _sid(rng: random.Random, prefix: str) -> str:
    return f"{prefix}{rng.getrandbits(128):032x}"


def _senders(rng: random.Random, count: int) -> list[tuple[str, bool]]:
    """``count`` distinct (E.164 number, is WhatsApp) pairs; about 15% WhatsApp."""
    seen: set[str] = set()
    people: list[tuple[str, bool]] = []
    while len(people) < count:
        if rng.random() < 0.15:
            number = f"+447700{rng.randrange(900000, 900999):06d}"
            whatsapp = True
        else:
            area = rng.choice(_PLACES)[0]
            number = f"+1{area}{rng.randrange(200, 999)}{rng.randrange(0, 9999):04d}"
            whatsapp = False
        if number not in seen:
            seen.add(number)
            people.append((number, whatsapp))
    return people


def _form(params: dict[str, str]) -> str:
    return urlencode(params)


def _wrap_sms(rng: random.Random, params: dict[str, str]) -> str:
    """The body as it reaches the queue: form string (70%), JSON (20%) or API Gateway event (10%)."""
    roll = rng.random()
    if roll < 0.7:
        return _form(params)
    if roll < 0.9:
        return json.dumps(params)
    return json.dumps(
        {
            "resource": "/twilio/sms",
            "path": "/twilio/sms",
            "httpMethod": "POST",
            "headers": {
                "Content-Type": "application/x-www-form-urlencoded",
                "Host": "abc123defg.execute-api.us-east-1.amazonaws.com",
                "I-Twilio-Idempotency-Token": f"{rng.getrandbits(128):032x}",
                "User-Agent": "TwilioProxy/1.1",
            },
            "queryStringParameters": None,
            "requestContext": {
                "resourcePath": "/twilio/sms",
                "httpMethod": "POST",
                "path": "/prod/twilio/sms",
                "stage": "prod",
                "requestId": f"{rng.getrandbits(128):032x}",
                "domainName": "abc123defg.execute-api.us-east-1.amazonaws.com",
            },
            "body": _form(params),
            "isBase64Encoded": False,
        }
    )


def _inbound(rng: random.Random, sender: str, whatsapp: bool, body: str) -> dict[str, str]:
    mms = not whatsapp and rng.random() < 0.05
    sid = _sid(rng, "MM" if mms else "SM")
    params: dict[str, str] = {"ToCountry": "US"} if not whatsapp else {}
    params.update(SmsMessageSid=sid, SmsSid=sid, MessageSid=sid, AccountSid=ACCOUNT_SID, SmsStatus="received")
    params.update(Body=body, ApiVersion="2010-04-01")
    if whatsapp:
        params.update(
            From=f"whatsapp:{sender}",
            To=f"whatsapp:{WHATSAPP_NUMBER}",
            ProfileName=rng.choice(_WA_NAMES),
            WaId=sender.lstrip("+"),
            MessageType="text",
            NumMedia="0",
            NumSegments="1",
        )
        return params
    place = next((p for p in _PLACES if sender.startswith(f"+1{p[0]}")), _PLACES[0])
    params.update(
        From=sender,
        To=rng.choice(BUSINESS_NUMBERS),
        MessagingServiceSid=MESSAGING_SERVICE_SID,
        NumSegments=str(1 + len(body) // 153),
        FromCity=place[1],
        FromState=place[2],
        FromZip=place[3],
        FromCountry="US",
        ToCity="SAN FRANCISCO",
        ToState="CA",
        ToZip="94105",
    )
    media = [("image/jpeg", "ME"), ("image/png", "ME")][: 1 + (rng.random() < 0.3)] if mms else []
    params["NumMedia"] = str(len(media))
    for index, (content_type, prefix) in enumerate(media):
        params[f"MediaContentType{index}"] = content_type
        media_sid = _sid(rng, prefix)
        params[f"MediaUrl{index}"] = (
            f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}/Media/{media_sid}"
        )
    return params


# Twilio's status sequences for our outbound messages: (statuses, error code of the last).
_SMS_FATES = (
    (("sent", "delivered"), None, 0.86),
    (("sent", "undelivered"), "30003", 0.05),
    (("sent", "undelivered"), "30005", 0.03),
    (("failed",), "30007", 0.03),
    (("failed",), "21610", 0.03),
)
_WA_FATE = (("sent", "delivered", "read"), None)


def _pick_fate(rng: random.Random, whatsapp: bool) -> tuple[tuple[str, ...], str | None]:
    if whatsapp:
        return _WA_FATE
    roll = rng.random()
    for statuses, code, share in _SMS_FATES:
        if roll < share:
            return statuses, code
        roll -= share
    return _SMS_FATES[0][0], _SMS_FATES[0][1]


def _status(sid: str, status: str, code: str | None, to: str, whatsapp: bool, done: datetime) -> str:
    params = {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": f"whatsapp:{to}" if whatsapp else to,
        "From": f"whatsapp:{WHATSAPP_NUMBER}" if whatsapp else BUSINESS_NUMBERS[0],
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
    }
    if not whatsapp:
        params["MessagingServiceSid"] = MESSAGING_SERVICE_SID
    if whatsapp and status == "read":
        params.update(ChannelPrefix="whatsapp", EventType="READ")
    if status in ("delivered", "undelivered"):
        params["RawDlrDoneDate"] = done.strftime("%y%m%d%H%M")
    if code is not None and status in ("undelivered", "failed"):
        params["ErrorCode"] = code
    return _form(params)


def sms_workload(
    events: int,
    *,
    seed: int = 1,
    senders: int = SENDERS,
    status_share: float = 0.15,
    keyword_share: float = 0.02,
    round_robin: bool = False,
    salt: str = "",
) -> Workload:
    """``events`` Twilio webhooks (one per queue message) from ``senders`` people.

    The people depend on ``seed`` only, the messages on ``seed`` and ``salt``:
    two workloads differing in ``salt`` are new messages from the same
    people. ``round_robin`` takes senders in turn instead of at random.
    """
    people = _senders(random.Random(f"people:{seed}"), senders)
    rng = random.Random(f"sms:{seed}:{salt}")
    kinds: Counter[str] = Counter()
    bodies: list[str] = []
    outbound: list[Outbound] = []
    # Callbacks waiting to be sent: (sid, remaining statuses, error code, to, whatsapp).
    pending: list[tuple[str, list[str], str | None, str, bool]] = []
    stopped: set[str] = set()
    used: set[str] = set()
    inbound_from: set[str] = set()
    clock = START
    for number in range(events):
        clock += timedelta(milliseconds=rng.randrange(5, 400))
        roll = rng.random()
        if roll < status_share:
            # Status callbacks: continue a started sequence half of the time, else start one.
            if pending and (rng.random() < 0.5 or len(pending) > 200):
                slot = rng.randrange(len(pending))
                sid, remaining, code, to, whatsapp = pending[slot]
            else:
                to, whatsapp = rng.choice(people)
                sid = _sid(rng, "SM")
                statuses, code = _pick_fate(rng, whatsapp)
                remaining = list(statuses)
                outbound.append(
                    Outbound(
                        channel="whatsapp" if whatsapp else "sms",
                        to=to,
                        sender=WHATSAPP_NUMBER if whatsapp else BUSINESS_NUMBERS[0],
                        provider_message_id=sid,
                        body="Your order has shipped. Reply STOP to opt out.",
                        status="queued",
                        messaging_service_sid=None if whatsapp else MESSAGING_SERVICE_SID,
                    )
                )
                pending.append((sid, remaining, code, to, whatsapp))
                slot = len(pending) - 1
            status = remaining.pop(0)
            bodies.append(_status(sid, status, code if not remaining else None, to, whatsapp, clock))
            kinds[f"status_{status}"] += 1
            if not remaining:
                pending.pop(slot)
            used.add(to)
            continue
        sender, whatsapp = people[number % len(people)] if round_robin else rng.choice(people)
        used.add(sender)
        inbound_from.add(sender)
        if roll < status_share + keyword_share:
            if sender in stopped:
                text, kind = rng.choice(_KEYWORDS_IN), "keyword_start"
                stopped.discard(sender)
            elif rng.random() < 0.55:
                text, kind = rng.choice(_KEYWORDS_OUT), "keyword_stop"
                stopped.add(sender)
            else:
                text, kind = rng.choice(_KEYWORDS_HELP), "keyword_help"
        else:
            text = rng.choice(_TEXTS) + (_LONG_TAIL if rng.random() < 0.08 else "")
            kind = "whatsapp" if whatsapp else "inbound"
        params = _inbound(rng, sender, whatsapp, text)
        if kind == "inbound" and params["MessageSid"].startswith("MM"):
            kind = "mms"
        kinds[kind] += 1
        bodies.append(_wrap_sms(rng, params))
    return Workload(
        "sms", bodies, events, outbound=outbound, kinds=kinds, people=len(used), senders=len(inbound_from)
    )
