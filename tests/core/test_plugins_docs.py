"""docs/plugins.md: the page's channel passes the contract test class the page writes for it.

tests/test_docs.py runs the page's examples; this runs the contract class
they define, as pytest would in the plugin's own test suite.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from commproc_core.testing.channel_contract import ChannelContract

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def page_namespace(tmp_path, monkeypatch) -> dict:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_plugins"}
    for number, block in enumerate(BLOCK.findall(DOC.read_text(encoding="utf-8")), 1):
        exec(compile(block, f"plugins.md#example{number}", "exec"), namespace)
    return namespace


def test_the_contract_class_of_the_page_passes(tmp_path, monkeypatch) -> None:
    namespace = page_namespace(tmp_path, monkeypatch)
    (contract_class,) = [
        value
        for value in namespace.values()
        if inspect.isclass(value) and issubclass(value, ChannelContract) and value is not ChannelContract
    ]
    ran = []
    for name in dir(contract_class):
        if not name.startswith("test_"):
            continue
        method = getattr(contract_class(), name)
        parameters = inspect.signature(method).parameters
        for fail_on in ("connect", "read", "commit") if "fail_on" in parameters else (None,):
            directory = tmp_path / f"{name}-{fail_on}"
            directory.mkdir()
            arguments = {
                "contract_store": contract_class().new_store(directory),
                "tmp_path": directory,
                "fail_on": fail_on,
            }
            method(**{k: v for k, v in arguments.items() if k in parameters})
            ran.append(name)
    assert len(set(ran)) == 8, ran


def test_the_contract_of_the_page_fails_a_broken_channel(tmp_path, monkeypatch) -> None:
    namespace = page_namespace(tmp_path, monkeypatch)
    webchat = namespace["WebchatProcessor"]

    class Careless(webchat):
        def validate_event(self, event_data):
            (event,) = super().validate_event(event_data)
            # A key that changes with the queue message: a re-sent message is applied again.
            return [type(event)(event_data.envelope.queue_message.message_id, *vars_of(event)[1:])]

    class Broken(namespace["TestWebchatContract"]):
        processor_class = Careless

    with pytest.raises(AssertionError, match="sent again was processed"):
        Broken().test_dedupe_keys_are_stable_across_redelivery(Broken().new_store(tmp_path))


def vars_of(event) -> list:
    return [getattr(event, field) for field in ("message_id", "session_id", "email", "text")]
