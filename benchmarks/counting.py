"""Counting what the database is asked to do, outside the timed runs.

Counts come from a separate, untimed pass of each case, so the timed rounds
carry no instrumentation at all.

SQLite: ``sqlite3``'s trace callback on every DBAPI connection opened while
counting (installed from SQLAlchemy's pool ``connect`` event, and on the
floor's own connections). It fires once per statement SQLite runs: BEGIN,
SAVEPOINT, RELEASE, COMMIT and every INSERT/SELECT/UPDATE, and once per row
of an ``executemany``.

PostgreSQL: a small TCP proxy between the driver and the server that reads
the wire protocol. *Statements* are the client's Execute messages plus its
simple Query messages (one ``"RELEASE SAVEPOINT a; SAVEPOINT b"`` string is
one Query); an ``executemany`` of N rows is N Executes. *Round trips* are the
server's ReadyForQuery messages: libpq waits for one after every simple
query and every Sync, so outside pipeline mode each is one wait for the
server. A pipeline sends one Sync for a whole group of statements, and is
counted once. Connection start-up also ends in a ReadyForQuery; the pool is
warm before counting starts, so that only shows when a connection is made
during the run (psycopg's pool pre-ping is counted, as it is a round trip).
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

__all__ = ["PgProxy", "SQLiteTrace", "sqlite_tracing"]


class SQLiteTrace:
    """Counts statements run on the SQLite connections it is attached to."""

    def __init__(self) -> None:
        self.statements = 0
        self.active = False

    def __call__(self, statement: str) -> None:
        if self.active:
            self.statements += 1

    def attach(self, dbapi_connection: Any) -> None:
        dbapi_connection.set_trace_callback(self)


@contextmanager
def sqlite_tracing() -> Iterator[SQLiteTrace]:
    """Trace every SQLite connection SQLAlchemy opens inside the block (counting starts inactive)."""
    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    trace = SQLiteTrace()

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):
            trace.attach(dbapi_connection)

    event.listen(Pool, "connect", on_connect)
    try:
        yield trace
    finally:
        event.remove(Pool, "connect", on_connect)


class _Stream:
    """One direction of one connection: splits the bytes into protocol messages."""

    def __init__(self, typed: bool) -> None:
        # The client's first message (startup) has no type byte; the server's all do.
        self.typed = typed
        self.buffer = b""

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.buffer += data
        while True:
            if not self.typed:
                if len(self.buffer) < 4:
                    return
                (length,) = struct.unpack("!I", self.buffer[:4])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                self.typed = True
                yield b"\0"
                continue
            if len(self.buffer) < 5:
                return
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            kind = self.buffer[:1]
            self.buffer = self.buffer[1 + length :]
            yield kind


class PgProxy:
    """A counting TCP proxy in a thread: ``port`` forwards to ``target``.

    Connect with ``sslmode=disable&gssencmode=disable``: it reads the
    protocol in clear. ``counts`` holds message types seen
    (``client:E``, ``server:Z``...) while :attr:`active`.
    """

    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.counts: Counter[str] = Counter()
        self.active = False
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._stop = False
        self._thread = threading.Thread(target=self._serve, name="pg-count-proxy", daemon=True)
        self._thread.start()

    @property
    def statements(self) -> int:
        with self._lock:
            return self.counts["client:E"] + self.counts["client:Q"]

    @property
    def round_trips(self) -> int:
        with self._lock:
            return self.counts["server:Z"]

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        for key in list(self._selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self._selector.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                    continue
                source, peer, stream, side = key.data
                try:
                    data = source.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._drop(source, peer)
                    continue
                # Counted before forwarding: once the client has its answer, the count is complete.
                kinds = list(stream.feed(data))
                if self.active and kinds:
                    with self._lock:
                        for kind in kinds:
                            self.counts[f"{side}:{kind.decode('latin-1')}"] += 1
                try:
                    peer.sendall(data)
                except OSError:
                    self._drop(source, peer)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        server = socket.create_connection(self.target)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Blocking sends keep the bytes in order; reads only happen when select says so.
        self._selector.register(client, selectors.EVENT_READ, (client, server, _Stream(False), "client"))
        self._selector.register(server, selectors.EVENT_READ, (server, client, _Stream(True), "server"))

    def _drop(self, one: socket.socket, other: socket.socket) -> None:
        for sock in (one, other):
            with suppress(KeyError, ValueError):
                self._selector.unregister(sock)
            sock.close()
