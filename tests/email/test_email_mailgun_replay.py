"""A captured Mailgun signature block cannot sign a second, forged event, on any store, across workers.

Mailgun signs only ``timestamp + token``, not the event: within the
freshness window anyone holding one signed webhook could put its signature
block on an event of their own. The token is meant for one use, so commproc
remembers every token it accepted (``seen_tokens``, unique per scope) and
rejects a second event carrying it as ``replayed_signature``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from email_support import events, payload, processor, run
from pg_support import postgres_schema, require_postgres
from store_support import STORE_KINDS, open_store

from commproc_core.model import SeenToken
from commproc_core.ports import Store
from commproc_core.stores import session as session_module
from commproc_core.stores.sql import SQLStore, upgrade
from commproc_core.testing import FixedClock, make_message
from commproc_email import EmailProcessor

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
# Now: the in-memory queue stamps messages with the real time, and freshness is judged against it.
SIGNED_AT = datetime.now(timezone.utc).replace(microsecond=0)
CONFIG = {"mailgun_signature": "required", "mailgun_signing_key": KEY}


def signed(
    name: str, token: str = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0", at: datetime = SIGNED_AT
) -> dict[str, Any]:
    data = payload("mailgun.json", name)
    timestamp = str(int(at.timestamp()))
    digest = hmac.new(KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    data["signature"] = {"timestamp": timestamp, "token": token, "signature": digest}
    return data


def forged_from(original: dict[str, Any], name: str) -> dict[str, Any]:
    """Another event of the attacker's, carrying ``original``'s signature block."""
    forged = payload("mailgun.json", name)
    forged["signature"] = copy.deepcopy(original["signature"])
    return forged


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Store]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def _proc(store: Store) -> EmailProcessor:
    return processor(store, CONFIG, clock=FixedClock(SIGNED_AT + timedelta(minutes=1)))


def test_a_reused_signature_block_is_rejected_in_a_later_batch(store: Store) -> None:
    original = signed("delivered")
    assert run(_proc(store), [original]).processed == 1
    stats = run(_proc(store), [forged_from(original, "failed_permanent")])
    assert (stats.processed, stats.failed) == (0, 1)
    (failure,) = events(store, status="failed")
    assert failure.error_code == "replayed_signature"


def test_a_reused_signature_block_is_rejected_in_the_same_batch(store: Store) -> None:
    original = signed("delivered")
    report = _proc(store).process_batch(
        [make_message(original), make_message(forged_from(original, "failed_permanent"))], acknowledge=False
    )
    assert [(o.outcome, o.reason) for o in report.outcomes] == [
        ("processed", None),
        ("rejected", "replayed_signature"),
    ]


def test_a_redelivered_event_is_a_duplicate_not_a_replay(store: Store) -> None:
    original = signed("delivered")
    first = make_message(original, message_id="q-1")
    again = make_message(original, message_id="q-1", receive_count=2)
    proc = _proc(store)
    proc.process_batch([first], acknowledge=False)
    (outcome,) = proc.process_batch([again], acknowledge=False).outcomes
    assert outcome.outcome == "duplicate"


@pytest.mark.postgres
def test_two_workers_racing_with_one_token_accept_one_event() -> None:
    # Two workers each get an event signed with the same token and both read the token as
    # unseen before either commits: the loser's insert of the token meets the winner's, its
    # batch runs again and finds the token taken. (PostgreSQL: SQLite lets one writer at a time.)
    url = require_postgres()
    with postgres_schema(url) as schema:
        upgrade(url, schema=schema)
        _race(SQLStore(url, schema=schema))


def _race(store: SQLStore) -> None:
    original = signed("delivered")
    forged = forged_from(original, "failed_permanent")
    one, two = _proc(store), _proc(store)
    real_fetch = session_module.BatchSession.fetch
    raced: list[bool] = []

    def fetch_then_let_the_other_win(self: Any) -> None:
        real_fetch(self)
        if not raced:
            raced.append(True)
            # While this batch holds its reads, the other worker commits the same token.
            two.process_batch([make_message(forged)], acknowledge=False)

    session_module.BatchSession.fetch = fetch_then_let_the_other_win  # type: ignore[method-assign]
    try:
        report = one.process_batch([make_message(original)], acknowledge=False)
    finally:
        session_module.BatchSession.fetch = real_fetch  # type: ignore[method-assign]
        store.close()
    assert raced
    (outcome,) = report.outcomes
    assert (outcome.outcome, outcome.reason) == ("rejected", "replayed_signature")
    assert report.stats.conflicts >= 1
    assert len(events(store, status="processed")) == 1


def test_expired_tokens_are_forgotten(store: Store) -> None:
    proc = _proc(store)
    run(proc, [signed("delivered")])
    with store.unit_of_work() as uow:
        (token,) = uow.seen_tokens.find()
        assert token.scope == "mailgun" and len(token.token) == 64
        assert token.expires_at == SIGNED_AT + timedelta(seconds=proc.settings.signature_max_age_seconds or 0)
        uow.seen_tokens.add(
            SeenToken(scope="mailgun", token="0" * 64, expires_at=SIGNED_AT - timedelta(days=1))
        )
        uow.commit()
    later = proc.clock.advance(3600 * 24 * 365)  # type: ignore[attr-defined]
    proc._tokens_forgotten = None  # the next batch's housekeeping is due
    # Judged against the processor's clock (no queue time on a message made by hand).
    report = proc.process_batch([make_message(signed("opened", token="c" * 50, at=later))], acknowledge=False)
    assert report.stats.processed == 1
    with store.unit_of_work() as uow:
        remaining = {t.token for t in uow.seen_tokens.find()}
    # Both old tokens are gone; the new one stays until its own expiry.
    assert remaining == {hashlib.sha256(b"c" * 50).hexdigest()}


def test_a_new_processor_forgets_expired_tokens_in_its_first_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Soon after a machine or container starts, time.monotonic() is small: the
    # first batch must not wait an interval before its housekeeping.
    monkeypatch.setattr("commproc_core.pipeline.processor.time.monotonic", lambda: 5.0)
    with store.unit_of_work() as uow:
        uow.seen_tokens.add(
            SeenToken(scope="mailgun", token="0" * 64, expires_at=SIGNED_AT - timedelta(days=1))
        )
        uow.commit()
    run(_proc(store), [signed("delivered")])
    with store.unit_of_work() as uow:
        remaining = {t.token for t in uow.seen_tokens.find()}
    assert "0" * 64 not in remaining and len(remaining) == 1
