"""Fixtures for the queue adapter tests: moto (in-process and HTTP), a manual clock."""

from __future__ import annotations

import pytest


class ManualClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
