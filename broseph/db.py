"""
Connection helpers (psycopg 3): one place that knows how settings map to connection options.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import structlog
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


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """
    Options every connection gets. Transaction poolers (Supavisor :6543, PgBouncer) cannot
    keep server-side prepared statements, so PREPARED_STATEMENTS=false turns them off.
    """
    return {} if settings.prepared_statements else {"prepare_threshold": None}


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
