"""API Gateway's mapping-template engine, emulated for the tests: $input, $util and $context over airspeed.

airspeed is a Velocity engine for Python. The objects below behave as API
Gateway documents them for REST API mapping templates; ``$util.escapeJavaScript``
follows Apache Commons' ``StringEscapeUtils.escapeJavaScript``, which API
Gateway uses (so an apostrophe becomes ``\\'``, which JSON does not allow).
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import airspeed
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1]
ROOT = DEPLOY.parent

pytest_plugins = ["commproc_core.testing.moto"]


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt...) kept as plain values."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    return yaml.load((DEPLOY / "template.yaml").read_text(), Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def _escape_javascript(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if char in "\"'\\/":
            out.append("\\" + char)
        elif char in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code > 0xFFFF:
            # Java strings hold UTF-16: a character beyond U+FFFF is two escaped surrogates.
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04X}\\u{0xDC00 + (code & 0x3FF):04X}")
        elif code < 32 or code > 0x7E:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    return "".join(out)


class _Util:
    def escapeJavaScript(self, text: str) -> str:  # noqa: N802 (API Gateway's name)
        return _escape_javascript(str(text))

    def base64Encode(self, text: str) -> str:  # noqa: N802
        return base64.b64encode(str(text).encode()).decode()

    def urlEncode(self, text: str) -> str:  # noqa: N802
        # java.net.URLEncoder: spaces as +, only letters, digits and .-*_ unescaped.
        return urllib.parse.quote_plus(str(text), safe="*")


class _Input:
    def __init__(self, body: str, headers: Mapping[str, str], query: Mapping[str, str]) -> None:
        self.body = body
        self._params = {"path": {}, "querystring": dict(query), "header": dict(headers)}

    def params(self) -> dict[str, dict[str, str]]:
        return self._params


def render(
    template: str,
    *,
    body: str,
    headers: Mapping[str, str],
    query: Mapping[str, str] | None = None,
    domain: str = "abc123.execute-api.us-east-1.amazonaws.com",
    path: str = "/Prod/sms/twilio",
) -> str:
    """What API Gateway would send SQS for this request: the form-encoded SendMessage body."""
    context = {"domainName": domain, "path": path, "httpMethod": "POST", "requestId": "req-1"}
    return airspeed.Template(template).merge(
        {"input": _Input(body, headers, query or {}), "util": _Util(), "context": context}
    )


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def mapping_templates(template: dict[str, Any]) -> dict[str, str]:
    integration = template["Resources"]["WebhookMethod"]["Properties"]["Integration"]
    return dict(integration["RequestTemplates"])
