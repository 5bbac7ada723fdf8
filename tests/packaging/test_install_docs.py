"""The install commands of README.md and docs/running.md, run exactly as written in a copy of the checkout.

Each command sits in a ```bash block after an ``<!-- install: NAME -->``
marker. It runs with bash in a fresh copy of the repository, with this
test's Python first on PATH as ``python3``, and must end with a working
``commproc demo``. Run by `nox -s packaging` (the builds fetch hatchling).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"<!-- install: (?P<name>[\w-]+) -->\n```bash\n(?P<command>.*?)^```", re.S | re.M)
_SKIP = shutil.ignore_patterns(".git", ".venv", ".nox", "build", "dist", "__pycache__", "*.egg-info", "*.db")


def commands(page: str) -> dict[str, str]:
    return {m["name"]: m["command"] for m in MARKED.finditer((ROOT / page).read_text())}


def checkout_copy(target: Path) -> Path:
    """The files of the checkout (tracked and new, not ignored), without build outputs or databases."""
    try:
        listed = (
            subprocess.run(
                ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                cwd=ROOT,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .split("\0")
        )
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, target, ignore=_SKIP)
        return target
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_readme_and_running_md_show_the_same_install_command() -> None:
    readme, running = commands("README.md"), commands("docs/running.md")
    assert set(running) == {"checkout", "wheels"}
    assert readme["checkout"] == running["checkout"]


@pytest.mark.parametrize("name", ["checkout", "wheels"])
def test_install_command_works_as_written(name: str, tmp_path: Path) -> None:
    command = commands("docs/running.md")[name]
    repo = checkout_copy(tmp_path / "commproc")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMMPROC_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    done = subprocess.run(
        ["bash", "-e", "-c", command], cwd=repo, env=env, capture_output=True, text=True, timeout=1200
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "they held 11 provider events: 8 processed, 1 duplicate, 1 failed, 1 ignored" in done.stdout
    assert (repo / "commproc-demo.db").is_file()
