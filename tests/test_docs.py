"""Every ```python block in README.md and docs/ runs (blocks of one page share a namespace)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Pages whose examples are run by their own channel's tests.
OWNED_ELSEWHERE = {"sms.md", "email.md", "running.md", "migrating.md"}
PAGES = [
    ROOT / "README.md",
    *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name not in OWNED_ELSEWHERE),
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_run(page: Path, tmp_path, monkeypatch) -> None:
    blocks = BLOCK.findall(page.read_text())
    if page.name in ("README.md", "pipeline.md"):
        assert blocks, f"{page.name} should have runnable examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(blocks, 1):
        code = compile(block, f"{page.name}#example{number}", "exec")
        exec(code, namespace)
