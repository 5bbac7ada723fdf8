"""Fixtures for the runtime tests: plugins as entry points, moto, SQLite URLs, the example channel."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from commproc_core.lambda_handler import clear_cache
from commproc_core.testing.moto import aws_env, moto_endpoint, moto_server_url  # noqa: F401

PLUGINS = {"sms": "commproc_sms:SMSProcessor", "email": "commproc_email:EmailProcessor"}


@pytest.fixture
def plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sms and email plugins visible as entry points, whether or not they are pip-installed.

    pytest imports them from src/; this makes ProcessorFactory discover them
    the way an installed distribution would be discovered.
    """
    import commproc_core.factory as factory_module

    real = factory_module.entry_points

    def entry_points(group: str):
        found = list(real(group=group))
        names = {ep.name for ep in found}
        found += [EntryPoint(name, target, group) for name, target in PLUGINS.items() if name not in names]
        return found

    monkeypatch.setattr(factory_module, "entry_points", entry_points)


@pytest.fixture
def no_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """No channel plugin installed at all."""
    import commproc_core.factory as factory_module

    monkeypatch.setattr(factory_module, "entry_points", lambda group: [])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL whose file does not exist yet."""
    return f"sqlite:///{tmp_path / 'commproc.db'}"


@pytest.fixture
def commproc_db(sqlite_url: str) -> str:
    """A SQLite URL whose file holds a current commproc schema (as `commproc db upgrade` leaves it)."""
    from commproc_core.stores.sql import upgrade

    upgrade(sqlite_url)
    return sqlite_url


@pytest.fixture(autouse=True)
def _lambda_cache():
    yield
    clear_cache()
