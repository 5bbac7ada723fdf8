"""Fixtures: commproc's schema in Django's test database, moto's SQS as a server, an admin user."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection

# moto_endpoint: a moto SQS server shared by the session, emptied for each test,
# with AWS_ENDPOINT_URL_SQS pointing at it (as an SQS-compatible endpoint would be).
pytest_plugins = ["commproc_core.testing.moto"]


@pytest.fixture
def commproc_schema(transactional_db: None) -> Iterator[str]:
    """commproc's tables, created by the management command in the test database's own schema."""
    from commproc_records.connection import schema

    call_command("commproc", "db", "upgrade")
    yield schema()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema()}" CASCADE')


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    from commproc_core.testing.moto import sqs_client

    return sqs_client(moto_endpoint)
