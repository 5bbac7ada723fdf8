"""Every bad configuration is a clear problem with a path, never a traceback, never a surprise.

Three Python entry points share the strict settings converter:
``parse_settings``, ``ProcessorFactory.validate_processor_config`` and
building a processor with ``config=``. Whatever the config holds (any shape,
any depth, any Python value), each returns problems naming field paths or
accepts it, they agree with one another, and what they accept can be stored
on every store.
"""

from __future__ import annotations

import json
import math
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from store_support import STORE_KINDS, open_store

from commproc_core.errors import ConfigError
from commproc_core.factory import ProcessorFactory
from commproc_core.model import ChannelConfig
from commproc_core.parsing import MAX_DEPTH, config_problems, parse_settings
from commproc_core.stores import MemoryStore
from commproc_email import EmailProcessor, EmailSettings
from commproc_sms import SMSProcessor, SMSSettings

CHANNELS = {"sms": (SMSSettings, SMSProcessor), "email": (EmailSettings, EmailProcessor)}
PROBLEM = re.compile(r" @ config(?:[.\[]|$)")
#: A value no problem text may quote (settings hold secrets).
SECRET = "s3cr3t-V4LUE"


def _problems_everywhere(channel: str, config: Any) -> list[list[str]]:
    """The problems each entry point reports for ``config``; each must hold paths."""
    settings_class, processor_class = CHANNELS[channel]
    found = [ProcessorFactory().validate_processor_config(channel, config)]
    try:
        parse_settings(settings_class, config)
        found.append([])
    except ConfigError as error:
        found.append(error.problems)
    if not isinstance(config, Mapping):
        # BaseChannelProcessor copies its config with dict() before parsing it,
        # so a config that is no mapping at all raises there (reported to the
        # pipeline's owner); validation and parsing above answer for it.
        found.append(found[0])
        return found
    try:
        processor_class(config=config, store=MemoryStore())
        found.append([])
    except ConfigError as error:
        found.append(error.problems)
    return found


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["a"] = {}
        node = node["a"]
    return root


# -- the reported cases ----------------------------------------------------------------

CASES: list[tuple[str, Any, str]] = [
    (
        "sms",
        {"keywords": {"languages": {"en": {"opt_out": "HALT"}}}},
        "expected a list, got a string @ config.keywords.languages['en'].opt_out",
    ),
    ("sms", {"batch_size": "ten"}, "expected an integer, got a string @ config.batch_size"),
    ("email", {"soft_bounce_limit": "3"}, "expected an integer, got a string @ config.soft_bounce_limit"),
    ("email", {"signature_max_age_seconds": "3"}, "@ config.signature_max_age_seconds"),
    ("sms", {"batch_size": 10**5000}, "too large (integers must fit in 64 bits) @ config.batch_size"),
    ("sms", {"visibility_timeout": 2**63}, "@ config.visibility_timeout"),
    ("sms", {"heartbeat_fraction": math.nan}, "must be a finite number @ config.heartbeat_fraction"),
    ("sms", {"heartbeat_fraction": 10**400}, "too large a number @ config.heartbeat_fraction"),
    ("sms", {"auth_token": "a\x00b"}, "must not contain NUL characters @ config.auth_token"),
    ("email", {"mailgun_signing_key": "k\ud800"}, "lone surrogate) @ config.mailgun_signing_key"),
    ("sms", {"help_text": {"e\x00n": "hi"}}, "key that is not valid (must not contain NUL"),
    ("sms", {"default_region": 5}, "expected a string, got a number @ config.default_region"),
    ("sms", {"agent_config": {"prompt": 3}}, "expected a string, got a number @ config.agent_config.prompt"),
    ("sms", {"agent_config": {"prompt": "p", "history_limit": "3"}}, "@ config.agent_config.history_limit"),
    ("sms", {"agent_config": {"prompt": "p", "context": _deep(15_000)}}, f"more than {MAX_DEPTH} levels"),
    ("sms", {"agent_config": {"prompt": "p", "context": {"k": b"x"}}}, "holds bytes"),
    ("sms", {"agent_config": {"prompt": "p", "context": {"k": [math.inf]}}}, "not finite at [0]"),
    ("sms", {"agent_config": {"prompt": "p", "context": {1: "x"}}}, "key that is not valid"),
    ("sms", {1: 2}, "keys must be strings, got a number @ config"),
    (
        "email",
        {"sns_topic_arns": {"arn:aws:sns:x": 1}},
        "expected a list, got a mapping @ config.sns_topic_arns",
    ),
    ("email", {"sns_topic_arns": {"arn:aws:sns:x"}}, "expected a list, got set @ config.sns_topic_arns"),
    ("sms", {"keywords": "STOP"}, "expected a mapping, got a string @ config.keywords"),
    ("sms", _deep(15_000), "unknown key 'a' @ config"),
]


