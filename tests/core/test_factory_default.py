"""ProcessorFactory's class-level calls (the seed's spelling) on the process-wide default factory."""

from __future__ import annotations

import pytest

from commproc_core import ProcessorFactory
from commproc_core.errors import ChannelNotFound, ConfigError
from commproc_core.model import ChannelConfig
from commproc_core.queues import MemoryQueue
from commproc_core.stores import MemoryStore
from commproc_core.stores.sql import SQLStore
from commproc_core.testing import ExampleProcessor, FixedClock


@pytest.fixture(autouse=True)
def fresh_default(monkeypatch):
    """Each test starts without a default factory and leaves none behind."""
    for name in ("COMMPROC_DATABASE_URL", "COMMPROC_SCHEMA", "COMMPROC_TABLE_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    ProcessorFactory.set_default(None)
    yield
    ProcessorFactory.set_default(None)


def add_config(store, channel_type="example", queue_url="memory://one", **fields):
    with store.unit_of_work() as uow:
        uow.channel_configs.add(ChannelConfig(channel_type=channel_type, queue_url=queue_url, **fields))
        uow.commit()


def test_class_level_calls_share_one_default_factory() -> None:
    ProcessorFactory.register_processor("example", ExampleProcessor)
    assert ProcessorFactory.default() is ProcessorFactory.default()
    assert "example" in ProcessorFactory.get_supported_channels()
    assert ProcessorFactory.get_processor_class("example") is ExampleProcessor
    assert [i.name for i in ProcessorFactory.list_channels()].count("example") == 1
    # An instance is independent of the default: dependency injection and tests.
    assert "example" not in ProcessorFactory().get_supported_channels()


def test_the_seed_calls_as_written() -> None:
    store = MemoryStore()
    add_config(
        store,
        config={"agent_mode": True, "agent_config": {"prompt": "Be brief", "context": {"step_number": 1}}},
    )
    add_config(store, channel_type="fax", queue_url="memory://fax")
    ProcessorFactory.register_processor("example", ExampleProcessor)  # kept by configure()
    ProcessorFactory.configure(store, queue_factory=MemoryQueue)

    # The guide's usage example, with a fax channel no plugin provides:
    FaxProcessor = type("FaxProcessor", (ExampleProcessor,), {"channel_type": "fax"})
    sms_processor = ProcessorFactory.get_processor("example")
    all_processors = ProcessorFactory.get_all_processors()
    ProcessorFactory.register_processor("fax", FaxProcessor)
    channels = ProcessorFactory.get_supported_channels()

    assert sms_processor.queue_url == "memory://one"
    assert sms_processor.settings.agent_config.context == {"step_number": 1}
    assert sms_processor.store is store
    # fax was not registered yet when get_all_processors ran: logged and skipped.
    assert [p.queue_url for p in all_processors] == ["memory://one"]
    assert {"example", "fax"} <= set(channels)
    assert [p.channel_type for p in ProcessorFactory.get_all_processors()] == ["example", "fax"]
    assert ProcessorFactory.validate_processor_config("fax", {"batch_size": 50}) == [
        "must be at least 1 and at most 10, got 50 @ config.batch_size"
    ]


def test_get_processor_without_a_url_reads_the_active_config() -> None:
    store = MemoryStore()
    add_config(store, queue_url="memory://old", is_active=False)
    add_config(store, queue_url="memory://live", config={"batch_size": 3})
    factory = ProcessorFactory(store)
    factory.register_processor("example", ExampleProcessor)
    processor = factory.get_processor("example")
    assert (processor.queue_url, processor.settings.batch_size) == ("memory://live", 3)
    # A config given explicitly replaces the stored one; the stored queue is still used.
    assert factory.get_processor("example", config={"batch_size": 5}).settings.batch_size == 5


def test_get_processor_without_a_url_fails_naming_the_channel() -> None:
    factory = ProcessorFactory(MemoryStore())
    factory.register_processor("example", ExampleProcessor)
    with pytest.raises(ConfigError, match="no active configuration for channel 'example'"):
        factory.get_processor("example")
    add_config(factory.store, queue_url="memory://a")
    add_config(factory.store, queue_url="memory://b")
    with pytest.raises(ConfigError, match="channel 'example' has 2 active configurations"):
        factory.get_processor("example")
    bare = ProcessorFactory()
    bare.register_processor("example", ExampleProcessor)
    with pytest.raises(ConfigError, match="no queue_url for channel 'example', and no store"):
        bare.get_processor("example")
    with pytest.raises(ChannelNotFound):
        bare.get_processor("fax")


def test_build_processor_makes_one_without_a_queue() -> None:
    factory = ProcessorFactory(MemoryStore())
    factory.register_processor("example", ExampleProcessor)
    processor = factory.build_processor("example", None, {"batch_size": 2})
    assert processor.queue_url is None and processor.settings.batch_size == 2


def test_the_default_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("COMMPROC_DATABASE_URL", url)
    monkeypatch.setenv("COMMPROC_TABLE_PREFIX", "cp_")
    ProcessorFactory.register_processor("example", ExampleProcessor)
    assert not (tmp_path / "env.db").exists(), "the store is opened on first use, not before"
    store = ProcessorFactory.default().store
    assert isinstance(store, SQLStore) and store.table_prefix == "cp_"
    add_config(store)
    assert ProcessorFactory.get_processor("example").store is store


def test_forgetting_the_default_closes_only_a_store_it_opened() -> None:
    closed = []

    class Recording(MemoryStore):
        def close(self) -> None:
            closed.append(self)

    opened = Recording()
    ProcessorFactory.set_default(ProcessorFactory(store_opener=lambda: opened))
    assert ProcessorFactory.default().store is opened
    ProcessorFactory.set_default(None)
    assert closed == [opened]
    given = Recording()
    ProcessorFactory.configure(given)
    ProcessorFactory.set_default(None)
    assert closed == [opened], "a store the host handed in is the host's to close"


def test_configure_with_where_to_open_the_store(tmp_path) -> None:
    factory = ProcessorFactory.configure(
        database_url=f"sqlite:///{tmp_path / 'host.db'}", table_prefix="host_", clock=FixedClock()
    )
    assert ProcessorFactory.default() is factory
    assert factory.store.table_prefix == "host_"
    with pytest.raises(ConfigError, match="a store or where to open one"):
        ProcessorFactory.configure(MemoryStore(), database_url="sqlite://")


def test_processors_share_the_factory_collaborators() -> None:
    store, clock = MemoryStore(), FixedClock()
    queues = {}
    factory = ProcessorFactory(
        store, clock=clock, queue_factory=lambda url: queues.setdefault(url, MemoryQueue(url))
    )
    factory.register_processor("example", ExampleProcessor)
    processor = factory.get_processor("example", "memory://q")
    assert processor.store is store and processor.clock is clock and processor.queue is queues["memory://q"]


def test_a_processor_whose_constructor_refuses_the_store_is_a_clear_error() -> None:
    class Narrow(ExampleProcessor):
        def __init__(self, queue_url, config=None):
            super().__init__(queue_url, config)

    factory = ProcessorFactory(MemoryStore())
    factory.register_processor("narrow", Narrow)
    with pytest.raises(ConfigError, match=r"Narrow\(\) accepts no store"):
        factory.get_processor("narrow", "memory://q")


def test_processors_built_directly_use_the_configured_store(tmp_path, monkeypatch) -> None:
    # As the seed's processors used the host's database: SMSProcessor(queue_url) with no store.
    store = MemoryStore()
    ProcessorFactory.configure(store)
    assert ExampleProcessor("memory://q").store is store
    ProcessorFactory.set_default(None)
    monkeypatch.setenv("COMMPROC_DATABASE_URL", f"sqlite:///{tmp_path / 'own.db'}")
    own = ExampleProcessor("memory://q").store
    assert isinstance(own, SQLStore) and own is not store
    own.close()


def test_a_processor_built_directly_opens_the_layout_the_environment_names(tmp_path, monkeypatch) -> None:
    # Without a configured default, a processor's own store reads the same
    # variables as the worker, the CLI and the Lambda handler.
    monkeypatch.setenv("COMMPROC_DATABASE_URL", f"sqlite:///{tmp_path / 'own.db'}")
    monkeypatch.setenv("COMMPROC_TABLE_PREFIX", "host_")
    own = ExampleProcessor("memory://q").store
    assert isinstance(own, SQLStore) and own.table_prefix == "host_"
    own.close()


def test_checking_a_config_opens_no_store() -> None:
    opened = []
    factory = ProcessorFactory(store_opener=lambda: opened.append(1) or MemoryStore())
    factory.register_processor("example", ExampleProcessor)
    assert factory.validate_processor_config("example", {"batch_size": 5}) == []
    assert factory.validate_processor_config("example", {"batch_size": 50}) != []
    assert opened == []
