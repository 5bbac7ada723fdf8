"""The curated public API: the documented modules, what plugins and docs import, a cheap top-level import."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import commproc_core

ROOT = Path(__file__).resolve().parents[2]
PLUGINS_DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def documented_modules() -> list[str]:
    section = PLUGINS_DOC.read_text(encoding="utf-8").split("## The public API", 1)[1]
    return re.findall(r"^\| `(commproc_core[\w.]*)` \|", section, re.M)


PUBLIC = documented_modules()


def exported_by(module: str) -> set[str]:
    return set(importlib.import_module(module).__all__)


def public_names() -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for module in PUBLIC:
        for name in exported_by(module):
            names.setdefault(name, set()).add(module)
    return names


def imports(source: str) -> list[tuple[str, str]]:
    """(module, name) of every ``from commproc_core... import name`` in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "commproc_core":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "commproc_core"]
    return found


def doc_sources() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [(page.name, block) for page in pages for block in BLOCK.findall(page.read_text(encoding="utf-8"))]


def python_files(*folders: str) -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if "build" not in path.parts
    ]


def test_the_documented_modules_are_listed() -> None:
    assert len(PUBLIC) >= 25 and PUBLIC[0] == "commproc_core"
    assert len(set(PUBLIC)) == len(PUBLIC)


@pytest.mark.parametrize("module", PUBLIC)
def test_every_documented_module_exports_what_it_lists(module: str) -> None:
    loaded = importlib.import_module(module)
    names = loaded.__all__
    assert names, f"{module} exports nothing"
    for name in names:
        assert hasattr(loaded, name), f"{module}.__all__ names {name}, which it does not have"
    # Documented means documented: the module and each class or function it exports say what they are.
    assert (loaded.__doc__ or "").strip(), f"{module} has no docstring"
    for name in names:
        value = getattr(loaded, name)
        if (inspect.isclass(value) or inspect.isfunction(value)) and value.__module__.startswith(
            "commproc_core"
        ):
            assert (value.__doc__ or "").strip(), f"{module}.{name} has no docstring"


def test_docs_and_the_example_plugin_import_only_from_documented_modules() -> None:
    sources = doc_sources() + python_files("examples/commproc-voice")
    wrong = []
    for where, source in sources:
        for module, name in imports(source):
            if module not in PUBLIC or (name and name not in exported_by(module)):
                wrong.append(f"{where}: from {module} import {name}")
    assert not wrong, "imports outside the public API:\n" + "\n".join(wrong)


def test_everything_the_first_party_plugins_import_is_public() -> None:
    public = public_names()
    private = sorted(
        f"{where}: {module}.{name}"
        for where, source in python_files("src/commproc_sms", "src/commproc_email")
        for module, name in imports(source)
        if name and name not in public
    )
    assert not private, "names the plugins use that no documented module exports:\n" + "\n".join(private)


def test_the_top_level_names_resolve_lazily() -> None:
    assert sorted(commproc_core.__all__) == list(commproc_core.__all__)
    for name in commproc_core.__all__:
        assert getattr(commproc_core, name) is not None
    assert set(commproc_core.__all__) <= set(dir(commproc_core))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        commproc_core.Nope  # noqa: B018


def test_importing_commproc_core_stays_cheap() -> None:
    code = (
        "import sys, commproc_core\n"
        "heavy = [m for m in ('sqlalchemy', 'cattrs', 'boto3', 'botocore', 'attrs') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_typing_extensions_is_neither_used_nor_a_dependency() -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(d.startswith("typing-extensions") for d in project["dependencies"])
    users = [where for where, source in python_files("src") if "typing_extensions" in source]
    assert users == []
