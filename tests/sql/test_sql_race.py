"""Several processes racing on the same keys: exactly one row each, and nobody fails.

Processes (spawned, not forked, and not threads) each open their own store,
wait at a barrier, then get-or-create the same conversation, lead, open
thread and event in one unit of work.
"""

from __future__ import annotations

import multiprocessing
import queue
from pathlib import Path
from typing import Any

import pytest

from commproc_core import model
from commproc_core.stores.sql import SCHEMA_VERSION, SQLStore, current_version, upgrade

PROCESSES = 6
ROUNDS = 3


def _race_worker(url: str, schema: str | None, barrier: Any, results: Any, index: int) -> None:
    try:
        store = SQLStore(url, schema=schema)
        store.check_schema()  # before the barrier, so the race is only the writes
        for round_ in range(ROUNDS):
            barrier.wait(timeout=120)
            with store.unit_of_work() as uow:
                conv, c1 = uow.conversations.get_or_create(
                    model.Conversation(external_id=f"race-{round_}", channel="sms"), key="external_id"
                )
                lead, c2 = uow.leads.get_or_create(model.Lead(phone=f"+1415555{round_:04d}"), key="phone")
                thread, c3 = uow.threads.get_or_create(
                    model.Thread(lead_id=lead.id, channel="sms", conversation_id=conv.id), key="open_thread"
                )
                event, c4 = uow.events.get_or_create(
                    model.CommunicationEvent(
                        channel="sms",
                        provider="twilio",
                        event_type="inbound",
                        dedupe_key=f"twilio:in:{round_}",
                    ),
                    key="dedupe_key",
                )
                uow.commit()
            results.put((index, round_, "ok", (c1, c2, c3, c4), (conv.id, lead.id, thread.id, event.id)))
        store.close()
    except BaseException as error:
        barrier.abort()  # the others stop waiting for us
        results.put((index, -1, "error", repr(error), None))


def _upgrade_worker(url: str, schema: str, barrier: Any, results: Any, index: int) -> None:
    try:
        barrier.wait(timeout=120)
        results.put((index, 0, "ok", upgrade(url, schema=schema).applied, None))
    except BaseException as error:
        barrier.abort()
        results.put((index, -1, "error", repr(error), None))


def _run(target: Any, url: str, schema: str | None, expected: int) -> list[tuple[Any, ...]]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, schema, barrier, results, i)) for i in range(PROCESSES)]
    for p in procs:
        p.start()
    out = []
    try:
        for _ in range(expected):
            item = results.get(timeout=180)
            out.append(item)
            assert item[2] == "ok", f"process {item[0]} failed: {item[3]}"
    except queue.Empty:
        pytest.fail(f"only {len(out)} of {expected} results arrived")
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert all(p.exitcode == 0 for p in procs)
    return out


def _check(store: SQLStore, results: list[tuple[Any, ...]]) -> None:
    for round_ in range(ROUNDS):
        mine = [r for r in results if r[1] == round_]
        assert len(mine) == PROCESSES
        for entity in range(4):
            # Exactly one process created each record; everyone got that record.
            assert sum(r[3][entity] for r in mine) == 1
            assert len({r[4][entity] for r in mine}) == 1
    with store.unit_of_work() as uow:
        assert uow.conversations.count() == ROUNDS
        assert uow.leads.count() == ROUNDS
        assert uow.threads.count() == ROUNDS
        assert uow.events.count() == ROUNDS


@pytest.mark.postgres
@pytest.mark.slow
def test_processes_race_on_postgres(pg_url: str, pg_schema: str) -> None:
    upgrade(pg_url, schema=pg_schema)
    results = _run(_race_worker, pg_url, pg_schema, PROCESSES * ROUNDS)
    store = SQLStore(pg_url, schema=pg_schema)
    _check(store, results)
    store.close()


@pytest.mark.slow
def test_processes_race_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    upgrade(url)
    results = _run(_race_worker, url, None, PROCESSES * ROUNDS)
    store = SQLStore(url)
    _check(store, results)
    store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_concurrent_upgrades_apply_each_version_once(pg_url: str, pg_schema: str) -> None:
    results = _run(_upgrade_worker, pg_url, pg_schema, PROCESSES)
    applied = [v for r in results for v in r[3]]
    assert sorted(applied) == list(range(1, SCHEMA_VERSION + 1))
    assert current_version(pg_url, schema=pg_schema) == SCHEMA_VERSION
