"""Worker settings: TOML file, environment and flags, in that order, with every problem reported."""

from __future__ import annotations

import pytest

from commproc_core.errors import ConfigError
from commproc_core.runtime.settings import (
    ChannelSpec,
    WorkerSettings,
    channel_overrides,
    load_channel_config,
    load_settings,
    parse_duration,
)

TOML = """
database_url = "sqlite:///from-file.db"
pollers = 2
wait_time = 10
log_format = "json"

[processors]
example = "commproc_core.testing:ExampleProcessor"

[[channels]]
channel_type = "sms"
queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/sms"
config = { agent_mode = true }
"""


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == WorkerSettings()
    assert settings.database_url is None and settings.channels == () and settings.metrics_port is None
    assert channel_overrides(settings) == {}


def test_file_then_environment_then_flags(tmp_path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(TOML)
    environ = {"COMMPROC_POLLERS": "3", "COMMPROC_LOG_LEVEL": "debug", "COMMPROC_CONFIG": str(path)}
    settings = load_settings({"wait_time": 2, "pollers": None, "channels": []}, environ=environ)
    assert settings.database_url == "sqlite:///from-file.db"
    assert settings.pollers == 3  # the environment over the file
    assert settings.wait_time == 2  # a flag over both
    assert settings.log_format == "json" and settings.log_level == "DEBUG"
    assert settings.processors == {"example": "commproc_core.testing:ExampleProcessor"}
    assert settings.channels == (
        ChannelSpec(
            channel_type="sms",
            queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/sms",
            config={"agent_mode": True},
        ),
    )
    assert channel_overrides(settings) == {"wait_time": 2}


def test_channels_and_processors_from_the_environment() -> None:
    environ = {
        "COMMPROC_CHANNELS": "sms=https://sqs/1/sms, email=https://sqs/1/email",
        "COMMPROC_PROCESSORS": "voice=acme.voice:VoiceProcessor",
        "COMMPROC_METRICS_PORT": "9108",
        "COMMPROC_HEARTBEAT": "0.4",
    }
    settings = load_settings(environ=environ)
    assert [(c.channel_type, c.queue_url) for c in settings.channels] == [
        ("sms", "https://sqs/1/sms"),
        ("email", "https://sqs/1/email"),
    ]
    assert settings.processors == {"voice": "acme.voice:VoiceProcessor"}
    assert settings.metrics_port == 9108
    assert channel_overrides(settings) == {"heartbeat_fraction": 0.4}


def test_every_problem_is_reported_with_where_it_came_from(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('pollers = "two"\nbogus = 1\n[[channels]]\nqueue_url = 5\n')
    environ = {"COMMPROC_WAIT_TIME": "soon", "COMMPROC_CHANNELS": "sms"}
    with pytest.raises(ConfigError) as caught:
        load_settings({"batch_size": 11, "log_format": "xml"}, config_file=path, environ=environ)
    assert sorted(caught.value.problems) == sorted(
        [
            "expected int, got str @ pollers",
            "unknown setting @ bogus",
            "required string missing @ channels[0].channel_type",
            "required string missing @ channels[0].queue_url",
            "expected int, got 'soon' @ $COMMPROC_WAIT_TIME",
            "expected TYPE=QUEUE_URL, got 'sms' @ $COMMPROC_CHANNELS",
            "must be between 1 and 10, got 11 @ --batch-size",
            "must be one of text, json, got 'xml' @ --log-format",
        ]
    )


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("pollers = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config_file=broken, environ={})


def test_channel_config_files(tmp_path) -> None:
    (tmp_path / "sms.json").write_text('{"agent_mode": true}')
    (tmp_path / "sms.toml").write_text("agent_mode = true\n")
    (tmp_path / "list.json").write_text("[1]")
    assert load_channel_config(tmp_path / "sms.json") == {"agent_mode": True}
    assert load_channel_config(tmp_path / "sms.toml") == {"agent_mode": True}
    with pytest.raises(ConfigError, match="JSON object"):
        load_channel_config(tmp_path / "list.json")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("0.5h", 1800)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-1h", "0", "nan", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
