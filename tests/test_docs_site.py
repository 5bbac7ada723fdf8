"""The documentation site's promises that `mkdocs build --strict` (nox -s docs) cannot check.

Every page is in the navigation, every example on it runs in some test, every
fence is one the site renders, the API reference covers every public name of
commproc_core, and the docstring markup rules hold.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^ *```(?P<info>[^`\n]*)$", re.M)
#: Languages the pages use; anything else is a typo the highlighter would show as plain text.
LANGUAGES = {"", "python", "bash", "sh", "json", "text", "toml", "yaml", "mermaid", "console", "ini"}


def _hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_hooks_{name}", DOCS / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Loader(yaml.SafeLoader):
    """mkdocs.yml with its !!python/name tags read as plain strings."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)


def _config() -> dict[str, Any]:
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)  # noqa: S506 (a SafeLoader)


def _nav_pages(entries: list[Any]) -> list[str]:
    pages: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages.extend(_nav_pages(value) if isinstance(value, list) else [value])
    return pages


def _pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)


def test_every_page_is_in_the_navigation_and_every_entry_exists() -> None:
    nav = _nav_pages(_config()["nav"])
    on_disk = {p.relative_to(DOCS).as_posix() for p in _pages()}
    assert sorted(set(nav) - on_disk) == [], "nav entries without a page"
    assert sorted(on_disk - set(nav)) == [], "pages missing from the nav in mkdocs.yml"
    assert len(nav) == len(set(nav)), "a page is in the nav twice"


def test_the_pages_the_issue_asks_for_are_there() -> None:
    nav = set(_nav_pages(_config()["nav"]))
    wanted = {
        "index.md",
        "getting-started.md",
        "concepts.md",
        "sms.md",
        "email.md",
        "plugins.md",
        "running.md",
        "storage.md",
        "security.md",
        "performance.md",
        "migrating.md",
        "reference/index.md",
    }
    assert wanted <= nav
    # Diagrams where people would rather look than read.
    assert "```mermaid\nflowchart" in (DOCS / "concepts.md").read_text()
    assert "```mermaid\nflowchart" in (DOCS / "deployment.md").read_text()


def test_every_fence_is_one_the_site_renders() -> None:
    markers = _hook("fences").MARKERS
    for page in _pages():
        for match in FENCE.finditer(page.read_text()):
            info = match["info"].strip()
            language, _, rest = info.partition(" ")
            where = f"{page.relative_to(ROOT)}: ```{info}"
            assert language in LANGUAGES, where
            # Only titles, or a test marker the site turns into one.
            assert not rest or rest.startswith("title=") or (language == "python" and rest in markers), where


def test_every_python_example_runs_in_some_test() -> None:
    from test_docs import OWNED_ELSEWHERE, PAGES

    tests = {path: path.read_text() for path in (ROOT / "tests").rglob("test_*.py")}
    for page in _pages():
        text = page.read_text()
        if "```python" not in text:
            continue
        relative = page.relative_to(DOCS)
        assert len(relative.parts) == 1, (
            f"docs/{relative}: examples run only on top-level pages (tests/test_docs.py)"
        )
        if page.name in OWNED_ELSEWHERE:
            runners = [
                p for p, source in tests.items() if p.name != "test_docs.py" and f"docs/{page.name}" in source
            ]
            assert runners, f"docs/{page.name} is left to another test, and none reads it"
        else:
            assert page in PAGES
        if "```python postgres" in text:
            assert any(f'"{page.name}"' in s and "postgres" in s for s in tests.values()), page.name


def test_the_api_reference_documents_every_public_name() -> None:
    import commproc_core

    rendered = {
        match.group(1)
        for page in (DOCS / "reference").glob("*.md")
        for match in re.finditer(r"^::: ([\w.]+)$", page.read_text(), re.M)
    }
    for module in ("commproc_sms", "commproc_email", "commproc_core.testing"):
        assert module in rendered
    exported = {module: set(getattr(importlib.import_module(module), "__all__", ())) for module in rendered}
    # A name is documented where it is defined, or by a documented module that exports it.
    missing = {
        name: module
        for name, module in commproc_core._EXPORTS.items()
        if module not in rendered and not any(name in names for names in exported.values())
    }
    assert missing == {}, f"add these modules to a page of docs/reference/: {sorted(set(missing.values()))}"


def test_the_reference_pages_name_modules_that_exist() -> None:
    for page in (DOCS / "reference").glob("*.md"):
        for module in re.findall(r"^::: ([\w.]+)$", page.read_text(), re.M):
            assert importlib.util.find_spec(module) is not None, f"{page.name}: {module}"


@pytest.mark.parametrize(
    ("docstring", "rendered"),
    [
        (":class:`~commproc_core.errors.TransientError`", "`TransientError`"),
        (":class:`commproc_core.errors.TransientError`", "`commproc_core.errors.TransientError`"),
        (":meth:`~BaseChannelProcessor.prefetch` and :func:`drain`", "`prefetch` and `drain`"),
        (":mod:`.statements`", "`statements`"),
        ("Example::\n\n    code()", "Example:\n\n    code()"),
        ("::\n\n    code()", "\n\n    code()"),
        ("a ratio 2::3 stays", "a ratio 2::3 stays"),
    ],
)
def test_docstring_markup_becomes_markdown(docstring: str, rendered: str) -> None:
    assert _hook("sphinx_roles").markdown(docstring) == rendered


def test_a_test_marker_becomes_a_title() -> None:
    fences = _hook("fences")
    page = "Text\n```python postgres\nx = 1\n```\n```python\ny = 2\n```\n```python unknown\n```\n"
    assert fences.markdown(page) == (
        'Text\n```python title="Needs a PostgreSQL server"\nx = 1\n```\n```python\ny = 2\n```\n```python unknown\n```\n'
    )
