"""The batch session of a store already in memory, and how the pipeline picks a session."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from commproc_core.ports import TableChanges, UnitOfWork
from commproc_core.stores.session import BatchSession
from commproc_core.stores.spec import TABLES

__all__ = ["DirectSession", "session_for"]


class DirectSession(BatchSession):
    """The batch session of a store whose unit of work is already in memory (the MemoryStore).

    There, loading in sets would only copy rows from one dict into another
    and recording changes would only delay writes that cost nothing: wants
    and fetches do nothing, lookups and writes go straight to the unit of
    work's repositories (which enforce the same unique keys at once), and a
    savepoint is the unit of work's own (its undo log).
    """

    def __init__(self, uow: UnitOfWork) -> None:  # the parent's state is not used
        self._uow = uow
        self.statements = 0

    def __getattr__(self, name: str) -> Any:
        if name not in TABLES:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        repository = getattr(self._uow, name)
        setattr(self, name, repository)
        return repository

    def want(self, table: str, field: str, values: Iterable[Any], **where: Any) -> None:
        del table, field, values, where

    def fetch(self) -> None:
        return None

    def rows(self, table: str) -> list[Any]:
        del table
        return []

    def hold_all(self, table: str, rows: Iterable[Any]) -> None:
        del table, rows

    def pending(self) -> list[TableChanges]:
        return []

    def flush(self) -> None:
        return None

    def savepoint(self) -> AbstractContextManager[None]:
        return self._uow.savepoint()

    def commit(self) -> None:
        self._uow.commit()

    def rollback(self) -> None:
        self._uow.rollback()


def session_for(uow: UnitOfWork) -> BatchSession:
    """The batch session for ``uow``: the store's own (``uow.batch_session()``) where it has one."""
    own = getattr(uow, "batch_session", None)
    return own() if callable(own) else BatchSession(uow)
