"""
Connection helpers (psycopg 3): one place that knows how settings map to connection options.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import structlog
from psycopg import abc
from psycopg.abc import AdaptContext, Buffer
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from broseph import problems
from broseph.settings import Settings, reveal

logger = structlog.get_logger("broseph.db")
# Seconds one connection attempt may take (libpq waits for the OS's TCP timeout, minutes, when a
# host drops packets); a retry follows when the error is transient.
CONNECT_TIMEOUT = 10


class DatabaseNotConfigured(RuntimeError):
    """
    No DATABASE_URL: only `broseph demo` can do without one (it starts an embedded server).
    """


def database_url(settings: Settings) -> str:
    """
    The configured URL, or a clear error telling the operator what to set.
    """
    url = reveal(settings.database_url)
    if not url:
        raise DatabaseNotConfigured(
            "DATABASE_URL is not set (see .env.example); `broseph demo` runs without one."
        )
    return url


# --- times Python cannot hold ------------------------------------------------------------------
# Postgres stores 'infinity', '-infinity', BC dates and years past 9999; Python's datetime cannot
# hold them and psycopg raises DataError on reading one — which, in procrastinate's fetch, stopped
# the worker. Enqueue refuses such times now (migrations/0015), but rows stored before (or by
# hand) must still read: on our connections they read as these sentinels, and commands print
# them as "infinity" / "-infinity" (`time_text`).
FAR_PAST = datetime.datetime.min.replace(tzinfo=datetime.UTC)
FAR_FUTURE = datetime.datetime.max.replace(tzinfo=datetime.UTC)


def _tolerant(base: type[abc.Loader], low: Any, high: Any) -> type[Loader]:
    """
    psycopg's own loader for a date/time type, reading what Python cannot hold as low or high.
    """

    class Tolerant(Loader):
        format = base.format

        def __init__(self, oid: int, context: AdaptContext | None = None):
            super().__init__(oid, context)
            self._inner = base(oid, context)

        def load(self, data: Buffer) -> Any:
            try:
                return self._inner.load(data)
            except psycopg.DataError:
                raw = bytes(data)
                if self.format == Format.BINARY:
                    below = raw[:1] >= b"\x80"  # a negative int4 / int8: before 2000, far before
                else:
                    below = raw.startswith(b"-") or raw.endswith(b"BC")
                return low if below else high

    Tolerant.__name__ = Tolerant.__qualname__ = f"Tolerant{base.__name__}"
    return Tolerant


def _adapters() -> AdaptersMap:
    adapters = AdaptersMap(psycopg.adapters)
    bounds = {
        "timestamptz": (FAR_PAST, FAR_FUTURE),
        "timestamp": (datetime.datetime.min, datetime.datetime.max),
        "date": (datetime.date.min, datetime.date.max),
    }
    for name, (low, high) in bounds.items():
        oid = adapters.types[name].oid
        for fmt in (Format.TEXT, Format.BINARY):
            base = adapters.get_loader(oid, fmt)
            if base is not None:
                adapters.register_loader(oid, _tolerant(base, low, high))
    return adapters


ADAPTERS = _adapters()


def time_text(value: datetime.datetime) -> str | None:
    """
    "infinity" / "-infinity" for the sentinels above (None for any other time).
    """
    if value == FAR_FUTURE:
        return "infinity"
    if value == FAR_PAST:
        return "-infinity"
    return None


def utc_text(value: datetime.datetime) -> str:
    """
    A stored time as people read it in a terminal, in UTC and saying so: "2026-11-30 08:00:00Z"
    (or "infinity" / "-infinity"). Naive values are taken as UTC.
    """
    sentinel = time_text(value)
    if sentinel is not None:
        return sentinel
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """
    Options every connection gets: the date/time loaders above; and, since transaction poolers
    (Supavisor :6543, PgBouncer) cannot keep server-side prepared statements,
    PREPARED_STATEMENTS=false turns those off.
    """
    kwargs: dict[str, Any] = {"context": ADAPTERS}
    if not settings.prepared_statements:
        kwargs["prepare_threshold"] = None
    return kwargs


async def connect(
    settings: Settings, *, url: str | None = None, autocommit: bool = False
) -> psycopg.AsyncConnection[DictRow]:
    """
    One connection returning dict rows; the caller owns its transaction. A failure to connect
    raises a `problems.Problem` naming the cause and the fix.
    """
    failure: problems.Problem | None = None
    try:
        return await psycopg.AsyncConnection.connect(
            url or database_url(settings),
            autocommit=autocommit,
            row_factory=dict_row,
            connect_timeout=CONNECT_TIMEOUT,
            **connection_kwargs(settings),
        )
    except psycopg.Error as exc:
        failure = problems.connect_problem(exc)
    raise failure.alone()


async def reach(url: str, *, patience: float, **kwargs: Any) -> None:
    """
    Make sure the database at `url` accepts a connection, for a process that is starting.

    A permanent failure (a malformed URL, an unknown host, database or role, a wrong password)
    raises its `Problem` at once: retrying cannot fix it. A transient one (connection refused,
    reset, the server starting or shutting down) is retried with backoff for up to `patience`
    seconds, and raised after that.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    delay, warned = 0.1, False
    while True:
        failure: problems.Problem | None = None
        remaining = deadline - loop.time()
        try:
            conn = await psycopg.AsyncConnection.connect(
                url, connect_timeout=max(2, min(CONNECT_TIMEOUT, round(remaining))), **kwargs
            )
        except psycopg.Error as exc:
            failure = problems.connect_problem(exc)
        else:
            await conn.close()
            if warned:
                logger.info("database_available")
            return
        if not failure.transient:
            raise failure.alone()
        if loop.time() + delay > deadline:
            failure.cause += f", still after {patience:g} s"
            raise failure.alone()
        if not warned:
            warned = True
            logger.warning("database_unavailable", error=str(failure), waiting_seconds=patience)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


@contextlib.asynccontextmanager
async def autocommit(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """
    Run single statements on an idle pooled connection without BEGIN / COMMIT round trips; the
    connection's own mode is restored afterwards (setting it costs no round trip).
    """
    if conn.autocommit:
        yield
        return
    await conn.set_autocommit(True)
    try:
        yield
    finally:
        # A broken connection cannot be reset; the pool discards it on return anyway.
        with contextlib.suppress(psycopg.Error):
            await conn.set_autocommit(False)


@contextlib.asynccontextmanager
async def statements(pool: AsyncConnectionPool[Any]) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """
    A pooled connection for work where every statement stands alone: reads, and single
    statements whose triggers do the rest. Each is its own transaction — what it would be at READ
    COMMITTED inside one anyway (every statement takes a fresh snapshot) — minus the BEGIN and
    COMMIT round trips a transaction adds. Writes that must land together use
    `conn.transaction()` on an ordinary pooled connection instead.
    """
    async with pool.connection() as conn, autocommit(conn):
        yield conn
