"""Which database the commands use: nothing created by mistake, --schema/--table-prefix, driver hints, masked URLs."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg_support import postgres_schema, require_postgres

from commproc_core.runtime.cli import main
from commproc_core.runtime.database import check_driver, resolve_target
from commproc_core.runtime.masking import mask_config, mask_urls
from commproc_core.stores.sql import SQLStore, upgrade

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/sms-inbound"
EXAMPLE = ["--processor", "example=commproc_core.testing:ExampleProcessor"]

#: Every command that opens the user's database, as (argv before --database).
COMMANDS = [
    ["stats"],
    ["channels", "list"],
    ["channels", "add", "sms", QUEUE],
    ["channels", "enable", "sms"],
    ["channels", "disable", "sms"],
    ["run", "--channel", f"sms={QUEUE}"],
    ["replay", "sms", "__BODY__"],
]


def tables(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


@pytest.fixture
def body_file(tmp_path) -> str:
    path = tmp_path / "body.json"
    path.write_text('{"id": "e1", "from": "+14155550100", "text": "hi"}')
    return str(path)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_mistyped_path_is_an_error_and_creates_nothing(
    plugins, command, tmp_path, body_file, capsys
) -> None:
    missing = tmp_path / "comproc.db"
    argv = [body_file if part == "__BODY__" else part for part in command]
    assert main([*argv, "--database", f"sqlite:///{missing}"]) == 2
    assert f"no commproc database at {missing}" in capsys.readouterr().err
    assert not missing.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["body.json"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_no_command_creates_tables_in_a_host_database(plugins, command, tmp_path, body_file, capsys) -> None:
    host = tmp_path / "host.db"
    with sqlite3.connect(host) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    before = hashlib.sha256(host.read_bytes()).hexdigest()
    argv = [body_file if part == "__BODY__" else part for part in command]
    assert main([*argv, "--database", f"sqlite:///{host}"]) == 1
    err = capsys.readouterr().err
    assert f"{host} holds no commproc tables" in err and "commproc db upgrade --database" in err
    # Untouched: no tables, no journal mode change, no -wal file.
    assert hashlib.sha256(host.read_bytes()).hexdigest() == before
    assert tables(host) == ["invoices"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["body.json", "host.db"]


def test_table_prefix_reaches_an_embedders_tables(plugins, tmp_path, body_file, capsys, monkeypatch) -> None:
    path = tmp_path / "host.db"
    url = f"sqlite:///{path}"
    assert main(["db", "upgrade", "--database", url, "--table-prefix", "cp_"]) == 0
    assert "(table prefix cp_)" in capsys.readouterr().out
    prefixed = ["--database", url, "--table-prefix", "cp_"]
    assert main(["channels", "add", "sms", QUEUE, *prefixed]) == 0
    assert main(["channels", "list", "--json", *prefixed]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["channel_type"] == "sms"
    assert main(["replay", "example", body_file, "--json", *prefixed, *EXAMPLE]) == 0
    assert main(["stats", "--json", *prefixed]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["channels"][0]["processed"] == 1
    assert main(["db", "version", *prefixed]) == 0
    # The environment names them as well as the flags do.
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    monkeypatch.setenv("COMMPROC_TABLE_PREFIX", "cp_")
    assert main(["channels", "disable", "sms"]) == 0
    # Without the prefix: an error, and no second, unprefixed set of tables.
    monkeypatch.delenv("COMMPROC_TABLE_PREFIX")
    assert main(["stats", "--database", url]) == 1
    assert "holds no commproc tables" in capsys.readouterr().err
    assert all(name.startswith("cp_") for name in tables(path))


def test_schema_needs_postgresql_and_memory_takes_no_options(capsys, tmp_path) -> None:
    upgrade(f"sqlite:///{tmp_path / 'c.db'}")
    assert main(["stats", "--database", f"sqlite:///{tmp_path / 'c.db'}", "--schema", "app"]) == 2
    assert "--schema needs PostgreSQL; on SQLite use --table-prefix" in capsys.readouterr().err
    assert main(["stats", "--database", "memory://", "--table-prefix", "x_"]) == 2
    assert "memory:// has no schema or table prefix" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://app:pw@db/app", "commproc keeps its records in SQLite"),
        ("mysql+pymysql://app@db/app", "mysql is not supported"),
        (
            "postgresql+psycopg2://app@db/app",
            "through psycopg 3, not psycopg2: write the URL as postgresql://",
        ),
        ("postgresql+asyncpg://app@db/app", "through psycopg 3, not asyncpg"),
        ("sqlite+aiosqlite:///x.db", "built-in sqlite3 driver, not aiosqlite"),
        ("not a url", "not a database URL"),
    ],
)
def test_driver_hints_point_the_right_way(url, expected, capsys) -> None:
    assert main(["stats", "--database", url]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "pw" not in err
    assert "commproc-core[postgres])" not in err.replace("pip install 'commproc-core[postgres]'", "")


def test_a_missing_psycopg_says_what_to_install(monkeypatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    with pytest.raises(
        Exception, match=r"need psycopg 3, which is not installed: pip install 'commproc-core\[postgres\]'"
    ):
        check_driver("postgresql://app@db/app")


def test_resolve_target_reads_flags_then_environment() -> None:
    env = {
        "COMMPROC_DATABASE_URL": "postgresql://a@h/d",
        "COMMPROC_SCHEMA": "app",
        "COMMPROC_TABLE_PREFIX": "cp_",
    }
    assert resolve_target(environ=env).describe() == "postgresql://a@h/d (schema app, table prefix cp_)"
    assert resolve_target("sqlite:///x.db", None, "", environ=env).table_prefix == ""
    assert resolve_target(environ={}).url == "sqlite:///commproc.db"


# -- secrets ------------------------------------------------------------------------------------


def test_mask_urls_and_configs() -> None:
    assert (
        mask_urls("postgresql://commproc:s3cret@db:5432/commproc")
        == "postgresql://commproc:***@db:5432/commproc"
    )
    text = "see https://u:p@h/x?api_key=abc&page=2&X-Amz-Signature=f00 and redis://:pw@cache/0"
    assert (
        mask_urls(text)
        == "see https://u:***@h/x?api_key=***&page=2&X-Amz-Signature=*** and redis://:***@cache/0"
    )
    masked = mask_config(
        {
            "auth_token": "tok",
            "auth_tokens": ["a", "b"],
            "opt_out_keywords": ["STOP"],
            "require_signature": True,
            "agent_config": {"endpoint": "https://u:pw@llm/v1?token=zz", "fallbacks": [{"api_key": "k"}]},
            "webhooks": ["https://h/cb?sig=abc", "https://ok/cb"],
        }
    )
    assert masked == {
        "auth_token": "***",
        "auth_tokens": "***",
        "opt_out_keywords": ["STOP"],
        "require_signature": True,
        "agent_config": {"endpoint": "https://u:***@llm/v1?token=***", "fallbacks": [{"api_key": "***"}]},
        "webhooks": ["https://h/cb?sig=***", "https://ok/cb"],
    }


def test_channels_list_masks_secrets_in_urls_and_lists(plugins, commproc_db, capsys) -> None:
    store = SQLStore(commproc_db)
    from commproc_core.model import ChannelConfig

    with store.unit_of_work() as uow:
        uow.channel_configs.add(
            ChannelConfig(
                channel_type="sms",
                queue_url="https://user:queuepw@sqs.example.com/123456789012/sms?token=qtok",
                config={
                    "auth_tokens": ["tok-one", "tok-two"],
                    "agent_config": {"endpoint": "https://a:llmpw@llm/v1"},
                },
            )
        )
        uow.commit()
    store.close()
    for extra in (["--json"], []):
        assert main(["channels", "list", "--database", commproc_db, *extra]) == 0
        out = capsys.readouterr().out
        for secret in ("queuepw", "qtok", "tok-one", "tok-two", "llmpw"):
            assert secret not in out


def test_log_lines_and_errors_mask_url_passwords(capsys) -> None:
    # An unreachable PostgreSQL: the error names the URL, never its password.
    assert main(["stats", "--database", "postgresql://app:hunter2@127.0.0.1:1/app"]) == 1
    err = capsys.readouterr().err
    assert "commproc: error: database unavailable" in err and "hunter2" not in err


@pytest.mark.postgres
def test_schema_and_masked_password_on_postgresql(plugins, tmp_path, body_file, capsys) -> None:
    server = sa.make_url(require_postgres())
    with postgres_schema(server.render_as_string(hide_password=False), "cli") as schema:
        # The test server trusts every connection, so any password works, and must never be printed.
        url = server.set(drivername="postgresql", password="hunter2").render_as_string(hide_password=False)
        db = ["--database", url, "--schema", schema]
        assert main(["stats", *db]) == 1
        assert f"no commproc schema (schema '{schema}')" in capsys.readouterr().err
        assert main(["db", "upgrade", *db]) == 0
        assert main(["channels", "add", "sms", QUEUE, *db]) == 0
        # NUL and lone surrogates stop before the database, which would refuse them with a DataError.
        assert (
            main(
                [
                    "channels",
                    "add",
                    "sms",
                    QUEUE,
                    "--replace",
                    "--config",
                    '{"agent_config": {"prompt": "a\\u0000"}}',
                    *db,
                ]
            )
            == 2
        )
        assert "contains a NUL character @ config.agent_config.prompt" in capsys.readouterr().err
        assert main(["replay", "example", body_file, *db, *EXAMPLE]) == 0
        out, err = capsys.readouterr()
        assert "hunter2" not in out + err
        assert f"records in {url.replace('hunter2', '***')} (schema {schema})" in err
        assert main(["stats", "--json", *db]) == 0
        assert json.loads(capsys.readouterr().out)["channels"][0]["processed"] == 1
        with sa.create_engine(server).connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.tables WHERE table_name = 'events' AND table_schema = 'public'"
                )
            ).scalar()
        assert found == 0  # nothing created outside the schema
