"""A mkdocs hook: code fences whose info string marks how the test suite runs them, rendered as code.

storage.md marks the examples that need a PostgreSQL server with
```` ```python postgres ```` (tests/sql/test_sql_docs.py runs them against a
throwaway database; tests/test_docs.py runs only plain ```` ```python ````).
Python-Markdown's fences take no bare word after the language, so the page
would show the fence as text; the marker becomes a title the reader can use.
"""

from __future__ import annotations

import re
from typing import Any

#: Fence markers the test suite understands -> the title shown above the block.
MARKERS = {"postgres": "Needs a PostgreSQL server"}

_FENCE = re.compile(r"^(?P<indent> *)```python (?P<marker>\w+)[ \t]*$", re.MULTILINE)


def markdown(text: str) -> str:
    """``text`` with each marked fence given a title instead of its marker; unknown markers are left alone."""

    def title(match: re.Match[str]) -> str:
        shown = MARKERS.get(match["marker"])
        if shown is None:
            return match.group()
        return f'{match["indent"]}```python title="{shown}"'

    return _FENCE.sub(title, text)


def on_page_markdown(markdown_text: str, **kwargs: Any) -> str:
    del kwargs
    return markdown(markdown_text)
