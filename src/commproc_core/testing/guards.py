"""Store wrappers for contract tests: one that catches writes made on the side, one that fails on cue.

:class:`GuardedStore` records every write a channel makes outside the
batch's unit of work: in a unit of work opened by channel code
(``validate_event``, ``process_event``...) or opened while the batch's own
was open. Such a write survives when the batch rolls back, so a retried
message would apply it twice. Writes in ``after_commit`` (after the batch's
transaction) are allowed: that is where work that must not hold the
transaction open belongs.

:class:`FlakyStore` raises :class:`~commproc_core.errors.StoreUnavailable`
while ``failing`` is set: on opening a unit of work, on its reads, or on
its commit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from commproc_core.errors import StoreUnavailable
from commproc_core.stores.spec import TABLES

if TYPE_CHECKING:
    from types import TracebackType

    from commproc_core.ports import Store, UnitOfWork

__all__ = ["FlakyStore", "GuardedStore"]

_WRITES = ("add", "update", "delete")
_READS = ("get", "find", "find_one", "count", "get_or_create")


class GuardedStore:
    """Wraps ``inner``; :attr:`violations` lists every write made outside the batch's unit of work."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.violations: list[str] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _state(self) -> Any:
        state = self._local
        if not hasattr(state, "code"):
            state.code = []
            state.open = 0
        return state

    @contextmanager
    def channel_code(self, name: str) -> Iterator[None]:
        """Mark channel code running on this thread (a unit of work it opens may not write)."""
        state = self._state()
        state.code.append(name)
        try:
            yield
        finally:
            state.code.pop()

    def unit_of_work(self) -> UnitOfWork:
        state = self._state()
        reason = None
        if state.code:
            reason = f"opened inside {state.code[-1]}"
        elif state.open:
            reason = "opened while the batch's unit of work was open"
        return _GuardedUnitOfWork(self, self.inner.unit_of_work(), reason)

    def note(self, violation: str) -> None:
        with self._lock:
            self.violations.append(violation)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _GuardedUnitOfWork:
    def __init__(self, store: GuardedStore, inner: UnitOfWork, reason: str | None) -> None:
        self._store = store
        self._inner = inner
        self._reason = reason

    def __enter__(self) -> _GuardedUnitOfWork:
        self._inner.__enter__()
        self._store._state().open += 1
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._store._state().open -= 1
        self._inner.__exit__(exc_type, exc, tb)

    def __getattr__(self, name: str) -> Any:
        # Looked up on the inner unit of work, so the wrapper offers the bulk
        # methods (load_many, apply) exactly when the store does.
        value = getattr(self._inner, name)
        reason = self._reason
        if reason is None:
            return value
        if name in TABLES:
            return _GuardedRepository(self._store, value, name, reason)
        if name == "apply":

            def apply(changes: Any) -> None:
                if changes:
                    tables = ", ".join(sorted({c.table for c in changes}))
                    self._store.note(f"writes to {tables} in a unit of work {reason}")
                value(changes)

            return apply
        return value


class _GuardedRepository:
    def __init__(self, store: GuardedStore, inner: Any, table: str, reason: str) -> None:
        self._store, self._inner, self._table, self._reason = store, inner, table, reason

    def get_or_create(self, record: Any, *, key: str) -> tuple[Any, bool]:
        found, created = self._inner.get_or_create(record, key=key)
        if created:
            self._store.note(f"{self._table}.get_or_create created a row in a unit of work {self._reason}")
        return found, created

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in _WRITES:

            def write(*args: Any, **kwargs: Any) -> Any:
                self._store.note(f"{self._table}.{name} in a unit of work {self._reason}")
                return value(*args, **kwargs)

            return write
        return value


class FlakyStore:
    """Wraps ``inner``; while :attr:`failing`, raises StoreUnavailable at the point ``fail_on`` names.

    ``fail_on``: ``"connect"`` (opening a unit of work), ``"read"`` (any
    read of a unit of work) or ``"commit"``.
    """

    def __init__(self, inner: Store, fail_on: str = "commit") -> None:
        if fail_on not in ("connect", "read", "commit"):
            raise ValueError(f"fail_on must be connect, read or commit, not {fail_on!r}")
        self.inner = inner
        self.fail_on = fail_on
        self.failing = False

    def _down(self) -> StoreUnavailable:
        return StoreUnavailable(f"the store is down (FlakyStore, failing on {self.fail_on})")

    def unit_of_work(self) -> UnitOfWork:
        if self.failing and self.fail_on == "connect":
            raise self._down()
        return _FlakyUnitOfWork(self, self.inner.unit_of_work())

    def ping(self) -> None:
        if self.failing:
            raise self._down()
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _FlakyUnitOfWork:
    def __init__(self, store: FlakyStore, inner: UnitOfWork) -> None:
        self._store = store
        self._inner = inner

    def __enter__(self) -> _FlakyUnitOfWork:
        self._inner.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._inner.__exit__(exc_type, exc, tb)

    def _reading(self) -> bool:
        return self._store.failing and self._store.fail_on == "read"

    def commit(self) -> None:
        if self._store.failing and self._store.fail_on == "commit":
            raise self._store._down()
        self._inner.commit()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name in TABLES:
            return _FlakyRepository(self, value)
        if name == "load_many":

            def load_many(loads: Any) -> Any:
                if self._reading():
                    raise self._store._down()
                return value(loads)

            return load_many
        return value


class _FlakyRepository:
    def __init__(self, uow: _FlakyUnitOfWork, inner: Any) -> None:
        self._uow = uow
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in _READS:
            return value

        def read(*args: Any, **kwargs: Any) -> Any:
            if self._uow._reading():
                raise self._uow._store._down()
            return value(*args, **kwargs)

        return read
