"""ProcessorFactory discovery over real entry points (dist-info folders on sys.path)."""

import logging
import sys
import textwrap

import pytest

from commproc_core import ProcessorFactory
from commproc_core.errors import ChannelLoadError, ChannelNotFound, ConfigError, DuplicateChannelError
from commproc_core.model import ChannelConfig
from commproc_core.runtime.cli import main
from commproc_core.stores import MemoryStore
from commproc_core.testing import ExampleProcessor

GROUP = "commproc.test-channels"


def make_dist(root, name, entries, module=None, source=""):
    info = root / f"{name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}\n")
    if module:
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


VOICE = """
from commproc_core.testing import ExampleProcessor

class VoiceProcessor(ExampleProcessor):
    channel_type = "voice"
"""


def test_discovers_lists_and_loads_lazily(plugins):
    make_dist(plugins, "fake-voice", {"voice": "fake_voice:VoiceProcessor"}, "fake_voice", VOICE)
    factory = ProcessorFactory(MemoryStore(), group=GROUP)
    infos = factory.list_channels()
    assert [(i.name, i.distribution, i.version) for i in infos] == [("voice", "fake-voice", "1.2.3")]
    assert "fake_voice" not in sys.modules  # listing imports nothing
    assert factory.get_supported_channels() == ["voice"]
    processor = factory.get_processor("voice", "memory://voice", {"agent_mode": False})
    assert type(processor).__name__ == "VoiceProcessor"
    assert processor.queue_url == "memory://voice"


def test_broken_plugin_skipped_then_raises_by_name(plugins, caplog):
    make_dist(
        plugins, "fake-broken", {"broken": "fake_broken:Nope"}, "fake_broken", "import no_such_module_xyz\n"
    )
    make_dist(plugins, "fake-voice", {"voice": "fake_voice:VoiceProcessor"}, "fake_voice", VOICE)
    factory = ProcessorFactory(group=GROUP)
    with caplog.at_level(logging.WARNING, logger="commproc.factory"):
        assert factory.get_supported_channels() == ["voice"]
    assert "fake-broken" in caplog.text
    with pytest.raises(ChannelLoadError) as info:
        factory.get_processor("broken")
    assert "fake-broken" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_duplicate_channel_names_both(plugins):
    make_dist(plugins, "fake-one", {"dup": "fake_one:P"})
    make_dist(plugins, "fake-two", {"dup": "fake_two:P"})
    factory = ProcessorFactory(group=GROUP)
    with pytest.raises(DuplicateChannelError) as info:
        factory.get_processor_class("dup")
    assert "fake-one" in str(info.value) and "fake-two" in str(info.value)
    assert factory.get_supported_channels() == []


def test_unknown_channel_lists_supported(plugins):
    make_dist(plugins, "fake-voice", {"voice": "fake_voice:VoiceProcessor"}, "fake_voice", VOICE)
    factory = ProcessorFactory(group=GROUP)
    factory.register_processor("example", ExampleProcessor)
    with pytest.raises(ChannelNotFound) as info:
        factory.get_processor("fax")
    assert "example, voice" in str(info.value)


def test_register_processor_overrides_plugins(plugins):
    make_dist(plugins, "fake-voice", {"voice": "fake_voice:VoiceProcessor"}, "fake_voice", VOICE)
    factory = ProcessorFactory(group=GROUP)
    factory.register_processor("voice", ExampleProcessor)
    assert factory.get_processor_class("voice") is ExampleProcessor
    with pytest.raises(TypeError):
        factory.register_processor("x", "not a class")


def test_validate_processor_config_reports_paths():
    factory = ProcessorFactory(group=GROUP)
    factory.register_processor("example", ExampleProcessor)
    assert factory.validate_processor_config("example", {"agent_mode": True}) == []
    problems = factory.validate_processor_config(
        "example", {"agent_mode": "yes", "surprise": 1, "agent_config": {"prompt": "hi", "context": []}}
    )
    assert any("config.agent_mode" in p for p in problems)
    assert any("surprise" in p for p in problems)
    assert any("config.agent_config.context" in p for p in problems)
    with pytest.raises(ConfigError) as info:
        factory.validate_processor_config("example", {"batch_size": 50}, raise_on_error=True)
    assert "config.batch_size" in str(info.value)


def test_get_all_processors_reads_active_configs(caplog):
    store = MemoryStore()
    with store.unit_of_work() as uow:
        uow.channel_configs.add(
            ChannelConfig(
                channel_type="example",
                queue_url="memory://a",
                config={
                    "agent_mode": True,
                    "agent_config": {"prompt": "Be brief", "context": {"brand": "Acme"}},
                },
            )
        )
        uow.channel_configs.add(
            ChannelConfig(channel_type="example", queue_url="memory://b", is_active=False)
        )
        uow.channel_configs.add(ChannelConfig(channel_type="nope", queue_url="memory://c"))
        uow.channel_configs.add(
            ChannelConfig(channel_type="example", queue_url="memory://d", config={"bogus": 1})
        )
        uow.commit()
    factory = ProcessorFactory(store, group=GROUP)
    factory.register_processor("example", ExampleProcessor)
    with caplog.at_level(logging.ERROR, logger="commproc.factory"):
        processors = factory.get_all_processors()
    assert [p.queue_url for p in processors] == ["memory://a"]
    assert processors[0].settings.agent_config.context == {"brand": "Acme"}
    assert processors[0].store is store
    assert "nope" in caplog.text and "bogus" in caplog.text


def test_cli_version_and_channels(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "commproc 0.1.0" in capsys.readouterr().out
    code = main(["channels"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "CHANNEL" in out or "no channels installed" in out
