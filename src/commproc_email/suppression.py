"""Suppression and consent: what an email event does to an address's consent.

Consent for email lives under three kinds of scope, keyed on the address's
match key:

``all``
    ``suppressed`` when mail cannot or must not reach the address (hard
    bounce, complaint, too many soft bounces, the provider's own suppression
    list); ``opted_in`` when the provider reactivates it.
``marketing``
    ``opted_out`` on unsubscribe or complaint, ``opted_in`` on resubscribe.
``group:<provider>:<group>``
    the same for one subscription group (SendGrid ASM group, SES topic).

Order independence. SQS reorders and redelivers, so every change carries the
event's own time and the stored consent is the *greatest* change seen, by
(occurred_at, status rank, source, reason): a change older than the stored
one is ignored, and on equal times the more restrictive status wins. Taking
a maximum does not depend on the order the changes arrive in, so replays in
any order end in the same state.

Soft bounces suppress once ``limit`` distinct messages soft-bounced within
``window`` (a trailing window ending at a soft bounce). The facts are
recomputed from the stored events for every soft bounce that arrives: the
latest soft bounce whose trailing window holds ``limit`` messages is a
suppression at that bounce's time. Every such window is seen complete when
its last event (in processing order) arrives, so the maximum again comes out
the same whatever the order. Counting messages rather than events keeps
provider retries (SendGrid re-sends with a new ``sg_event_id``) and repeated
notifications from inflating the count.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final

import attrs

from commproc_core.model import CommunicationEvent, Consent
from commproc_core.services import ConsentService
from commproc_email.events import CHANNEL, EmailEvent

__all__ = [
    "STATUS_RANK",
    "ConsentChange",
    "apply_change",
    "consent_changes",
    "counts_as_soft_bounce",
    "group_scope",
    "soft_bounce_identity",
    "soft_bounce_suppression",
    "stored_soft_bounce_window",
]

#: On equal times, the more restrictive status wins.
STATUS_RANK: Final = {"opted_in": 0, "opted_out": 1, "suppressed": 2}

#: Bounce classes counted toward the soft-bounce limit. An undetermined
#: bounce is a failed delivery the provider could not classify: counted,
#: never suppressing on its own.
_COUNTED: Final = frozenset({"soft", "undetermined"})


@attrs.frozen
class ConsentChange:
    """One consent write an event calls for."""

    scope: str
    status: str
    source: str
    reason: str | None = None


def group_scope(provider: str, group: str) -> str:
    """The consent scope of a provider's subscription group."""
    return f"group:{provider}:{group}"


def counts_as_soft_bounce(event: EmailEvent) -> bool:
    return event.event_type == "bounced" and event.bounce_class in _COUNTED


def consent_changes(event: EmailEvent) -> list[ConsentChange]:
    """The consent writes ``event`` calls for; none for deliveries, deferrals, opens, clicks."""
    if event.recipient_key is None or event.recipient_ambiguous:
        return []
    reason = f"{event.provider}:{event.provider_event_type}"
    scope = group_scope(event.provider, event.subscription_group) if event.subscription_group else "marketing"
    kind = event.event_type
    if event.provider_suppressed:
        # The provider refused because it already holds the address on a
        # suppression list: mirror the list, count no new bounce.
        if event.reject_reason == "unsubscribed":
            return [ConsentChange(scope, "opted_out", "provider", reason)]
        changes = [ConsentChange("all", "suppressed", "provider", reason)]
        if event.reject_reason == "spam":
            changes.append(ConsentChange("marketing", "opted_out", "provider", reason))
        return changes
    if kind == "bounced" and event.bounce_class == "hard":
        return [ConsentChange("all", "suppressed", "bounce", reason)]
    if kind == "complained":
        # SES forwards "not-spam" feedback reports as complaints.
        if (event.description or "").lower() == "not-spam":
            return []
        return [
            ConsentChange("all", "suppressed", "complaint", reason),
            ConsentChange("marketing", "opted_out", "complaint", reason),
        ]
    if kind == "unsubscribed":
        return [ConsentChange(scope, "opted_out", "unsubscribe", reason)]
    if kind == "subscribed":
        changes = [ConsentChange(scope, "opted_in", "subscribe", reason)]
        if event.provider == "postmark" and event.provider_event_type == "SubscriptionChange":
            # Postmark reactivated the address: its suppression is lifted.
            changes.append(ConsentChange("all", "opted_in", "provider", reason))
        return changes
    return []


def _order(at: datetime, status: str, source: str, reason: str | None) -> tuple[datetime, int, str, str]:
    return (at, STATUS_RANK.get(status, 0), source, reason or "")


def apply_change(
    consents: ConsentService,
    address: str,
    change: ConsentChange,
    at: datetime,
    lead_id: str | None = None,
) -> Consent:
    """Write ``change`` unless the stored consent is greater (see the module docstring)."""
    current = consents.get(address, CHANNEL, change.scope)
    if current is not None and _order(
        current.updated_at, current.status, current.source, current.reason
    ) >= _order(at, change.status, change.source, change.reason):
        return current
    return consents.set(
        address,
        CHANNEL,
        change.scope,
        change.status,
        change.source,
        reason=change.reason,
        lead_id=lead_id,
        at=at,
    )


def soft_bounce_suppression(
    stored: Iterable[CommunicationEvent],
    current: tuple[str, datetime],
    *,
    limit: int,
    window: timedelta,
) -> datetime | None:
    """The time of the latest soft bounce completing ``limit`` messages within ``window``, if any.

    ``stored`` are the recipient's stored soft bounces near ``current``'s
    time (the processor fetches those within ``window`` either side);
    ``current`` is the (message identity, time) of the bounce being
    processed, not yet stored.
    """
    bounces: list[tuple[datetime, str]] = [(current[1], current[0])]
    for event in stored:
        if event.occurred_at is not None and event.data.get("bounce_class") in _COUNTED:
            bounces.append((event.occurred_at, event.provider_message_id or event.dedupe_key or event.id))
    bounces.sort()
    at = current[1]
    latest: datetime | None = None
    for end, _ in bounces:
        if end < at or end >= at + window:
            continue
        messages = {identity for when, identity in bounces if end - window < when <= end}
        if len(messages) >= limit:
            latest = end
    return latest


def soft_bounce_identity(event: EmailEvent) -> str:
    """What counts as one soft-bounced message: the provider message id, else the event."""
    return event.provider_message_id or event.dedupe_key


def stored_soft_bounce_window(at: datetime, window: timedelta) -> tuple[datetime, datetime]:
    """The occurred_at range (low inclusive, high exclusive) of stored bounces that matter at ``at``."""
    return at - window, at + window
