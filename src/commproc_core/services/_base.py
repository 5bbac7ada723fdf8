from __future__ import annotations

from datetime import datetime

from commproc_core.model import utcnow
from commproc_core.ports import Clock, UnitOfWork


class SystemClock:
    """The real time, aware UTC."""

    def now(self) -> datetime:
        return utcnow()


class Service:
    """A service works inside one unit of work and tells time through a clock."""

    def __init__(self, uow: UnitOfWork, clock: Clock | None = None) -> None:
        self.uow = uow
        self.clock: Clock = clock or SystemClock()