@pytest.mark.parametrize(("channel", "config", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_reported_cases_are_problems_on_every_entry_point(channel: str, config: Any, expected: str) -> None:
    for problems in _problems_everywhere(channel, config):
        assert problems, config
        assert any(expected in p for p in problems), problems
        assert all(PROBLEM.search(p) for p in problems), problems


def test_a_key_the_settings_cannot_load_is_reported_by_every_entry_point() -> None:
    # The email settings load the key themselves; validation also builds the processor,
    # so `channels add` refuses what the worker would otherwise skip.
    config = {"sendgrid_public_key": "not a key"}
    validated, parsed, built = _problems_everywhere("email", config)
    assert validated == parsed == built == ["not a base64 DER or PEM public key @ config.sendgrid_public_key"]


def test_a_config_that_is_not_a_mapping() -> None:
    for config in ("batch_size=1", ["batch_size"], 5):
        for problems in _problems_everywhere("sms", config):
            assert len(problems) == 1 and problems[0].startswith("expected a mapping, got "), problems
            assert problems[0].endswith(" @ config")


def _collection_paths(cls: type[Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every list field under ``cls``, through nested classes and mappings of them."""
    for field in attrs.fields(attrs.resolve_types(cls)):
        here = (*path, field.name)
        union = typing.get_origin(field.type) in (typing.Union, types.UnionType)
        members = typing.get_args(field.type) if union else (field.type,)
        for member in members:
            if typing.get_origin(member) in (tuple, list, set, frozenset):
                yield here
            if attrs.has(member):
                yield from _collection_paths(member, here)
            if typing.get_origin(member) is dict and attrs.has(typing.get_args(member)[1]):
                yield from _collection_paths(typing.get_args(member)[1], (*here, "en"))


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    config: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        config = {key: config}
    if path[0] == "agent_config":
        config["agent_config"]["prompt"] = "p"
    return config


LIST_FIELDS = [(c, p) for c, (cls, _) in CHANNELS.items() for p in _collection_paths(cls)]


def test_the_list_fields_are_found() -> None:
    assert ("sms", ("keywords", "languages", "en", "opt_out")) in LIST_FIELDS
    assert ("sms", ("auth_tokens",)) in LIST_FIELDS
    assert ("email", ("sns_topic_arns",)) in LIST_FIELDS


@pytest.mark.parametrize(("channel", "path"), LIST_FIELDS, ids=[f"{c}:{'.'.join(p)}" for c, p in LIST_FIELDS])
def test_every_list_field_at_any_depth_refuses_a_string(channel: str, path: tuple[str, ...]) -> None:
    for problems in _problems_everywhere(channel, _nest(path, "HALT")):
        assert any("expected a list, got a string" in p for p in problems), problems
    # ... and takes a real list.
    assert _problems_everywhere(channel, _nest(path, ["HALT"])) == [[], [], []]


def test_a_string_keyword_list_no_longer_opts_out_a_sender_texting_a_letter() -> None:
    with pytest.raises(ConfigError):
        SMSProcessor(config={"keywords": {"languages": {"en": {"opt_out": "HALT"}}}}, store=MemoryStore())
    processor = SMSProcessor(
        config={"keywords": {"languages": {"en": {"opt_out": ["HALT"]}}}}, store=MemoryStore()
    )
    assert processor.keywords.match("A") is None
    match = processor.keywords.match("halt")
    assert match is not None and match.action == "opt_out"


def test_checks_and_cross_field_rules_are_reported_together() -> None:
    problems = config_problems(SMSSettings, {"require_signature": True, "default_region": "XX"})
    assert problems == [
        "is not a region code such as US or GB @ config.default_region",
        "require_signature is true but none of auth_token, auth_tokens and shared_keys is set @ config",
    ]


@pytest.fixture(params=STORE_KINDS)
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


def test_the_longest_accepted_values_store_on_every_store(any_store: Any) -> None:
    config = {
        "batch_size": 10,
        "heartbeat_fraction": 0.95,
        "agent_config": {
            "prompt": "p",
            "context": {"n": 2**63 - 1, "deep": _deep(MAX_DEPTH - 1), "u": "é\U0001f600"},
        },
    }
    for problems in _problems_everywhere("sms", config):
        assert problems == []
    with any_store.unit_of_work() as uow:
        saved = uow.channel_configs.add(ChannelConfig(channel_type="sms", queue_url="q", config=config))
        uow.commit()
    with any_store.unit_of_work() as uow:
        assert uow.channel_configs.get(saved.id).config == config


# -- the property: configs of any shape ------------------------------------------------

_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),  # NUL and lone surrogates included
    st.sampled_from(["", " ", "HALT", "en", "US", "required", "off", "if_present", SECRET, "x" * 300]),
)
_numbers = st.one_of(
    st.integers(),
    # (Past 4,300 digits an int has no repr, which Hypothesis needs to report a failure.)
    st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63), 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_scalars = st.one_of(st.none(), st.booleans(), _numbers, _text, st.binary(max_size=4))
_keys = st.one_of(st.text(max_size=8).filter(lambda k: SECRET not in k), st.integers(-2, 2), st.none())
_anything = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.frozensets(st.integers(), max_size=3),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)


def _typed(type_: Any, wild: bool = True) -> st.SearchStrategy[Any]:
    """Values shaped like ``type_`` (mostly right, sometimes not), for any field type."""
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if attrs.has(type_):
        return _shaped(type_, wild)
    if type_ is bool:
        return st.booleans()
    if type_ is int:
        return (
            st.one_of(st.integers(1, 20), st.integers(-5, 50_000), _numbers) if wild else st.integers(1, 20)
        )
    if type_ is float:
        return st.one_of(st.floats(0.05, 0.95), _numbers) if wild else st.floats(0.05, 0.95)
    if type_ is str:
        return _text
    if origin in (tuple, list):
        items = st.lists(_typed(args[0], wild), max_size=4)
        return st.one_of(items, _text) if wild else items
    if origin is dict:
        # Keys are names in a field path, as in _keys: the secret stands only in values.
        entries = st.dictionaries(_text.filter(lambda k: SECRET not in k), _typed(args[1], wild), max_size=3)
        return st.one_of(entries, _anything) if wild else entries
    if args:  # an optional or other union
        return st.one_of(*(_typed(a, wild) for a in args))
    return _anything


def _shaped(cls: type[Any], wild: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Configs for ``cls``: its keys, with values of their type or, when ``wild``, of any type."""
    fields = attrs.fields(attrs.resolve_types(cls))
    if not wild:
        return st.fixed_dictionaries({}, optional={f.name: _typed(f.type, wild) for f in fields})
    optional = {f.name: st.one_of(_typed(f.type), _typed(f.type), _anything) for f in fields}
    extra = st.one_of(st.just({}), st.just({}), st.dictionaries(_keys, _anything, max_size=2))
    return st.tuples(st.fixed_dictionaries({}, optional=optional), extra).map(lambda p: {**p[1], **p[0]})


def _configs(settings_class: type[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(_shaped(settings_class, wild=False), _shaped(settings_class), _anything)


def _strings(value: Any) -> Iterator[str]:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple, frozenset)):
            pending.extend(item)


def _check_property(channel: str, config: Any) -> None:
    answers = _problems_everywhere(channel, config)
    validated, parsed, built = answers
    # The entry points agree: building adds no surprise the validation did not report.
    assert validated == built
    assert bool(parsed) <= bool(validated)
    for problems in answers:
        assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
        for problem in problems:
            assert PROBLEM.search(problem), problem
            assert SECRET not in problem, problem
            assert len(problem) <= 300
    if not validated:
        # Accepted: storable as JSON on every store (no NaN, no huge int, no NUL, valid UTF-8).
        text = json.dumps(config, allow_nan=False)
        text.encode("utf-8")
        assert "\\u0000" not in text
        assert not any("\x00" in s for s in _strings(config))


COMMON = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(_configs(SMSSettings))
@example({"keywords": {"languages": {"en": {"opt_out": "HALT"}}}})
@example({"batch_size": "ten"})
def test_any_sms_config_is_problems_with_paths_or_accepted(config: Any) -> None:
    _check_property("sms", config)


@COMMON
@given(_configs(EmailSettings))
@example({"soft_bounce_limit": "3"})
@example({"mailgun_signature": "required", "mailgun_signing_key": None})
def test_any_email_config_is_problems_with_paths_or_accepted(config: Any) -> None:
    _check_property("email", config)
