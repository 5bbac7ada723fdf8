"""Every ```python block of docs/running.md runs (the blocks share one namespace, as on the page)."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "running.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_running_md_examples_run(plugins, tmp_path, monkeypatch) -> None:
    blocks = BLOCK.findall(PAGE.read_text())
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    # The Lambda example reads its store from the environment, as in a function's configuration.
    monkeypatch.setenv("COMMPROC_DATABASE_URL", f"sqlite:///{tmp_path / 'lambda.db'}")
    namespace: dict = {"__name__": "docs_running"}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"running.md#example{number}", "exec"), namespace)
