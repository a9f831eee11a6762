"""
Client↔server round trips of a process's psycopg connections, counted where psycopg waits.

Every exchange psycopg makes with the server — a statement (Parse/Bind/Execute/Sync go out
together, the results come back), a COMMIT, a pipeline sync, a pool's liveness check — goes through
one `AsyncConnection.wait()` (or `Connection.wait()`) call. Two more exchanges hide inside such a
call and are counted where they start: the implicit BEGIN a statement sends first on a
connection that is not in autocommit (`_start_query`), and the Parse of a statement psycopg
prepares (`_send_prepare`, outside pipeline mode). Waiting for notifications (`notifies()`, the
LISTEN side of procrastinate and PgQueuer) goes through wait() too, but is not a round trip: the
server pushes them unasked; nor are the option setters (set_autocommit() …), which only check the
connection's state: those calls are left out.

`install(path)` counts every connection of this process (a bench worker subprocess) into a
memory-mapped 8-byte file the parent reads without disturbing the worker; `count(conn)` counts
one connection (an in-process producer). Neither touches broseph's code: bench processes only.
"""

from __future__ import annotations

import mmap
import struct
import weakref
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq
from psycopg._connection_base import BaseConnection
from psycopg._cursor_base import BaseCursor

_FORMAT = "<Q"
_SIZE = struct.calcsize(_FORMAT)
# What goes through wait() without a round trip: waiting for pushed notifications, and the
# client-side setters of a connection's options (they only check its state; procrastinate's
# connector calls set_autocommit() around every transaction).
_NOT_ROUND_TRIPS = frozenset(
    {
        "notifies",
        "_set_autocommit_gen",
        "_set_isolation_level_gen",
        "_set_read_only_gen",
        "_set_deferrable_gen",
    }
)


class Counter:
    """
    A count of round trips, kept in memory or in a shared file.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.value = 0
        self._map: mmap.mmap | None = None
        if path is not None:
            path.write_bytes(b"\0" * _SIZE)
            with path.open("r+b") as file:
                self._map = mmap.mmap(file.fileno(), _SIZE)

    def add(self, gen: object) -> None:
        if getattr(gen, "__name__", "") in _NOT_ROUND_TRIPS:
            return
        self.value += 1
        if self._map is not None:
            struct.pack_into(_FORMAT, self._map, 0, self.value)


def read(path: Path) -> int:
    """
    The count a worker process keeps in `path` (0 before it has started counting).
    """
    data = path.read_bytes()
    return struct.unpack(_FORMAT, data)[0] if len(data) == _SIZE else 0


_process: Counter | None = None
_connections: weakref.WeakKeyDictionary[Any, Counter] = weakref.WeakKeyDictionary()
_installed = False


def _bump(conn: Any, gen: object) -> None:
    if _process is not None:
        _process.add(gen)
    counter = _connections.get(conn)
    if counter is not None:
        counter.add(gen)


def install(path: Path | None = None) -> Counter:
    """
    Count the round trips of every psycopg connection of this process from now on.
    """
    global _process
    _wrap()
    _process = Counter(path)
    return _process


def count(conn: psycopg.AsyncConnection[Any]) -> Counter:
    """
    Count the round trips of this one connection from now on.
    """
    _wrap()
    counter = _connections[conn] = Counter()
    return counter


def _wrap() -> None:
    """
    Put the counting wrappers on psycopg's classes (once per process).
    """
    global _installed
    if _installed:
        return
    _installed = True
    async_wait = psycopg.AsyncConnection.wait
    sync_wait = psycopg.Connection.wait
    start_query = BaseConnection._start_query
    send_prepare = BaseCursor._send_prepare

    async def counted_async_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        _bump(self, gen)
        return await async_wait(self, gen, *args, **kwargs)

    def counted_sync_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        _bump(self, gen)
        return sync_wait(self, gen, *args, **kwargs)

    def counted_start(self: Any) -> Any:
        if not self._autocommit and self.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            _bump(self, None)
        return (yield from start_query(self))

    def counted_prepare(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._conn._pipeline:
            _bump(self._conn, None)
        return send_prepare(self, *args, **kwargs)

    psycopg.AsyncConnection.wait = counted_async_wait  # type: ignore[method-assign]
    psycopg.Connection.wait = counted_sync_wait  # type: ignore[method-assign]
    BaseConnection._start_query = counted_start  # type: ignore[method-assign]
    BaseCursor._send_prepare = counted_prepare  # type: ignore[method-assign]
