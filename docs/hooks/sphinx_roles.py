"""A griffe extension: the Sphinx cross-reference roles of commproc's docstrings, as Markdown.

The docstrings are written for readers of the source and of ``help()``, where
``:class:`~commproc_core.errors.TransientError``` reads fine; the site renders
docstrings as Markdown, where it would show the role's punctuation. This turns
each role into inline code holding the name a reader of the page needs (the
last part when the target starts with ``~``, as Sphinx shows it), and a
paragraph ending in ``::`` (a reST literal block follows) into one ending in
``:``, which is what reST itself renders.
"""

from __future__ import annotations

import re
from typing import Any

try:
    import griffe
except ImportError:  # the test suite checks markdown() without the site's tools installed
    griffe = None

_ROLE = re.compile(
    r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`]+)`"
)
# "text::" ends a paragraph that introduces a literal block; "::" alone on its line is dropped.
_LITERAL_MARKER = re.compile(r"(?P<after_text>(?<=\S))::$|^::$", re.MULTILINE)


def _code(match: re.Match[str]) -> str:
    target = match["target"].strip()
    if match["tilde"]:
        target = target.rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def markdown(text: str) -> str:
    """``text`` with Sphinx roles as inline code and reST ``::`` markers as colons."""
    text = _ROLE.sub(_code, text)
    return _LITERAL_MARKER.sub(lambda m: ":" if m["after_text"] is not None else "", text)


if griffe is not None:

    class SphinxRoles(griffe.Extension):
        """Rewrites every docstring griffe loads; see the module docstring."""

        def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
            del kwargs
            if obj.docstring is not None:
                obj.docstring.value = markdown(obj.docstring.value)
