"""Every bad configuration is a clear error naming the field, never a traceback.

The entry points the runtime owns: `commproc channels add` (JSON text, JSON
and TOML files), the worker's TOML file and its environment. Specific cases
first (each was a traceback or a database error before), then Hypothesis
properties over configs of any shape.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from commproc_core.errors import ConfigError
from commproc_core.runtime.cli import main
from commproc_core.runtime.settings import config_from_text, config_value_problems, load_settings
from commproc_core.runtime.worker import Worker
from commproc_core.stores import MemoryStore

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/sms-inbound"


def add(config: str, database: str = "memory://", *extra: str) -> list[str]:
    # --config=TEXT: a separate argument starting with "-" would be an option to argparse.
    return ["channels", "add", "sms", QUEUE, f"--config={config}", "--database", database, *extra]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ("[" * 15_000 + "]" * 15_000, "--config is nested too deeply (at most 32 levels)"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper than 32 levels @ config.a.a.a"),
        ('{"x": ' + "1" * 5000 + "}", "--config is not a usable config: a number is too long"),
        ('{"x": 99999999999999999999999}', "integer out of range (64 bits at most) @ config.x"),
        ('{"x": NaN}', "NaN is not a number a config can hold"),
        ('{"x": -Infinity}', "-Infinity is not a number a config can hold"),
        (
            '{"agent_config": {"prompt": "a\\u0000b"}}',
            "contains a NUL character @ config.agent_config.prompt",
        ),
        (
            '{"opt_out": ["STOP", "\\ud800"]}',
            "contains a lone surrogate (not valid Unicode text) @ config.opt_out[1]",
        ),
        ('{"a\\u0000": 1}', "a key contains a NUL character @ config"),
        ('{"a": "x\ny"}', "Invalid control character (line 1, column 9)"),
        ("[1, 2]", "--config must hold a JSON object, got list"),
    ],
)
def test_hostile_json_configs_are_clear_errors(plugins, config, expected, capsys) -> None:
    assert main(add(config)) == 2
    err = capsys.readouterr().err
    assert err.startswith("commproc: error: ") and expected in err
    assert "Traceback" not in err and " at at " not in err


def test_a_config_value_is_never_echoed(plugins, capsys) -> None:
    secret = "s3cret-\\u0000-value"
    assert main(add(f'{{"auth_token": "{secret}"}}')) == 2
    assert "s3cret" not in capsys.readouterr().err


def test_config_files_that_are_not_utf8_or_too_deep(plugins, tmp_path, capsys) -> None:
    latin = tmp_path / "config.json"
    latin.write_bytes('{"agent_config": {"prompt": "Grüße"}}'.encode("latin-1"))
    args = ["channels", "add", "sms", QUEUE, "--database", "memory://", "--config-file"]
    assert main([*args, str(latin)]) == 2
    assert f"{latin} is not UTF-8 text (undecodable byte at offset 31)" in capsys.readouterr().err
    deep = tmp_path / "config.toml"
    deep.write_text("x = " + "[" * 3000 + "]" * 3000 + "\n")
    assert main([*args, str(deep)]) == 2
    assert "arrays or tables nested too deeply" in capsys.readouterr().err
    dated = tmp_path / "dated.toml"
    dated.write_text("since = 2026-01-01\n")
    assert main([*args, str(dated)]) == 2
    assert "got date @ config.since" in capsys.readouterr().err
    huge = tmp_path / "huge.toml"
    huge.write_text("n = " + "7" * 5000 + "\n")
    assert main([*args, str(huge)]) == 2
    assert "a number is too long to be a setting" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ('{"batch_size": "ten"}', "config.batch_size"),
        (
            '{"agent_mode": true, "agent_config": {"prompt": "hi", "max_tokens": "many"}, "wait_time": 5}',
            "config.agent_config",
        ),
    ],
)
def test_a_wrong_type_from_the_cli_is_a_clear_error_naming_the_field(plugins, config, field, capsys) -> None:
    # Whatever the plugin's settings check does with it (reports it, or raises), the CLI
    # ends in exit 2 with a message naming the field, never a traceback or the value.
    assert main(add(config)) == 2
    err = capsys.readouterr().err
    assert err.startswith("commproc: error: invalid config for channel 'sms'") and "Traceback" not in err
    assert field in err
    assert "ten" not in err.replace("often", "") and "many" not in err


def test_locate_crash_names_the_field_a_check_breaks_on() -> None:
    from commproc_core.runtime.settings import locate_crash

    def check(config) -> None:
        if isinstance(config.get("limits", {}).get("soft"), str):
            raise TypeError("'<' not supported between instances of 'str' and 'int'")

    config = {"a": 1, "limits": {"hard": 3, "soft": "3"}, "z": [1]}
    assert locate_crash(check, config) == "config.limits.soft"
    assert locate_crash(check, {"a": 1}) is None


def test_hostile_worker_settings(tmp_path) -> None:
    toml = tmp_path / "worker.toml"
    toml.write_text(
        'pollers = "ten"\n'
        "batch_size = nan\n"
        'log_format = "\\u0000"\n'
        "[[channels]]\n"
        'channel_type = "sms"\n'
        'queue_url = "sms-inbound"\n'
        'config = { batch_size = "ten", deep = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]] }\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(
            config_file=toml, environ={"COMMPROC_POLLERS": "9" * 5000, "COMMPROC_ALLOW_DEGRADED": "maybe"}
        )
    problems = caught.value.problems
    assert "expected int, got str @ pollers" in problems
    assert "expected int, got float @ batch_size" in problems
    assert "contains a NUL character @ log_format" in problems
    assert any(
        p.startswith("expected an SQS queue URL") and p.endswith("@ channels[0].queue_url") for p in problems
    )
    assert any("nested deeper than 32 levels @ channels[0].config.deep" in p for p in problems)
    assert "expected int, got '9999999999999999999999999999999999999...' @ $COMMPROC_POLLERS" in problems
    assert "expected bool, got 'maybe' @ $COMMPROC_ALLOW_DEGRADED" in problems
    toml.write_bytes(b'pollers = "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_settings(config_file=toml, environ={})


def test_worker_settings_with_a_wrong_channel_config_type_fail_the_start_clearly(plugins, tmp_path) -> None:
    toml = tmp_path / "worker.toml"
    toml.write_text(
        f'[[channels]]\nchannel_type = "sms"\nqueue_url = "{QUEUE}"\nconfig = {{ batch_size = "ten" }}\n'
    )
    settings_ = load_settings(config_file=toml, environ={})
    with pytest.raises(ConfigError) as caught:
        Worker.from_settings(settings_, store=MemoryStore())
    assert "sms on sms-inbound" in str(caught.value) and "config.batch_size" in str(caught.value)


# -- properties -------------------------------------------------------------------------------

KEYS = st.one_of(
    st.sampled_from(
        ["agent_mode", "batch_size", "wait_time", "opt_out", "agent_config", "prompt", "auth_token"]
    ),
    st.text(max_size=8),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12),
    st.sampled_from(["\x00", "\ud800", "STOP", "ten", "10", ""]),
)
CONFIGS = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=4)),
    max_leaves=20,
)
PROPERTY = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _json(value: object) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=True)


def _assert_clear(code: int, err: str) -> None:
    assert code in (0, 2), err
    if code == 2:
        assert err.startswith("commproc: error: ") and "Traceback" not in err


@PROPERTY
@given(config=st.dictionaries(KEYS, CONFIGS, max_size=5))
def test_channels_add_accepts_or_reports_any_config(plugins, capsys, config) -> None:
    code = main(add(_json(config)))
    _assert_clear(code, capsys.readouterr().err)


@PROPERTY
@given(text=st.text(max_size=60) | st.binary(max_size=60).map(lambda b: b.decode("latin-1")))
@example(text="-:")  # starts like an option
def test_channels_add_accepts_or_reports_any_text(plugins, capsys, text) -> None:
    code = main(add(text))
    _assert_clear(code, capsys.readouterr().err)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return '""'
    if isinstance(value, float):
        return (
            "nan"
            if math.isnan(value)
            else ("inf" if value > 0 else "-inf")
            if math.isinf(value)
            else repr(value)
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # basic-string escapes are JSON's; a lone surrogate is a TOML error
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


SETTING_NAMES = st.sampled_from(
    [
        "pollers",
        "batch_size",
        "wait_time",
        "heartbeat",
        "log_level",
        "metrics_port",
        "schema",
        "allow_degraded",
        "x",
    ]
)


@PROPERTY
@given(
    top=st.dictionaries(SETTING_NAMES, SCALARS | st.lists(SCALARS, max_size=2), max_size=4),
    channel_type=st.sampled_from(["sms", "email", "smss", ""]) | st.text(max_size=5),
    queue_url=st.sampled_from([QUEUE, "sms-inbound", "memory://x", ""]) | st.text(max_size=10),
    config=st.dictionaries(KEYS, CONFIGS, max_size=4),
    environ=st.dictionaries(
        st.sampled_from(
            ["COMMPROC_POLLERS", "COMMPROC_CHANNELS", "COMMPROC_HEARTBEAT", "COMMPROC_ALLOW_DEGRADED"]
        ),
        st.text(alphabet=string.printable + "\x00\ud800é", max_size=20),
        max_size=3,
    ),
)
def test_worker_settings_from_toml_and_environment_accept_or_report(
    plugins, tmp_path_factory, top, channel_type, queue_url, config, environ
) -> None:
    lines = [f"{name} = {_toml_value(value)}" for name, value in top.items()]
    lines += [
        "[[channels]]",
        f"channel_type = {json.dumps(channel_type)}",
        f"queue_url = {json.dumps(queue_url)}",
    ]
    lines.append(f"config = {_toml_value(config)}")
    path = Path(tmp_path_factory.mktemp("toml")) / "worker.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        loaded = load_settings(config_file=path, environ=environ)
    except ConfigError as exc:
        assert exc.problems or str(exc)
        return
    # Loaded settings are plain data the database can hold, and the channels load or are named.
    for spec in loaded.channels:
        assert config_value_problems(spec.config) == []
    try:
        worker = Worker.from_settings(loaded, store=MemoryStore())
    except ConfigError:
        return
    for processor in worker.processors:
        processor.close()


@PROPERTY
@given(value=CONFIGS)
def test_config_value_problems_name_a_path_for_each_problem(value) -> None:
    for problem in config_value_problems(value):
        assert " @ config" in problem
    text = _json({"v": value})
    try:
        parsed = config_from_text(text, "--config")
    except ConfigError as exc:
        assert str(exc).startswith(("invalid config in --config", "--config"))
    else:
        assert config_value_problems(parsed) == []
