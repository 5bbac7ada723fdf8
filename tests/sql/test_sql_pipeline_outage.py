"""The database connection dropped in the middle of a batch, through the real pipeline."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from commproc_core.queues import MemoryQueue
from commproc_core.stores.sql import SQLStore, upgrade
from commproc_core.testing import ExampleProcessor, assert_stats, drain, table_counts


class QueueClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _kill(pg_url: str, app: str) -> None:
    engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :a"),
                {"a": app},
            )
    finally:
        engine.dispose()


@pytest.fixture
def store(pg_url: str, pg_schema: str) -> Iterator[tuple[SQLStore, str]]:
    app = f"commproc-pipeline-{uuid.uuid4().hex[:8]}"
    upgrade(pg_url, schema=pg_schema)
    sql_store = SQLStore(pg_url, schema=pg_schema, engine_options={"connect_args": {"application_name": app}})
    yield sql_store, app
    sql_store.close()


@pytest.mark.postgres
def test_connection_dropped_mid_batch_leaves_messages_for_redelivery(store, pg_url: str) -> None:
    sql_store, app = store
    clock = QueueClock()
    queue = MemoryQueue("memory://outage", visibility_timeout=30, clock=clock)
    queue.send_batch(
        [json.dumps({"id": f"e{i}", "from": f"+1415555{i:04d}", "text": "hi"}) for i in range(10)]
    )

    class Dropping(ExampleProcessor):
        dropped = False

        def process_event(self, event_data):
            if event_data.event_id == "e5" and not Dropping.dropped:
                Dropping.dropped = True
                _kill(pg_url, app)  # the database goes away under the open transaction
            return super().process_event(event_data)

    processor = Dropping(queue=queue, store=sql_store, config={"retry_base_seconds": 5})
    first = processor.process_messages(max_messages=10, wait_time=0)
    assert_stats(first, received=10, processed=0, retried=10, deleted=0)
    assert queue.in_flight() == 10  # all still on the queue, backed off
    assert set(table_counts(sql_store).values()) == {0}  # nothing half-written

    clock.now += 10
    total = drain(processor)
    assert_stats(total, processed=10, deleted=10, failed=0, duplicates=0)
    counts = table_counts(sql_store)
    assert counts["events"] == counts["messages"] == counts["leads"] == counts["processing_records"] == 10
    assert queue.approximate_depth() == 0 and queue.in_flight() == 0
