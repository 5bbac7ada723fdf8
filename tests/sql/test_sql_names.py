"""Table prefixes and schema names must fit PostgreSQL's 63-byte identifiers, or be refused.

PostgreSQL cuts a longer identifier silently: the tables would be created
under cut names and every later query would name tables that do not exist.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pg_support import postgres_schema

from commproc_core import model
from commproc_core.errors import ConfigError
from commproc_core.stores.spec import TABLES
from commproc_core.stores.sql import SQLStore
from commproc_core.stores.sql.schema import VERSION_TABLE, SQLSchema

#: PostgreSQL's NAMEDATALEN - 1.
PG_NAME_BYTES = 63
NAMES = [*(spec.name for spec in TABLES.values()), VERSION_TABLE]
LONGEST_PREFIX = PG_NAME_BYTES - max(len(n) for n in NAMES)


def test_the_limit_is_what_the_longest_table_name_leaves() -> None:
    prefix = "p" * LONGEST_PREFIX
    schema = SQLSchema(table_prefix=prefix)
    names = [t.name for t in schema.metadata.sorted_tables]
    assert max(len(n.encode()) for n in names) == PG_NAME_BYTES
    index_names = [i.name for t in schema.metadata.sorted_tables for i in t.indexes]
    assert all(len(str(n).encode()) <= PG_NAME_BYTES for n in index_names)
    with pytest.raises(ConfigError, match=f"at most {LONGEST_PREFIX} fit"):
        SQLSchema(table_prefix=prefix + "p")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ("s" * 64, "64 bytes"),
        ("é" * 32, "64 bytes"),  # 32 characters, but PostgreSQL counts bytes
        ("a\x00b", "NUL"),
        ("a\ud800", "lone surrogate"),
    ],
)
def test_bad_schema_names_are_refused(schema: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SQLSchema(schema=schema)


def test_the_errors_do_not_echo_a_huge_prefix() -> None:
    with pytest.raises(ConfigError) as caught:
        SQLStore("sqlite://", table_prefix="x" * 100_000)
    assert len(str(caught.value)) < 300
    with pytest.raises(ConfigError) as caught:
        SQLSchema(table_prefix="bad-" * 100_000)
    assert len(str(caught.value)) < 300


def test_empty_schema_means_none() -> None:
    assert SQLSchema(schema="").schema is None


@pytest.mark.postgres
def test_longest_names_work_on_postgresql(pg_url: str) -> None:
    prefix = "p" * LONGEST_PREFIX
    # 25 two-byte characters, "_" and 12 hex digits: exactly 63 bytes.
    with postgres_schema(pg_url, prefix="é" * 25) as schema:
        assert len(schema.encode()) == PG_NAME_BYTES
        store = SQLStore(pg_url, schema=schema, table_prefix=prefix, auto_upgrade=True)
        try:
            with store.unit_of_work() as uow:
                lead = uow.leads.add(model.Lead(phone="+14155550100"))
                uow.commit()
            with store.unit_of_work() as uow:
                assert uow.leads.get(lead.id).phone == "+14155550100"
        finally:
            store.close()
        engine = sa.create_engine(pg_url, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                found = set(sa.inspect(conn).get_table_names(schema=schema))
        finally:
            engine.dispose()
        assert found == {prefix + name for name in NAMES}
