"""Suppression and consent: the policy, soft-bounce counting and order independence."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from email_support import consent_state, events, payload, processor, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commproc_core.model import Lead
from commproc_core.stores import MemoryStore
from commproc_email import ConsentChange, consent_changes
from commproc_email.events import EmailEvent

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def at(offset: timedelta) -> int:
    return int((T0 + offset).timestamp())


def sg(event: str, email: str, when: timedelta, *, message: str = "m1", **extra: Any) -> dict[str, Any]:
    """One SendGrid item; the event id is derived from its content so equal items are duplicates."""
    item = {
        "email": email,
        "timestamp": at(when),
        "event": event,
        "sg_message_id": f"{message}.filter0001.16648.5515E0B88.0",
        **extra,
    }
    item["sg_event_id"] = f"{event}-{email}-{item['timestamp']}-{message}-{sorted(extra.items())}"
    return item


def state(store: Any) -> dict[tuple[str, str], tuple[str, datetime, str, str | None]]:
    return consent_state(store)


def run_items(items: list[Any], store: Any | None = None, **config: Any) -> Any:
    store = store or MemoryStore()
    run(processor(store, config or None), items)
    return store


# -- the policy -----------------------------------------------------------------------


def event(**fields: Any) -> EmailEvent:
    base = dict(
        provider="sendgrid", provider_event_type="x", dedupe_key="k", occurred_at=T0,
        recipient="ann@example.com", recipient_key="ann@example.com",
    )  # fmt: skip
    return EmailEvent(**{**base, **fields})


def test_policy_table() -> None:
    assert consent_changes(event(event_type="bounced", bounce_class="hard")) == [
        ConsentChange("all", "suppressed", "bounce", "sendgrid:x")
    ]
    assert consent_changes(event(event_type="complained")) == [
        ConsentChange("all", "suppressed", "complaint", "sendgrid:x"),
        ConsentChange("marketing", "opted_out", "complaint", "sendgrid:x"),
    ]
    assert consent_changes(event(event_type="complained", description="not-spam")) == []
    assert consent_changes(event(event_type="unsubscribed")) == [
        ConsentChange("marketing", "opted_out", "unsubscribe", "sendgrid:x")
    ]
    assert consent_changes(event(event_type="unsubscribed", subscription_group="10")) == [
        ConsentChange("group:sendgrid:10", "opted_out", "unsubscribe", "sendgrid:x")
    ]
    assert consent_changes(event(event_type="rejected", reject_reason="spam", provider_suppressed=True)) == [
        ConsentChange("all", "suppressed", "provider", "sendgrid:x"),
        ConsentChange("marketing", "opted_out", "provider", "sendgrid:x"),
    ]
    for quiet in ("deferred", "opened", "clicked", "delivered", "queued", "sent", "failed", "unknown"):
        assert consent_changes(event(event_type=quiet)) == [], quiet
    assert consent_changes(event(event_type="opened", machine_open=True)) == []
    assert consent_changes(event(event_type="bounced", bounce_class="soft")) == []
    assert consent_changes(event(event_type="rejected", reject_reason="blocked")) == []
    # Per-message events that cannot be pinned on one recipient change nobody's state.
    assert (
        consent_changes(event(event_type="unsubscribed", recipient_ambiguous=True, recipient_key=None)) == []
    )


def test_hard_bounce_suppresses_at_once_soft_does_not() -> None:
    store = run_items([[sg("bounce", "hard@example.com", 0 * DAY, type="bounce")],
                       [sg("bounce", "soft@example.com", 0 * DAY, type="blocked")]])  # fmt: skip
    assert state(store) == {("hard@example.com", "all"): ("suppressed", T0, "bounce", "sendgrid:bounce")}


def test_soft_bounces_suppress_after_the_limit_within_the_window() -> None:
    items = [sg("bounce", "ann@example.com", d * DAY, message=f"m{d}", type="blocked") for d in (0, 2, 4)]
    store = run_items(items)
    assert state(store) == {
        ("ann@example.com", "all"): (
            "suppressed",
            T0 + 4 * DAY,
            "soft_bounce",
            "3 soft bounces within 7 days",
        )
    }


def test_soft_bounces_spread_beyond_the_window_do_not_suppress() -> None:
    items = [sg("bounce", "ann@example.com", d * DAY, message=f"m{d}", type="blocked") for d in (0, 4, 8, 12)]
    assert state(run_items(items)) == {}


def test_soft_bounce_limit_is_configurable() -> None:
    items = [sg("bounce", "ann@example.com", d * DAY, message=f"m{d}", type="blocked") for d in (0, 20)]
    store = run_items(items, soft_bounce_limit=2, soft_bounce_window_days=30)
    assert state(store)[("ann@example.com", "all")][:3] == ("suppressed", T0 + 20 * DAY, "soft_bounce")


def test_soft_bounces_count_messages_not_retries() -> None:
    # SendGrid may re-send one event with a new sg_event_id; it is still one message.
    items = [sg("bounce", "ann@example.com", 0 * DAY, type="blocked", attempt=str(n)) for n in range(5)]
    assert state(run_items(items)) == {}


def test_undetermined_bounces_count_as_soft() -> None:
    soft = payload("ses_notifications.json", "TransientMailboxFull")
    undetermined = payload("ses_notifications.json", "Undetermined")
    store = run_items([soft, undetermined], soft_bounce_limit=2)
    assert state(store)[("jane@example.com", "all")][0] == "suppressed"


def test_deferrals_and_opens_never_change_state() -> None:
    store = MemoryStore()
    lead = Lead(email="example@test.com", email_key="example@test.com")
    with store.unit_of_work() as uow:
        uow.leads.add(lead)
        uow.commit()
    items = [sg("deferred", "example@test.com", d * DAY, message=f"m{d}") for d in range(5)]
    items += [
        sg("open", "example@test.com", DAY, sg_machine_open=True),
        sg("open", "example@test.com", 2 * DAY),
    ]
    run_items(
        [items, payload("postmark.json", "Transient"), payload("mailgun.json", "failed_temporary")], store
    )
    assert state(store) == {}
    with store.unit_of_work() as uow:
        assert uow.leads.find() == [lead]


def test_provider_suppression_syncs_without_counting_a_bounce() -> None:
    # A soft bounce after the provider's own suppression: with a limit of 2 a
    # counted rejection would make this a soft-bounce suppression.
    rejection = payload("ses_notifications.json", "OnAccountSuppressionList")  # jane, 15:02
    soft = payload("ses_notifications.json", "TransientMailboxFull")  # jane, 14:59
    soft["bounce"]["timestamp"] = "2016-01-27T15:30:00Z"
    store = run_items([rejection, soft], soft_bounce_limit=2)
    status, when, source, _ = state(store)[("jane@example.com", "all")]
    assert (status, source) == ("suppressed", "provider")
    assert [e.event_type for e in events(store)] == ["rejected", "bounced"]


def test_sendgrid_dropped_reasons_sync_suppression() -> None:
    items = [
        sg("dropped", "bounced@example.com", 0 * DAY, reason="Bounced Address"),
        sg("dropped", "unsub@example.com", 0 * DAY, reason="Unsubscribed Address"),
        sg("dropped", "spam@example.com", 0 * DAY, reason="Spam Reporting Address"),
        sg("dropped", "quota@example.com", 0 * DAY, reason="Recipient List over Package Quota"),
    ]
    got = {key: value[0] for key, value in state(run_items([items])).items()}
    assert got == {
        ("bounced@example.com", "all"): "suppressed",
        ("unsub@example.com", "marketing"): "opted_out",
        ("spam@example.com", "all"): "suppressed",
        ("spam@example.com", "marketing"): "opted_out",
    }


def test_group_unsubscribe_and_resubscribe_are_decided_by_time() -> None:
    later_resubscribe = [
        sg("group_unsubscribe", "ann@example.com", 1 * DAY, asm_group_id=10),
        sg("group_resubscribe", "ann@example.com", 2 * DAY, asm_group_id=10),
    ]
    earlier_resubscribe = [
        sg("group_unsubscribe", "ann@example.com", 2 * DAY, asm_group_id=10),
        sg("group_resubscribe", "ann@example.com", 1 * DAY, asm_group_id=10),
    ]
    key = ("ann@example.com", "group:sendgrid:10")
    assert state(run_items([later_resubscribe]))[key][:2] == ("opted_in", T0 + 2 * DAY)
    assert state(run_items([earlier_resubscribe]))[key][:2] == ("opted_out", T0 + 2 * DAY)
    # Arriving in the opposite order changes nothing.
    assert state(run_items([list(reversed(earlier_resubscribe))]))[key][:2] == ("opted_out", T0 + 2 * DAY)


def test_postmark_reactivation_lifts_an_older_suppression_only() -> None:
    suppressed = payload("postmark.json", "SubscriptionChangeSuppressed")  # Feb 1
    reactivated = payload("postmark.json", "SubscriptionChangeReactivated")  # Feb 2
    for order in ([suppressed, reactivated], [reactivated, suppressed]):
        got = state(run_items(order))[("bounced-address@wildbit.com", "all")]
        assert got[0] == "opted_in"


def test_consent_records_the_lead() -> None:
    store = MemoryStore()
    lead = Lead(email="bounce@test.com", email_key="bounce@test.com")
    with store.unit_of_work() as uow:
        uow.leads.add(lead)
        uow.commit()
    run_items([[sg("bounce", "bounce@test.com", 0 * DAY, type="bounce")]], store)
    with store.unit_of_work() as uow:
        (consent,) = uow.consents.find()
    assert (consent.lead_id, consent.channel, consent.updated_at) == (lead.id, "email", T0)


# -- order independence -------------------------------------------------------------------

SCENARIO: list[Any] = [
    # ann: soft bounces forming two qualifying windows, a later reactivation, a tie.
    *[
        sg("bounce", "ann@example.com", d * DAY, message=f"a{d}", type="blocked")
        for d in (0, 2, 4, 12, 13, 14)
    ],
    sg("unsubscribe", "ann@example.com", 3 * DAY),
    sg("group_unsubscribe", "ann@example.com", 5 * DAY, asm_group_id=7),
    sg("group_resubscribe", "ann@example.com", 6 * DAY, asm_group_id=7),
    sg("group_unsubscribe", "ann@example.com", 6 * DAY, asm_group_id=8),
    sg("group_resubscribe", "ann@example.com", 5 * DAY, asm_group_id=8),
    # bob: a complaint and an open at the same instant, deferrals, a hard bounce later.
    sg("spamreport", "bob@example.com", 1 * DAY),
    sg("open", "bob@example.com", 1 * DAY, sg_machine_open=True),
    sg("deferred", "bob@example.com", 2 * DAY),
    sg("bounce", "bob@example.com", 9 * DAY, type="bounce"),
    # cat: dropped by SendGrid (already suppressed) and an unsubscribe.
    sg("dropped", "cat@example.com", 1 * DAY, reason="Bounced Address"),
    sg("unsubscribe", "cat@example.com", 2 * DAY),
    # Postmark: deactivation, reactivation; SES: a multi-recipient bounce and a complaint.
    payload("postmark.json", "SubscriptionChangeSuppressed"),
    payload("postmark.json", "SubscriptionChangeReactivated"),
    payload("postmark.json", "SoftBounce"),
    payload("postmark.json", "HardBounce"),
    payload("ses_notifications.json", "BounceMulti"),
    payload("ses_notifications.json", "Complaint"),
    payload("ses_notifications.json", "TransientMailboxFull"),
    payload("ses_notifications.json", "Undetermined"),
]


def baseline() -> dict[Any, Any]:
    return state(run_items(list(SCENARIO)))


BASELINE = baseline()


def test_scenario_baseline_is_what_the_policy_says() -> None:
    assert BASELINE[("ann@example.com", "all")] == (
        "suppressed", T0 + 14 * DAY, "soft_bounce", "3 soft bounces within 7 days",
    )  # fmt: skip
    assert BASELINE[("ann@example.com", "marketing")][0] == "opted_out"
    assert BASELINE[("ann@example.com", "group:sendgrid:7")][0] == "opted_in"
    assert BASELINE[("ann@example.com", "group:sendgrid:8")][0] == "opted_out"
    assert BASELINE[("bob@example.com", "all")] == ("suppressed", T0 + 9 * DAY, "bounce", "sendgrid:bounce")
    assert BASELINE[("cat@example.com", "all")][2] == "provider"
    assert BASELINE[("bounced-address@wildbit.com", "all")][0] == "opted_in"
    assert BASELINE[("john@example.com", "all")][:3] == (
        "suppressed",
        datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=timezone.utc),
        "bounce",
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(SCENARIO))
def test_any_order_ends_in_the_same_suppression_state(order: list[Any]) -> None:
    assert state(run_items(order)) == BASELINE


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations(SCENARIO), st.integers(min_value=1, max_value=len(SCENARIO)))
def test_replays_in_between_change_nothing(order: list[Any], split: int) -> None:
    store = MemoryStore()
    proc = processor(store)
    run(proc, order[:split])
    run(proc, order)  # the first part again, then the rest
    run(proc, list(reversed(order)))
    assert state(store) == BASELINE


def test_reverse_order_on_every_store(store: Any) -> None:
    run(processor(store), list(reversed(SCENARIO)))
    assert state(store) == BASELINE
