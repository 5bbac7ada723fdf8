"""Helpers for the runtime tests: running the CLI in a subprocess, polling for a condition."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
CLI = [sys.executable, "-m", "commproc_core.runtime.cli"]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m commproc_core.runtime.cli``: src/ on the path, no host AWS settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COMMPROC_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(extra)
    return env


def wait_for(condition: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> None:
    """Poll ``condition`` until it holds; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
